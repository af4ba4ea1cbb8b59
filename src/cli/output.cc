// Output helpers for human mode (see output.h).
#include "cli/output.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>

namespace batchd::cli {

namespace {

const Json& Null() {
  static const Json null;
  return null;
}

// Reads exactly `n` digits at `pos`.
bool Digits(std::string_view s, size_t& pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool Expect(std::string_view s, size_t& pos, std::string_view chars) {
  if (pos >= s.size() || chars.find(s[pos]) == std::string_view::npos) return false;
  ++pos;
  return true;
}

}  // namespace

const Json& Field(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return Null();
  auto it = obj.find(key);
  return it == obj.end() ? Null() : *it;
}

std::string Str(const Json& obj, std::string_view key, const std::string& fallback) {
  const Json& v = Field(obj, key);
  return v.is_string() ? v.get<std::string>() : fallback;
}

std::optional<int64_t> Int(const Json& obj, std::string_view key) {
  const Json& v = Field(obj, key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number()) return static_cast<int64_t>(v.get<double>());
  return std::nullopt;
}

std::optional<bool> Bool(const Json& obj, std::string_view key) {
  const Json& v = Field(obj, key);
  if (v.is_boolean()) return v.get<bool>();
  return std::nullopt;
}

std::string Cell(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
      return "-";
    case Json::value_t::string:
      return value.get<std::string>().empty() ? "-" : value.get<std::string>();
    case Json::value_t::boolean:
      return value.get<bool>() ? "yes" : "no";
    case Json::value_t::array: {
      if (value.empty()) return "-";
      std::string out;
      for (const auto& v : value) {
        if (!out.empty()) out += ",";
        out += Cell(v);
      }
      return out;
    }
    case Json::value_t::object: {
      if (value.empty()) return "-";
      // A dependency {task, partitions}: "extract[same]".
      if (value.contains("task") && value["task"].is_string()) {
        std::string out = value["task"].get<std::string>();
        const Json& p = Field(value, "partitions");
        if (!p.is_null() && Cell(p) != "all") out += "[" + Cell(p) + "]";
        return out;
      }
      // Partitions {values: [...]}, {range: [a, b]}, {command: "..."}: one key, shown as "key: v".
      std::string out;
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (!out.empty()) out += " ";
        out += it.key() + (value.size() == 1 ? ": " : "=") + Cell(it.value());
      }
      return out;
    }
    default:
      return value.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

std::optional<SysMillis> ParseApiTime(std::string_view s) {
  using namespace std::chrono;
  size_t pos = 0;
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!Digits(s, pos, 4, y) || !Expect(s, pos, "-") || !Digits(s, pos, 2, mo) || !Expect(s, pos, "-") ||
      !Digits(s, pos, 2, d)) {
    return std::nullopt;
  }
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  milliseconds ms{0};
  if (pos < s.size()) {
    if (!Expect(s, pos, "T ") || !Digits(s, pos, 2, h) || !Expect(s, pos, ":") || !Digits(s, pos, 2, mi)) {
      return std::nullopt;
    }
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!Digits(s, pos, 2, sec)) return std::nullopt;
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        int64_t scale = 100;
        bool any = false;
        while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
          ms += milliseconds((s[pos] - '0') * scale);
          scale /= 10;
          ++pos;
          any = true;
        }
        if (!any) return std::nullopt;
      }
    }
  }
  minutes offset{0};
  if (pos < s.size()) {
    if (s[pos] == 'Z' || s[pos] == 'z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int sign = s[pos] == '-' ? -1 : 1;
      ++pos;
      int oh, om = 0;
      if (!Digits(s, pos, 2, oh)) return std::nullopt;
      if (pos < s.size() && s[pos] == ':') ++pos;
      if (pos < s.size() && !Digits(s, pos, 2, om)) return std::nullopt;
      offset = minutes(sign * (oh * 60 + om));
    } else {
      return std::nullopt;
    }
  }
  if (pos != s.size()) return std::nullopt;
  return SysMillis(sys_days(ymd)) + hours(h) + minutes(mi) + seconds(sec) + ms - offset;
}

