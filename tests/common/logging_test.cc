// Log line formats: the json one must stay valid JSON whatever the message and the event's
// fields hold, and carry each field of the current LogContext as a key of its own.

#include "common/logging.h"

#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/ostream_sink.h>

namespace batchd {
namespace {

using Json = nlohmann::json;

std::string FormatLine(const std::string& format, const std::string& message,
                       spdlog::level::level_enum level = spdlog::level::warn) {
  auto formatter = MakeLogFormatter(format);
  EXPECT_TRUE(formatter.ok()) << formatter.status().ToString();
  spdlog::details::log_msg msg("batchd", level, message);
  spdlog::memory_buf_t out;
  (*formatter)->format(msg, out);
  return std::string(out.data(), out.size());
}

// The line as a JSON object (discarded, with a test failure, when it is not exactly one
// strict-JSON line ending in '\n').
Json ParseLine(std::string line) {
  EXPECT_FALSE(line.empty());
  if (line.empty()) return Json(Json::value_t::discarded);
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line per entry: " << line;
  Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(parsed.is_discarded()) << line;
  EXPECT_TRUE(parsed.is_object()) << line;
  return parsed;
}

Json JsonLine(const std::string& message, spdlog::level::level_enum level = spdlog::level::warn) {
  return ParseLine(FormatLine("json", message, level));
}

std::vector<std::string> Keys(const Json& object) {
  std::vector<std::string> keys;
  for (auto it = object.begin(); it != object.end(); ++it) keys.push_back(it.key());
  return keys;
}

// Bytes that are not UTF-8, and what the json lines show for them.
struct BadBytes {
  std::string raw;
  std::string shown;
};
const std::vector<BadBytes>& BadByteCases() {
  static const std::vector<BadBytes> cases = {
      {"\xff\xfe", "\xEF\xBF\xBD\xEF\xBF\xBD"},                  // never in UTF-8
      {"caf\xc3", "caf\xEF\xBF\xBD"},                             // truncated at the end
      {"caf\xc3" "x", "caf\xEF\xBF\xBDx"},                        // truncated in the middle
      {"\xe2\x82" "x", "\xEF\xBF\xBDx"},                          // 3-byte form cut short
      {"a\x80z", "a\xEF\xBF\xBDz"},                               // lone continuation byte
      {"\xc0\xaf", "\xEF\xBF\xBD\xEF\xBF\xBD"},                  // overlong '/'
      {"\xed\xa0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // UTF-16 surrogate
      {"\xf4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // past U+10FFFF
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},  // valid: kept
  };
  return cases;
}

const std::string kControl = std::string("a\"b\\c\nd\re\tf\x01g\x1f h\x7f i") + '\0' + "j\bk\fl";

TEST(LoggingTest, JsonLinesEscapeQuotesBackslashesAndControlCharacters) {
  const std::string message = "run 1 task t[\"a\\b\"]: failed\n\tline 2 \x01 caf\xc3\xa9";
  Json parsed = JsonLine(message);
  EXPECT_EQ(parsed["msg"], message);
  EXPECT_EQ(parsed["level"], "warning");
  EXPECT_TRUE(parsed["ts"].is_string());
  EXPECT_EQ(JsonLine(kControl)["msg"], kControl) << "NUL, DEL and every C0 control character round-trip";
}

TEST(LoggingTest, JsonLinesCarryEachLevelByName) {
  const std::vector<std::pair<spdlog::level::level_enum, std::string>> levels = {
      {spdlog::level::trace, "trace"}, {spdlog::level::debug, "debug"},     {spdlog::level::info, "info"},
      {spdlog::level::warn, "warning"}, {spdlog::level::err, "error"}, {spdlog::level::critical, "critical"},
  };
  for (const auto& [level, name] : levels) {
    Json parsed = JsonLine("the message", level);
    EXPECT_EQ(parsed["level"], name);
    EXPECT_EQ(parsed["msg"], "the message");
    EXPECT_EQ(Keys(parsed), (std::vector<std::string>{"level", "msg", "ts"})) << "no fields outside a context";
    // 2026-01-05T10:11:12.345+00:00
    EXPECT_EQ(parsed["ts"].get<std::string>().size(), 29u) << parsed["ts"];
  }
}

TEST(LoggingTest, JsonLinesReplaceBytesThatAreNotUtf8) {
  for (const auto& c : BadByteCases()) {
    Json parsed = JsonLine("partition " + c.raw + " failed");
    EXPECT_EQ(parsed["msg"], "partition " + c.shown + " failed");
  }
}

TEST(LoggingTest, JsonLinesCarryTheFieldsOfTheCurrentContext) {
  ScopedLogContext scope({.dag = "nightly", .run_id = "r-1", .task = "extract", .partition = "eu", .attempt = 2});
  Json parsed = JsonLine("run r-1 task extract[eu]: attempt 2 failed");
  EXPECT_EQ(Keys(parsed), (std::vector<std::string>{"attempt", "dag", "level", "msg", "partition", "run_id", "task", "ts"}));
  EXPECT_EQ(parsed["dag"], "nightly");
  EXPECT_EQ(parsed["run_id"], "r-1");
  EXPECT_EQ(parsed["task"], "extract");
  EXPECT_EQ(parsed["partition"], "eu");
  EXPECT_EQ(parsed["attempt"], 2);
  EXPECT_TRUE(parsed["attempt"].is_number_integer());
  EXPECT_EQ(parsed["msg"], "run r-1 task extract[eu]: attempt 2 failed");
}

TEST(LoggingTest, JsonLinesLeaveOutFieldsThatDoNotApply) {
  {
    ScopedLogContext scope({.dag = "nightly"});
    EXPECT_EQ(Keys(JsonLine("DAG nightly: x")), (std::vector<std::string>{"dag", "level", "msg", "ts"}));
  }
  {
    ScopedLogContext scope({.run_id = "r-1"});
    EXPECT_EQ(Keys(JsonLine("run r-1: x")), (std::vector<std::string>{"level", "msg", "run_id", "ts"}));
  }
  {
    ScopedLogContext scope({.dag = "d", .run_id = "r-1", .task = "t", .partition = "-"});
    Json parsed = JsonLine("x");
    EXPECT_EQ(Keys(parsed), (std::vector<std::string>{"dag", "level", "msg", "partition", "run_id", "task", "ts"}));
    EXPECT_EQ(parsed["partition"], "-");
  }
  {
    ScopedLogContext scope({.attempt = 0});
    EXPECT_EQ(JsonLine("x")["attempt"], 0) << "a set attempt is shown even when 0";
  }
  EXPECT_EQ(CurrentLogContext(), nullptr);
  EXPECT_EQ(Keys(JsonLine("x")), (std::vector<std::string>{"level", "msg", "ts"}));
}

TEST(LoggingTest, JsonFieldsReplaceBytesThatAreNotUtf8AndEscapeControlCharacters) {
  for (const auto& c : BadByteCases()) {
    ScopedLogContext scope({.dag = "d" + c.raw, .run_id = "r" + c.raw, .task = "t" + c.raw, .partition = c.raw});
    Json parsed = JsonLine("m" + c.raw);
    EXPECT_EQ(parsed["dag"], "d" + c.shown);
    EXPECT_EQ(parsed["run_id"], "r" + c.shown);
    EXPECT_EQ(parsed["task"], "t" + c.shown);
    EXPECT_EQ(parsed["partition"], c.shown);
    EXPECT_EQ(parsed["msg"], "m" + c.shown);
  }
  ScopedLogContext scope({.dag = kControl, .run_id = kControl, .task = kControl, .partition = kControl});
  Json parsed = JsonLine(kControl);
  for (const char* key : {"dag", "run_id", "task", "partition", "msg"}) EXPECT_EQ(parsed[key], kControl) << key;
}

TEST(LoggingTest, NestedContextsInheritAndRestore) {
  ScopedLogContext run({.dag = "d", .run_id = "r-1"});
  {
    ScopedLogContext attempt({.task = "t", .partition = "p", .attempt = 3});
    Json parsed = JsonLine("x");
    EXPECT_EQ(parsed["dag"], "d");
    EXPECT_EQ(parsed["run_id"], "r-1");
    EXPECT_EQ(parsed["task"], "t");
    EXPECT_EQ(parsed["partition"], "p");
    EXPECT_EQ(parsed["attempt"], 3);
    {
      ScopedLogContext other({.run_id = "r-2"});
      EXPECT_EQ(JsonLine("x")["run_id"], "r-2") << "an inner field replaces the outer one";
      EXPECT_EQ(JsonLine("x")["task"], "t");
    }
    EXPECT_EQ(JsonLine("x")["run_id"], "r-1");
  }
  EXPECT_EQ(Keys(JsonLine("x")), (std::vector<std::string>{"dag", "level", "msg", "run_id", "ts"}));
}

TEST(LoggingTest, ContextIsPerThread) {
  ScopedLogContext scope({.dag = "d", .run_id = "r-1"});
  Json other;
  std::thread([&] { other = JsonLine("from another thread"); }).join();
  EXPECT_EQ(Keys(other), (std::vector<std::string>{"level", "msg", "ts"}));
}

TEST(LoggingTest, TextLinesCarryTheMessageAsIs) {
  const std::string line = FormatLine("text", "plain \"quoted\" message");
  EXPECT_NE(line.find(" warning plain \"quoted\" message\n"), std::string::npos) << line;
}

TEST(LoggingTest, TextLinesDoNotShowTheContext) {
  const std::string without = FormatLine("text", "run r-1 task t[p]: failed");
  ScopedLogContext scope({.dag = "d", .run_id = "r-1", .task = "t", .partition = "p", .attempt = 1});
  const std::string with = FormatLine("text", "run r-1 task t[p]: failed");
  // Same line but for the timestamp (the first word).
  EXPECT_EQ(with.substr(with.find(' ')), without.substr(without.find(' ')));
  EXPECT_EQ(with.substr(with.find(' ')), " warning run r-1 task t[p]: failed\n");
}

// The default logger writes into `out` with `format` while it lives; the one before is
// restored after.
class CapturedLog {
 public:
  CapturedLog(const std::string& format, spdlog::level::level_enum level) : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out_);
    auto formatter = MakeLogFormatter(format);
    EXPECT_TRUE(formatter.ok());
    sink->set_formatter(std::move(*formatter));
    auto logger = std::make_shared<spdlog::logger>("captured", sink);
    logger->set_level(level);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
    return lines;
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

TEST(LoggingTest, LogEventCarriesItsContextForOneEvent) {
  CapturedLog log("json", spdlog::level::info);
  LogEvent(spdlog::level::warn, {.dag = "d", .run_id = "r-1", .task = "t", .partition = "\xff\"q\"", .attempt = 2},
           "run {} task {}[{}]: failed after {} attempt(s)", "r-1", "t", "\xff\"q\"", 2);
  spdlog::info("batchd stopped");
  LogEvent(spdlog::level::debug, {.run_id = "r-2"}, "below the level: not logged");
  const auto lines = log.Lines();
  ASSERT_EQ(lines.size(), 2u);
  Json first = ParseLine(lines[0]);
  EXPECT_EQ(first["level"], "warning");
  EXPECT_EQ(first["msg"], "run r-1 task t[\xEF\xBF\xBD\"q\"]: failed after 2 attempt(s)");
  EXPECT_EQ(first["dag"], "d");
  EXPECT_EQ(first["run_id"], "r-1");
  EXPECT_EQ(first["task"], "t");
  EXPECT_EQ(first["partition"], "\xEF\xBF\xBD\"q\"");
  EXPECT_EQ(first["attempt"], 2);
  EXPECT_EQ(Keys(ParseLine(lines[1])), (std::vector<std::string>{"level", "msg", "ts"})) << "the context ends with the event";
  EXPECT_EQ(CurrentLogContext(), nullptr);
}

TEST(LoggingTest, LogEventInsideAScopeAddsToIt) {
  CapturedLog log("json", spdlog::level::info);
  ScopedLogContext run({.dag = "d", .run_id = "r-1"});
  LogEvent(spdlog::level::info, {.task = "t", .partition = "p"}, "x");
  spdlog::info("y");
  const auto lines = log.Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Keys(ParseLine(lines[0])), (std::vector<std::string>{"dag", "level", "msg", "partition", "run_id", "task", "ts"}));
  EXPECT_EQ(Keys(ParseLine(lines[1])), (std::vector<std::string>{"dag", "level", "msg", "run_id", "ts"}));
}

TEST(LoggingTest, LogEventInTextShowsTheMessageOnly) {
  CapturedLog log("text", spdlog::level::info);
  LogEvent(spdlog::level::info, {.dag = "d", .run_id = "r-1"}, "run {} finished: {}", "r-1", "succeeded");
  const auto lines = log.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].substr(lines[0].find(' ')), " info run r-1 finished: succeeded\n");
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
