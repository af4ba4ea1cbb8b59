// Robustness: whatever bytes the loader is given, it returns either a Dag or at least
// one error. It never crashes, throws, hangs or recurses without bound. The inputs are
// the example DAGs truncated at every byte and mutated with a fixed-seed generator,
// plus hand-made hostile files: junk, deep nesting, alias bombs, huge files.

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "dag/loader.h"

namespace batchd::dag {
namespace {

std::vector<std::string> ExampleDags() {
  std::vector<std::string> texts;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(BATCHD_SOURCE_DIR) + "/dags")) {
    if (entry.path().extension() == ".yaml") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());  // deterministic order
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    texts.push_back(ss.str());
  }
  return texts;
}

// The loader's contract for any input.
void ExpectWellFormed(const LoadResult& r, std::string_view input, const std::string& what) {
  ASSERT_EQ(r.ok(), r.dag != nullptr) << what;
  ASSERT_TRUE(r.ok() || !r.errors.empty()) << what;
  const int lines = static_cast<int>(std::count(input.begin(), input.end(), '\n')) + 1;
  for (const Diagnostic& d : r.errors) {
    ASSERT_FALSE(d.message.empty()) << what;
    ASSERT_GE(d.line, 0) << what << ": " << d.ToString();
    ASSERT_LE(d.line, lines) << what << ": " << d.ToString();
    if (d.line > 0) {
      ASSERT_GE(d.column, 1) << what << ": " << d.ToString();
    }
  }
}

LoadResult LoadChecked(std::string_view input, const std::string& what) {
  LoadResult r;
  EXPECT_NO_THROW(r = LoadDagString(input, "fuzz.yaml")) << what;
  ExpectWellFormed(r, input, what);
  return r;
}

// CPU time, which a loaded build machine disturbs less than wall time.
double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// Every byte offset of the first and last 512 bytes (where the top-level keys and the
// ends of documents are), and every fourth one in between: parsing each prefix costs
// time proportional to its length, and every offset of all examples took seconds.
TEST(LoaderFuzzTest, ExamplesTruncatedAtDenseOffsets) {
  int loads = 0;
  for (const std::string& text : ExampleDags()) {
    ASSERT_TRUE(LoadDagString(text, "x.yaml").ok());
    for (size_t n = 0; n <= text.size(); ++n) {
      bool edge = n < 512 || n + 512 > text.size();
      if (!edge && n % 4 != 0) continue;
      LoadChecked(std::string_view(text).substr(0, n), "truncated at " + std::to_string(n));
      if (HasFatalFailure()) return;
      ++loads;
    }
  }
  EXPECT_GT(loads, 2500);
}

// Byte flips (to any byte, including NUL and invalid UTF-8), YAML-significant
// characters, deletions, duplicated and swapped lines; several mutations stacked.
std::string Mutate(std::string text, std::mt19937& rng) {
  static const std::string kSpecial = "[]{}:,-&*!|>'\"#?%@` \t\n";
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  int mutations = 1 + static_cast<int>(pick(4));
  for (int m = 0; m < mutations && !text.empty(); ++m) {
    switch (pick(6)) {
      case 0:  // random byte
        text[pick(text.size())] = static_cast<char>(pick(256));
        break;
      case 1:  // YAML-significant character
        text[pick(text.size())] = kSpecial[pick(kSpecial.size())];
        break;
      case 2: {  // delete a run of bytes
        size_t at = pick(text.size());
        text.erase(at, 1 + pick(16));
        break;
      }
      case 3:    // duplicate a line
      case 4: {  // or move it elsewhere
        size_t at = pick(text.size());
        size_t begin = text.rfind('\n', at);
        begin = begin == std::string::npos ? 0 : begin + 1;
        size_t end = text.find('\n', at);
        end = end == std::string::npos ? text.size() : end + 1;
        std::string line = text.substr(begin, end - begin);
        if (m % 2) text.erase(begin, end - begin);
        text.insert(pick(text.size() + 1), line);
        break;
      }
      case 5: {  // insert an indentation change
        text.insert(pick(text.size() + 1), std::string(1 + pick(4), ' '));
        break;
      }
    }
  }
  return text;
}

TEST(LoaderFuzzTest, MutatedExamplesNeverCrash) {
  std::mt19937 rng(20260101);
  int loaded = 0, rejected = 0;
  for (const std::string& text : ExampleDags()) {
    for (int i = 0; i < 1000; ++i) {
      std::string mutant = Mutate(text, rng);
      LoadResult r = LoadChecked(mutant, "mutant " + std::to_string(i));
      if (HasFatalFailure()) return;
      (r.ok() ? loaded : rejected)++;
    }
  }
  // Both outcomes occur: the generator neither always breaks nor never breaks a file.
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rejected, 0);
}