SysMillis Now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

std::string HumanDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms < 0) ms = 0;  // clock skew between daemon and client
  if (ms < 1000) return std::to_string(ms) + "ms";
  char buf[64];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
    return buf;
  }
  int64_t s = ms / 1000;
  int64_t days = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60, sec = s % 60;
  if (days > 0) {
    std::snprintf(buf, sizeof buf, "%lldd%lldh", static_cast<long long>(days), static_cast<long long>(h));
  } else if (h > 0) {
    std::snprintf(buf, sizeof buf, "%lldh%lldm", static_cast<long long>(h), static_cast<long long>(m));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%llds", static_cast<long long>(m), static_cast<long long>(sec));
  }
  return buf;
}

std::string ElapsedCell(const Json& obj, SysMillis now, std::string_view started, std::string_view ended) {
  auto start = ParseApiTime(Str(obj, started));
  if (!start) return "-";
  auto end = ParseApiTime(Str(obj, ended));
  return HumanDuration(std::chrono::duration_cast<std::chrono::milliseconds>((end ? *end : now) - *start));
}

std::string DiagnosticLine(const Json& d) {
  std::string line = Str(d, "file", "?");
  if (auto l = Int(d, "line"); l && *l > 0) {
    line += ":" + std::to_string(*l);
    if (auto c = Int(d, "column"); c && *c > 0) line += ":" + std::to_string(*c);
  }
  return line + ": " + Str(d, "message");
}

void PrintJson(const OrderedJson& value) {
  std::cout << value.dump(2, ' ', false, OrderedJson::error_handler_t::replace) << "\n";
}

std::string Plural(int64_t n, std::string_view singular, std::string_view plural) {
  std::string word = n == 1 ? std::string(singular)
                            : (plural.empty() ? std::string(singular) + "s" : std::string(plural));
  return std::to_string(n) + " " + word;
}

size_t DisplayWidth(std::string_view utf8) {
  size_t n = 0;
  for (unsigned char c : utf8) {
    if ((c & 0xC0) != 0x80) ++n;  // count lead bytes only
  }
  return n;
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(headers_.size(), 0);
  for (size_t i = 0; i < headers_.size(); ++i) widths[i] = DisplayWidth(headers_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - DisplayWidth(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  print_row(headers_);
  for (const auto& row : rows_) print_row(row);
}

void Details::Add(std::string key, std::string value) { rows_.emplace_back(std::move(key), std::move(value)); }

void Details::Print(std::ostream& out) const {
  size_t width = 0;
  for (const auto& [k, v] : rows_) width = std::max(width, DisplayWidth(k));
  for (const auto& [k, v] : rows_) {
    // Continuation lines of a multi-line value line up under its first line.
    std::string pad(width + 2, ' ');
    out << k << std::string(width - DisplayWidth(k) + 2, ' ');
    size_t start = 0;
    while (true) {
      size_t nl = v.find('\n', start);
      out << v.substr(start, nl == std::string::npos ? std::string::npos : nl - start) << "\n";
      if (nl == std::string::npos) break;
      start = nl + 1;
      out << pad;
    }
  }
}

std::string Shorten(std::string_view text, size_t max) {
  max = std::max<size_t>(max, 4);
  size_t nl = text.find('\n');
  bool cut = nl != std::string_view::npos;
  std::string_view line = text.substr(0, nl);
  if (DisplayWidth(line) > max) {
    size_t count = 0, i = 0;
    for (; i < line.size(); ++i) {
      if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80 && ++count > max - 3) break;
    }
    line = line.substr(0, i);
    cut = true;
  }
  return std::string(line) + (cut ? "..." : "");
}

bool IsTerminal(int fd) { return ::isatty(fd) == 1; }

int TerminalWidth(int fd) {
  struct winsize ws {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 0;
}

}  // namespace batchd::cli
