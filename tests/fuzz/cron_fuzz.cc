// Cron expressions: Parse on arbitrary text, and for every expression it accepts, Next
// and Prev from an input-chosen instant in an input-chosen zone. Input: the expression,
// optionally followed by '\n' and bytes that pick the zone and the instant.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <date/tz.h>

#include "cron/cron.h"

namespace {

// Zones with the awkward rules: DST at 02:00 and at midnight, half-hour DST, no DST.
const char* const kZones[] = {"UTC", "Europe/Berlin", "America/New_York", "America/Sao_Paulo",
                              "Australia/Lord_Howe", "Asia/Kathmandu", "America/Santiago"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view text = input;
  uint64_t pick = 0;
  if (size_t nl = input.find('\n'); nl != std::string_view::npos) {
    text = input.substr(0, nl);
    for (unsigned char c : input.substr(nl + 1)) pick = pick * 131 + c;
  }
  auto expr = batchd::cron::CronExpr::Parse(text);
  if (!expr.ok()) {
    if (expr.status().message().empty()) abort();
    return 0;
  }
  const date::time_zone* zone = date::locate_zone(kZones[pick % std::size(kZones)]);
  // An instant between 1971 and 2100, to the second.
  const auto at = batchd::SysSeconds(std::chrono::seconds(31536000 + static_cast<int64_t>((pick / 7) % 4070908800ull)));
  // Parse refuses expressions that never fire, so both directions must find a time.
  auto next = expr->Next(at, zone);
  if (!next || *next <= at) abort();
  auto prev = expr->Prev(at, zone);
  if (!prev || *prev >= at) abort();
  // Nothing fires between Prev and Next: after Prev comes `at` itself or Next.
  auto after_prev = expr->Next(*prev, zone);
  if (after_prev != next && after_prev != at) abort();
  return 0;
}
