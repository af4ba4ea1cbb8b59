#pragma once
// Output helpers for batchctl's human mode: reading fields of API replies without throwing,
// aligned tables, durations, terminals. Everything here is pure except the tty queries.

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace batchd::cli {

using Json = nlohmann::json;
// For output whose key order is part of its readability (the SPEC's --json shapes).
using OrderedJson = nlohmann::ordered_json;
using SysMillis = std::chrono::sys_time<std::chrono::milliseconds>;

// `obj[key]` when obj is an object that has it, else null. Never throws.
const Json& Field(const Json& obj, std::string_view key);
// The field as a string, or `fallback` when missing, null or not a string.
std::string Str(const Json& obj, std::string_view key, const std::string& fallback = "");
// The field as an integer when it is a number.
std::optional<int64_t> Int(const Json& obj, std::string_view key);
// The field as a bool when it is one.
std::optional<bool> Bool(const Json& obj, std::string_view key);

// A JSON value as a table cell: strings as is, null as "-", bools "yes"/"no", arrays joined
// with ",", objects compactly ("values: us,eu,apac" for partitions; else key=value,...).
std::string Cell(const Json& value);
inline std::string Cell(const Json& obj, std::string_view key) { return Cell(Field(obj, key)); }

// The API's ISO-8601 instants: "2026-03-01T10:00:00.123Z", "2026-03-01T00:00:00+01:00".
std::optional<SysMillis> ParseApiTime(std::string_view text);
SysMillis Now();
// "850ms", "4.2s", "1m12s", "2h5m", "3d4h".
std::string HumanDuration(std::chrono::milliseconds d);
// The duration between the fields `started` and `ended` of `obj` (ended missing: until
// `now`, for something still running); "-" when it has not started.
std::string ElapsedCell(const Json& obj, SysMillis now, std::string_view started = "started_at",
                        std::string_view ended = "ended_at");

// "file:line:column: message" for a {file, line, column, message} diagnostic.
std::string DiagnosticLine(const Json& diagnostic);

// Pretty JSON on stdout; invalid UTF-8 (a log, a command) is replaced, never thrown on.
// A plain Json converts (its keys sorted); an OrderedJson keeps the order it was built in.
void PrintJson(const OrderedJson& value);

// "1 run" / "3 runs".
std::string Plural(int64_t n, std::string_view singular, std::string_view plural = "");

// Columns separated by two spaces, each as wide as its widest cell (counted in UTF-8 code
// points); the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Key/value block ("state     running"), keys padded to the widest.
class Details {
 public:
  void Add(std::string key, std::string value);
  void Print(std::ostream& out) const;

 private:
  std::vector<std::pair<std::string, std::string>> rows_;
};

// The first line of `text`, cut to `max` code points with "..." when longer.
std::string Shorten(std::string_view text, size_t max);

size_t DisplayWidth(std::string_view utf8);
bool IsTerminal(int fd);
// Columns of the terminal on `fd`, or 0 when unknown.
int TerminalWidth(int fd);

}  // namespace batchd::cli
