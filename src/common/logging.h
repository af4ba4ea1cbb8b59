#pragma once
// spdlog set-up shared by batchd's commands, and the fields that tie a log event to the
// DAG, run, task instance and attempt it is about (docs/logs.md, "The daemon's own log").

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include "common/status.h"

namespace batchd {

// What a log event is about. An empty string (or no attempt) means the field does not
// apply: it is left out of the JSON line. Text lines never show these fields (their
// messages already name the run and task).
struct LogContext {
  std::string dag;
  std::string run_id;
  std::string task;
  std::string partition;        // as stored: "-" for a task without partitions
  std::optional<int> attempt;   // attempt number, from 1
};

// Makes `context` the current log context of the calling thread until destruction; the
// json formatter adds its fields to every line logged meanwhile on this thread. Guards
// nest: a field the inner context leaves empty keeps the outer one's value, and the outer
// context is current again once the inner guard is gone.
//
// Thread rules: the context is thread_local and read by the formatter, so it reaches the
// line only when the logger formats on the calling thread, as spdlog's synchronous
// loggers (the one SetupLogging installs) do; an async logger would lose it. A guard must
// be destroyed on the thread that made it, in reverse order of construction (a scope).
class ScopedLogContext {
 public:
  explicit ScopedLogContext(const LogContext& context);
  ~ScopedLogContext();
  ScopedLogContext(const ScopedLogContext&) = delete;
  ScopedLogContext& operator=(const ScopedLogContext&) = delete;

 private:
  LogContext merged_;
  const LogContext* previous_;
};

// The calling thread's current log context; nullptr outside any ScopedLogContext.
const LogContext* CurrentLogContext();

// spdlog::log(level, fmt, args...) with `context` current for this one event. Costs
// nothing beyond a level check when the level is off.
template <typename... Args>
void LogEvent(spdlog::level::level_enum level, const LogContext& context, spdlog::format_string_t<Args...> fmt,
              Args&&... args) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  ScopedLogContext scope(context);
  logger->log(level, fmt, std::forward<Args>(args)...);
}

// The line format of one log format (text|json). In json, every line is one JSON object:
// {"ts", "level", "msg"} followed by the fields of the current LogContext that apply
// ("dag", "run_id", "task", "partition", "attempt"). Every string is valid UTF-8 (bytes
// that are not are replaced by U+FFFD) with control characters escaped, so each line
// parses whatever the message or a field holds.
Result<std::unique_ptr<spdlog::formatter>> MakeLogFormatter(const std::string& format);

// level: trace|debug|info|warn|error|critical|off; format: text|json. Logs go to stderr
// (journald picks them up under systemd).
Status SetupLogging(const std::string& level, const std::string& format);

}  // namespace batchd
