// Compares CronExpr::Next in UTC with python3-croniter, an independent implementation, on
// many expressions and start instants. It needs /usr/bin/python3 with croniter (the Debian
// package python3-croniter); if either is missing the test fails, it does not skip.

#include <date/tz.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "common/time.h"
#include "cron/cron.h"

namespace batchd::cron {
namespace {

constexpr int kFiresPerCase = 50;

// Expressions both implementations must agree on.
//
// Left out on purpose: a '*'-prefixed step in one day field while the other day field is
// restricted, e.g. "0 0 */2 * 1" or "0 0 1 * */2". batchd follows Vixie cron there: a field
// beginning with '*' counts as unrestricted (DOM_STAR/DOW_STAR), so both fields must match
// (odd days that are Mondays). croniter 1.3.5 expands "*/2" into a list first and then sees
// two restricted fields, so it fires when either matches (every odd day and every Monday).
// CronTest.StarStepDayOfMonthCountsAsUnrestricted and ...DayOfWeek... pin our behaviour.
//
// Also left out: a day-of-month list holding both 1 and 31 with February selected, e.g.
// "0 0 */10 * *" (days 1, 11, 21, 31). croniter 1.3.5 skips March 1 after Feb 21: it adds
// the days to "Feb 31", overshoots into March and moves on to March 11 (croniter bug
// taichino/croniter#178, fixed upstream in pallets-eco/croniter#178, 2025).
// CronTest.DayListWithThirtyFirstStillFiresOnMarchFirst pins the right answer.
const char* const kExpressions[] = {
    "* * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "5,35 */2 * * *",
    "1-30/5 * * * *",
    "5/10 * * * *",
    "*/7 */5 * * *",
    "0 0 * * *",
    "30 14 * * *",
    "0 */6 * * *",
    "0 8-18/2 * * 1-5",
    "0 9 * * 1-5",
    "0 9 * * MON-FRI",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 * * 5-7",
    "0 0 * * sat,sun",
    "0 0 * * */2",
    "0 0 * * 1/2",
    "0 0 * * 1-5/2",
    "0 0 1 * *",
    "0 0 31 * *",
    "0 0 30 * *",
    "0 0 29 * *",
    "0 0 29 2 *",
    "45 23 28-31 2 *",
    "0 0 31 1,3,5 *",
    "59 23 31 12 *",
    "0 0 1 1 *",
    "0 0 1 jan,JUL *",
    "0 0 1 */3 *",
    "0 0 15 FEB-APR *",
    "7,8,9 10-12 20-22 6-8 *",
    "15 3 */2 * *",
    "0 0 */20 * *",
    // Both day fields restricted: either matches (Vixie and croniter agree).
    "0 0 13 * 5",
    "0 0 1,15 * 1",
    "0 0 29 2 1",
    "0 0 1-7 * 1",
    "0 0 10-20 * SAT,SUN",
    "0 4 8-14 * 0",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
};

const char* const kStarts[] = {
    "2026-01-01T00:00:00Z",
    "2026-02-28T23:59:30Z",
    "2027-12-31T23:00:00Z",
    "2099-06-15T12:34:56Z",  // across 2100, which is not a leap year
};

// Reads "expression<TAB>start-epoch<TAB>count" lines; prints one line of epoch seconds each.
constexpr const char* kScript = R"PY(
import sys
from datetime import datetime, timezone
from croniter import croniter

with open(sys.argv[1]) as cases:
    for line in cases:
        expr, start, count = line.rstrip("\n").split("\t")
        it = croniter(expr, datetime.fromtimestamp(int(start), tz=timezone.utc))
        print(" ".join(str(int(it.get_next(float))) for _ in range(int(count))))
)PY";

// A file under the temp directory, removed when the test ends.
class TempFile {
 public:
  TempFile(const std::string& suffix, const std::string& contents) {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("batchd-croniter-XXXXXX" + suffix)).string();
    int fd = mkstemps(tmpl.data(), static_cast<int>(suffix.size()));
    EXPECT_GE(fd, 0) << "mkstemps failed";
    if (fd >= 0) close(fd);
    path_ = tmpl;
    std::ofstream(path_) << contents;
  }
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Case {
  std::string expr;
  SysSeconds start;
};

TEST(CroniterReferenceTest, NextMatchesCroniterInUtc) {
  const date::time_zone* utc = *LookupZone("UTC");
  std::vector<Case> cases;
  std::ostringstream input;
  for (const char* expr : kExpressions) {
    for (const char* start : kStarts) {
      auto t = ParseInstant(start, utc);
      ASSERT_TRUE(t.ok()) << t.status().message();
      cases.push_back({expr, *t});
      input << expr << '\t' << t->time_since_epoch().count() << '\t' << kFiresPerCase << '\n';
    }
  }
  TempFile script(".py", kScript);
  TempFile cases_file(".tsv", input.str());

  const std::string command = "/usr/bin/python3 " + script.path() + " " + cases_file.path() + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << "cannot run " << command;
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "/usr/bin/python3 with croniter is required (apt-get install python3-croniter); it said:\n"
      << output;

  std::istringstream lines(output);
  std::string line;
  size_t compared = 0;
  for (const Case& c : cases) {
    ASSERT_TRUE(std::getline(lines, line)) << "croniter gave no answer for '" << c.expr << "'";
    std::istringstream fields(line);
    auto expr = CronExpr::Parse(c.expr);
    ASSERT_TRUE(expr.ok()) << expr.status().message();
    SysSeconds t = c.start;
    for (int i = 0; i < kFiresPerCase; ++i) {
      long long want = 0;
      ASSERT_TRUE(fields >> want) << "short croniter answer for '" << c.expr << "': " << line;
      auto got = expr->Next(t, utc);
      ASSERT_TRUE(got) << c.expr;
      if (got->time_since_epoch().count() != want) {
        ADD_FAILURE() << "'" << c.expr << "' fire #" << i + 1 << " after " << FormatIsoUtc(c.start)
                      << ": batchd " << FormatIsoUtc(*got) << ", croniter "
                      << FormatIsoUtc(SysSeconds(std::chrono::seconds(want)));
        break;
      }
      t = *got;
      ++compared;
    }
  }
  EXPECT_EQ(compared, std::size(kExpressions) * std::size(kStarts) * kFiresPerCase);
}

}  // namespace
}  // namespace batchd::cron