TEST(LoaderFuzzTest, RandomJunkWithinTheSizeLimitIsRejected) {
  std::mt19937 rng(42);
  std::string junk(kMaxDagFileBytes, '\0');
  for (char& c : junk) c = static_cast<char>(rng());
  LoadChecked(junk, "binary junk");
  // Printable YAML-ish junk gets through the encoding check to the parser.
  static const std::string kAlphabet = "ab: -[]{},&*!|>'\"#?\n  \t";
  for (char& c : junk) c = kAlphabet[rng() % kAlphabet.size()];
  LoadChecked(junk, "yaml-ish junk");
  for (int i = 0; i < 200; ++i) {
    std::string small(1 + rng() % 200, ' ');
    for (char& c : small) c = kAlphabet[rng() % kAlphabet.size()];
    LoadChecked(small, "small junk " + std::to_string(i));
  }
}

TEST(LoaderFuzzTest, FiftyMegabytesOfJunkIsRefusedBySize) {
  std::mt19937 rng(7);
  std::string junk(50u * 1024 * 1024, '\0');
  for (size_t i = 0; i < junk.size(); i += 4) {
    uint32_t v = rng();
    std::memcpy(&junk[i], &v, std::min<size_t>(4, junk.size() - i));
  }
  char name[] = "/tmp/batchd_fuzz_XXXXXX";
  int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  close(fd);
  double start = CpuSeconds();
  LoadResult r = LoadDagFile(name);
  double elapsed = CpuSeconds() - start;
  std::remove(name);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "file is too large: 52428800 bytes (the limit is 4194304 bytes)");
  EXPECT_LT(elapsed, 0.1);  // refused from its size, not read
  // The same junk handed over in memory (e.g. an API submit) is refused just as fast.
  LoadResult s = LoadChecked(junk, "50 MB in memory");
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].message, "file is too large: 52428800 bytes (the limit is 4194304 bytes)");
}

TEST(LoaderFuzzTest, DeepFlowNestingIsRefused) {
  const size_t kLevels = 100'000;
  LoadResult r = LoadChecked(std::string(kLevels, '['), "100k [");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "YAML nesting is too deep (more than 64 levels)");
  r = LoadChecked(std::string(kLevels, '[') + std::string(kLevels, ']'), "100k [ ]");
  EXPECT_EQ(r.errors[0].message, "YAML nesting is too deep (more than 64 levels)");
  std::string maps;
  for (size_t i = 0; i < kLevels; ++i) maps += "{a: ";
  r = LoadChecked(maps, "100k {a:");
  EXPECT_EQ(r.errors[0].message, "YAML nesting is too deep (more than 64 levels)");
  std::string dashes;
  for (size_t i = 0; i < kLevels; ++i) dashes += "- ";
  r = LoadChecked(dashes + "x\n", "100k block sequences on one line");
  EXPECT_EQ(r.errors[0].message, "YAML nesting is too deep (more than 64 levels)");
}

TEST(LoaderFuzzTest, DeepIndentedMapsAreRefused) {
  // As deep as fits in the size limit with one space per level (about 2,800 levels)...
  std::string yaml;
  for (size_t depth = 0; yaml.size() + depth + 4 < kMaxDagFileBytes; ++depth) {
    yaml += std::string(depth, ' ') + "a:\n";
  }
  LoadResult r = LoadChecked(yaml, "indented maps");
  EXPECT_EQ(r.errors[0].message, "YAML nesting is too deep (more than 64 levels)");
  // ...and 100,000 levels, which cannot fit: refused before parsing.
  std::string deeper;
  deeper.reserve(kMaxDagFileBytes + 64);
  for (size_t depth = 0; depth < 100'000 && deeper.size() <= kMaxDagFileBytes; ++depth) {
    deeper += std::string(depth, ' ') + "a:\n";
  }
  r = LoadChecked(deeper, "100k indented maps");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0);
}

// "Billion laughs": nine levels of nine aliases each would expand to 9^9 nodes.
std::string AliasBomb() {
  std::string yaml = "x-l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int level = 1; level <= 9; ++level) {
    std::string prev = "*l" + std::to_string(level - 1);
    yaml += "x-l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 9; ++i) yaml += (i ? ", " : "") + prev;
    yaml += "]\n";
  }
  return yaml;
}

