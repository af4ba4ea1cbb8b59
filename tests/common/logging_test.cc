// Log line formats: the json one must stay valid JSON whatever the message holds.

#include "common/logging.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>

namespace batchd {
namespace {

std::string FormatLine(const std::string& format, const std::string& message) {
  auto formatter = MakeLogFormatter(format);
  EXPECT_TRUE(formatter.ok()) << formatter.status().ToString();
  spdlog::details::log_msg msg("batchd", spdlog::level::warn, message);
  spdlog::memory_buf_t out;
  (*formatter)->format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(LoggingTest, JsonLinesEscapeQuotesBackslashesAndControlCharacters) {
  const std::string message = "run 1 task t[\"a\\b\"]: failed\n\tline 2 \x01 caf\xc3\xa9";
  std::string line = FormatLine("json", message);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line per entry";
  auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(parsed.is_discarded()) << line;
  EXPECT_EQ(parsed["msg"], message);
  EXPECT_EQ(parsed["level"], "warning");
  EXPECT_TRUE(parsed["ts"].is_string());
}

TEST(LoggingTest, TextLinesCarryTheMessageAsIs) {
  const std::string line = FormatLine("text", "plain \"quoted\" message");
  EXPECT_NE(line.find(" warning plain \"quoted\" message\n"), std::string::npos) << line;
}

TEST(LoggingTest, UnknownFormatIsRefused) {
  auto formatter = MakeLogFormatter("xml");
  ASSERT_FALSE(formatter.ok());
  EXPECT_EQ(formatter.status().message(), "unknown log format 'xml': expected text or json");
  EXPECT_EQ(SetupLogging("info", "xml").message(), "unknown log format 'xml': expected text or json");
  EXPECT_EQ(SetupLogging("loud", "text").message(),
            "unknown log level 'loud': expected trace, debug, info, warn, error, critical or off");
}

}  // namespace
}  // namespace batchd
