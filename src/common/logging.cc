#include "common/logging.h"

#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "common/json_text.h"

namespace batchd {

namespace {

thread_local const LogContext* t_context = nullptr;

void AppendRaw(std::string_view text, spdlog::memory_buf_t& dest) { dest.append(text.data(), text.data() + text.size()); }

// `value` as a JSON string, quotes included: control characters, quotes and backslashes
// escaped, bytes that are not UTF-8 shown as U+FFFD (the rule of DumpJsonForDisplay,
// which the API's replies follow too).
void AppendJsonString(std::string_view value, spdlog::memory_buf_t& dest) {
  AppendRaw(DumpJsonForDisplay(nlohmann::json(std::string(value))), dest);
}

// ,"key":"value"; `key` is one of ours and needs no escaping.
void AppendField(std::string_view key, std::string_view value, spdlog::memory_buf_t& dest) {
  AppendRaw(",\"", dest);
  AppendRaw(key, dest);
  AppendRaw("\":", dest);
  AppendJsonString(value, dest);
}

// %* in a pattern: the message as a JSON string, so that quotes, control characters and
// bytes that are not UTF-8 in it (a partition name, a command's error) cannot break the
// line a log shipper parses.
class JsonMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    AppendJsonString(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessage>(); }
};

// %& in a pattern: ,"key":value for each field of the current LogContext that applies;
// nothing outside a context.
class JsonContextFields final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    const LogContext* context = t_context;
    if (!context) return;
    if (!context->dag.empty()) AppendField("dag", context->dag, dest);
    if (!context->run_id.empty()) AppendField("run_id", context->run_id, dest);
    if (!context->task.empty()) AppendField("task", context->task, dest);
    if (!context->partition.empty()) AppendField("partition", context->partition, dest);
    if (context->attempt) {
      const std::string number = std::to_string(*context->attempt);
      AppendRaw(",\"attempt\":", dest);
      AppendRaw(number, dest);
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonContextFields>(); }
};

}  // namespace

ScopedLogContext::ScopedLogContext(const LogContext& context) : merged_(context), previous_(t_context) {
  if (previous_) {
    if (merged_.dag.empty()) merged_.dag = previous_->dag;
    if (merged_.run_id.empty()) merged_.run_id = previous_->run_id;
    if (merged_.task.empty()) merged_.task = previous_->task;
    if (merged_.partition.empty()) merged_.partition = previous_->partition;
    if (!merged_.attempt) merged_.attempt = previous_->attempt;
  }
  t_context = &merged_;
}

ScopedLogContext::~ScopedLogContext() { t_context = previous_; }

const LogContext* CurrentLogContext() { return t_context; }

Result<std::unique_ptr<spdlog::formatter>> MakeLogFormatter(const std::string& format) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (format == "json") {
    formatter->add_flag<JsonMessage>('*').add_flag<JsonContextFields>('&').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":%*%&})");
  } else if (format == "text") {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  } else {
    return Status::InvalidArgument("unknown log format '" + format + "': expected text or json");
  }
  return std::unique_ptr<spdlog::formatter>(std::move(formatter));
}

Status SetupLogging(const std::string& level, const std::string& format) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return Status::InvalidArgument("unknown log level '" + level +
                                   "': expected trace, debug, info, warn, error, critical or off");
  }
  auto formatter = MakeLogFormatter(format);
  if (!formatter.ok()) return formatter.status();
  auto logger = spdlog::get("batchd");
  if (!logger) logger = spdlog::stderr_color_mt("batchd");
  logger->set_formatter(std::move(*formatter));
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

}  // namespace batchd