TEST(LoaderFuzzTest, AliasBombIsNeverExpanded) {
  double start = CpuSeconds();
  const std::string bomb = AliasBomb();
  LoadResult r = LoadChecked(bomb + "dag: d\ndescription: *l9\nparams: *l9\nenv: {X: *l9}\n"
                                    "tasks: *l9\n",
                             "alias bomb at the top");
  EXPECT_FALSE(r.ok());
  r = LoadChecked(bomb + "dag: d\ntasks:\n  - id: a\n    command: *l9\n    depends_on: *l9\n"
                         "    partitions: {values: *l9}\n    retry: {retry_on_exit_codes: *l9}\n",
                  "alias bomb in a task");
  EXPECT_FALSE(r.ok());
  // Merge keys over the bomb: each merged mapping is visited once.
  std::string merges = "x-m0: &m0 {command: echo}\n";
  for (int level = 1; level <= 9; ++level) {
    std::string prev = "*m" + std::to_string(level - 1);
    merges += "x-m" + std::to_string(level) + ": &m" + std::to_string(level) + " {<<: [";
    for (int i = 0; i < 9; ++i) merges += (i ? ", " : "") + prev;
    merges += "]}\n";
  }
  r = LoadChecked(merges + "dag: d\ntasks:\n  - {<<: *m9, id: a}\n", "merge-key bomb");
  EXPECT_TRUE(r.ok());
  EXPECT_LT(CpuSeconds() - start, 1.0);
}

TEST(LoaderFuzzTest, ManyTasksAndLongChainsStayFast) {
  // A dependency chain of n tasks, then the same chain closed into a cycle: the graph
  // checks are iterative and linear. Linearity is judged by how the cost grows from 2,500
  // to 10,000 tasks (4x for linear work, 16x for quadratic), not by a wall-clock figure,
  // which depends on the machine and the sanitizer in use.
  auto chain_seconds = [](int n) {
    std::string yaml = "dag: chain\ntasks:\n  - {id: t0, command: x}\n";
    for (int i = 1; i < n; ++i) {
      yaml += "  - {id: t" + std::to_string(i) + ", command: x, depends_on: [t" + std::to_string(i - 1) + "]}\n";
    }
    const std::string last = "t" + std::to_string(n - 1);
    double start = CpuSeconds();
    LoadResult r = LoadChecked(yaml, "long chain");
    EXPECT_TRUE(r.ok());
    std::string cyclic = yaml;
    cyclic.replace(cyclic.find("{id: t0, command: x}"), 20, "{id: t0, command: x, depends_on: [" + last + "]}");
    r = LoadChecked(cyclic, "long cycle");
    EXPECT_EQ(r.errors.size(), 1u);
    if (!r.errors.empty()) {
      EXPECT_EQ(r.errors[0].message.substr(0, 34), "dependency cycle: t0 -> t1 -> t2 -");
    }
    return CpuSeconds() - start;
  };
  chain_seconds(1'000);  // warm-up: allocator and parser state
  double small = chain_seconds(2'500);
  double large = chain_seconds(10'000);
  EXPECT_LT(large, 8 * small + 0.05) << "2,500 tasks: " << small << " s, 10,000 tasks: " << large << " s";
}

TEST(LoaderFuzzTest, OddButValidYamlFeatures) {
  const char* inputs[] = {
      "%YAML 1.2\n---\ndag: d\ntasks: [{id: a, command: x}]\n...\n",
      "dag: !!str d\ntasks: !!seq [{id: !custom a, command: x}]\n",
      "? dag\n: d\n? tasks\n: [{id: a, command: x}]\n",
      "dag: d\ntasks: [{id: a, command: \"\\u00e9\\x41\\t\"}]\n",
      "\"dag\": 'd'\n'tasks':\n- id: a\n  command: >\n    folded\n    text\n",
      "dag: d\ntasks: [{id: a, command: x}]\n--- \n# trailing comment\n",
      "&anchor dag: d\ntasks: [{id: a, command: x}]\n",
      "dag: d\ntasks: [{id: a, command: x}, ]\n",
      "{dag: d, tasks: [{id: a, command: x}]}",
      ",", "[a]\n,", "[:", "{:", "[:]", "{:]", "- !+(.,.)", "bad YAML: [", "---\n---\n---\n",
  };
  for (const char* input : inputs) LoadChecked(input, input);
}

}  // namespace
}  // namespace batchd::dag
