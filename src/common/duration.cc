#include "common/duration.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace batchd {

Result<Millis> ParseDuration(std::string_view text) {
  auto invalid = [&] {
    return Status::InvalidArgument("invalid duration '" + std::string(text) +
                                   "': expected a number with a unit ms, s, m, h or d (e.g. 500ms, 10s, 5m, 2h, 1d), "
                                   "or a bare number of seconds");
  };
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.empty()) return invalid();
  size_t i = 0;
  bool dot = false, digits = false;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || (s[i] == '.' && !dot))) {
    if (s[i] == '.') dot = true; else digits = true;
    ++i;
  }
  if (!digits) return invalid();
  double number = std::strtod(std::string(s.substr(0, i)).c_str(), nullptr);
  std::string_view unit = s.substr(i);
  double ms_per_unit;
  if (unit.empty() || unit == "s") ms_per_unit = 1000;
  else if (unit == "ms") ms_per_unit = 1;
  else if (unit == "m") ms_per_unit = 60'000;
  else if (unit == "h") ms_per_unit = 3'600'000;
  else if (unit == "d") ms_per_unit = 86'400'000;
  else return invalid();
  double total = number * ms_per_unit;
  if (!std::isfinite(total) || total > 1e15) return invalid();
  return Millis(static_cast<int64_t>(std::llround(total)));
}

std::string FormatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) { out = "-"; ms = -ms; }
  if (ms < 1000) return out + std::to_string(ms) + "ms";
  int64_t s = ms / 1000;
  int64_t days = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60, sec = s % 60;
  if (days) out += std::to_string(days) + "d";
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  // Milliseconds are shown below an hour ("1m0.5s", "1.25s"); from an hour up they are dropped.
  int64_t rem = ms % 1000;
  if (rem && !days && !h) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(sec), static_cast<long long>(rem));
    std::string frac = buf;
    while (frac.back() == '0') frac.pop_back();
    out += frac + "s";
  } else if (sec) {
    out += std::to_string(sec) + "s";
  }
  return out;
}

}  // namespace batchd
