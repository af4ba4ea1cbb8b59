#include "common/logging.h"

#include <cstdio>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace batchd {

namespace {

// %* in a pattern: the message as the inside of a JSON string, so that quotes,
// backslashes and control characters in it (a partition name, a command's error) cannot
// break the line a log shipper parses.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const char* p = msg.payload.data();
    const char* end = p + msg.payload.size();
    for (; p != end; ++p) {
      const unsigned char c = static_cast<unsigned char>(*p);
      const char* escaped = nullptr;
      switch (c) {
        case '"': escaped = "\\\""; break;
        case '\\': escaped = "\\\\"; break;
        case '\n': escaped = "\\n"; break;
        case '\r': escaped = "\\r"; break;
        case '\t': escaped = "\\t"; break;
        default: break;
      }
      if (escaped) {
        dest.append(escaped, escaped + std::char_traits<char>::length(escaped));
      } else if (c < 0x20) {
        char buf[8];
        int n = std::snprintf(buf, sizeof buf, "\\u%04x", c);
        dest.append(buf, buf + n);
      } else {
        dest.push_back(static_cast<char>(c));
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonEscapedMessage>(); }
};

}  // namespace

Result<std::unique_ptr<spdlog::formatter>> MakeLogFormatter(const std::string& format) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (format == "json") {
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%*"})");
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
