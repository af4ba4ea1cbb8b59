#include "cli/offline_commands.h"

#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/time.h"
#include "cron/cron.h"
#include "dag/loader.h"

namespace batchd::cli {

using nlohmann::json;

void PrintError(const GlobalOptions& global, const std::string& code, const std::string& message) {
  if (global.json) {
    std::cout << json{{"error", {{"code", code}, {"message", message}}}}.dump(2) << "\n";
  } else {
    std::cerr << "batchctl: " << message << "\n";
  }
}

int RunValidate(const GlobalOptions& global, const std::vector<std::string>& files) {
  json errors = json::array();
  bool ok = true;
  size_t error_count = 0, bad_files = 0;
  for (const auto& file : files) {
    dag::LoadResult result = dag::LoadDagFile(file);
    if (result.ok()) {
      if (!global.json) {
        std::cout << file << ": ok (dag " << result.dag->name << ", " << result.dag->tasks.size()
                  << (result.dag->tasks.size() == 1 ? " task)" : " tasks)") << "\n";
      }
      continue;
    }
    ok = false;
    ++bad_files;
    error_count += result.errors.size();
    for (const auto& d : result.errors) {
      if (global.json) {
        errors.push_back({{"file", d.file}, {"line", d.line}, {"column", d.column}, {"message", d.message}});
      } else {
        std::cout << d.ToString() << "\n";
      }
    }
  }
  if (global.json) {
    std::cout << json{{"ok", ok}, {"errors", errors}}.dump(2) << "\n";
  } else if (!ok) {
    std::cout.flush();
    std::cerr << error_count << (error_count == 1 ? " error" : " errors") << " in " << bad_files
              << (bad_files == 1 ? " file" : " files") << "\n";
  }
  return ok ? kExitOk : kExitFailed;
}

int RunNext(const GlobalOptions& global, const NextOptions& options) {
  auto zone = LookupZone(options.tz);
  if (!zone.ok()) {
    PrintError(global, "invalid_argument", zone.status().message());
    return kExitFailed;
  }
  auto expr = cron::CronExpr::Parse(options.cron);
  if (!expr.ok()) {
    PrintError(global, "invalid_argument", expr.status().message());
    return kExitFailed;
  }
  SysSeconds from = std::chrono::floor<std::chrono::seconds>(SystemClock::Instance().Now());
  if (options.from) {
    auto parsed = ParseInstant(*options.from, *zone);
    if (!parsed.ok()) {
      PrintError(global, "invalid_argument", parsed.status().message());
      return kExitFailed;
    }
    from = *parsed;
  }
  json out = json::array();
  SysSeconds t = from;
  for (int i = 0; i < options.count; ++i) {
    auto next = expr->Next(t, *zone);
    if (!next) break;
    out.push_back(FormatIso(*next, *zone));
    t = *next;
  }
  if (global.json) {
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& s : out) std::cout << s.get<std::string>() << "\n";
  }
  return kExitOk;
}

}  // namespace batchd::cli
