// `{{ name }}` templates: rendering and checking are pure functions, tested exhaustively.

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "dag/template.h"

extern char** environ;

namespace batchd::dag {
namespace {

using ::testing::IsEmpty;

const std::map<std::string, std::string> kVars = {
    {"dag", "billing"}, {"task", "extract"}, {"partition", "eu"}, {"ds", "2026-03-29"},
    {"logical_date", "2026-03-29T02:30:00+02:00"}, {"attempt", "2"}, {"params.region", "eu-west"}};

// "offset: message (hint)" for compact assertions.
std::vector<std::string> Check(std::string_view text, const std::vector<std::string>& params = {}) {
  std::vector<std::string> out;
  for (const TemplateError& e : CheckTemplate(text, params)) {
    out.push_back(std::to_string(e.offset) + ": " + e.message + (e.hint.empty() ? "" : " (" + e.hint + ")"));
  }
  return out;
}

TEST(TemplateTest, RendersVariablesWithOrWithoutSpaces) {
  EXPECT_EQ(RenderTemplate("{{ dag }}/{{task}}/{{  partition  }}/{{ds }}", kVars), "billing/extract/eu/2026-03-29");
  EXPECT_EQ(RenderTemplate("run {{ attempt }} of {{ params.region }}", kVars), "run 2 of eu-west");
}

TEST(TemplateTest, LeavesLiteralTextUnchanged) {
  EXPECT_EQ(RenderTemplate("", kVars), "");
  EXPECT_EQ(RenderTemplate("plain text", kVars), "plain text");
  EXPECT_EQ(RenderTemplate("awk '{ print $1 }' | sed 's/}}/x/'", kVars), "awk '{ print $1 }' | sed 's/}}/x/'");
  EXPECT_EQ(RenderTemplate("${HOME} { } {x} }} {", kVars), "${HOME} { } {x} }} {");
  EXPECT_EQ(RenderTemplate("multi\nline {{ ds }}\n", kVars), "multi\nline 2026-03-29\n");
  EXPECT_EQ(RenderTemplate("unicode é {{ dag }} ☕", kVars), "unicode é billing ☕");
}

TEST(TemplateTest, RendersAdjacentAndRepeatedVariables) {
  EXPECT_EQ(RenderTemplate("{{dag}}{{dag}}{{ task }}", kVars), "billingbillingextract");
  // The first `{{` opens and the first `}}` closes: the name is `{ dag`, unknown.
  EXPECT_EQ(RenderTemplate("{{{ dag }}}", kVars), "}");
}

TEST(TemplateTest, RendersUnknownVariablesAsEmpty) {
  EXPECT_EQ(RenderTemplate("a{{ nope }}b", kVars), "ab");
  EXPECT_EQ(RenderTemplate("a{{ params.missing }}b", kVars), "ab");
  EXPECT_EQ(RenderTemplate("a{{}}b", kVars), "ab");
}

TEST(TemplateTest, KeepsUnterminatedOpeningLiterally) {
  EXPECT_EQ(RenderTemplate("echo {{ ds }} {{ oops", kVars), "echo 2026-03-29 {{ oops");
  EXPECT_EQ(RenderTemplate("{{", kVars), "{{");
}

TEST(TemplateTest, AcceptsEveryDocumentedVariable) {
  for (const std::string& name : TemplateVariables()) {
    EXPECT_THAT(Check("{{ " + name + " }}"), IsEmpty()) << name;
  }
  EXPECT_EQ(TemplateVariables().size(), 10u);
}

TEST(TemplateTest, ReportsUnknownVariableWithOffsetAndSuggestion) {
  EXPECT_THAT(Check("echo {{ dss }}"), testing::ElementsAre("5: unknown template variable 'dss' (did you mean 'ds'?)"));
  EXPECT_THAT(Check("{{ logical-date }}"),
              testing::ElementsAre("0: unknown template variable 'logical-date' (did you mean 'logical_date'?)"));
  EXPECT_THAT(Check("{{ whatever }}"), testing::ElementsAre("0: unknown template variable 'whatever'"));
}

TEST(TemplateTest, AcceptsParamsOnlyWhenDeclared) {
  EXPECT_THAT(Check("{{ params.region }}", {"region"}), IsEmpty());
  EXPECT_THAT(Check("{{ params.region }}"), testing::ElementsAre("0: unknown template variable 'params.region'"));
  EXPECT_THAT(Check("{{ params.regoin }}", {"region"}),
              testing::ElementsAre("0: unknown template variable 'params.regoin' (did you mean 'params.region'?)"));
  EXPECT_THAT(Check("{{ params. }}", {"region"}), testing::ElementsAre("0: unknown template variable 'params.'"));
  EXPECT_THAT(Check("{{ region }}", {"region"}), testing::ElementsAre("0: unknown template variable 'region'"));
}

TEST(TemplateTest, ReportsUnterminatedAndEmptyVariables) {
  EXPECT_THAT(Check("a {{ ds"), testing::ElementsAre("2: unterminated '{{'"));
  EXPECT_THAT(Check("{{ ds }} {{"), testing::ElementsAre("9: unterminated '{{'"));
  EXPECT_THAT(Check("x {{ }}"), testing::ElementsAre("2: empty template variable '{{ }}'"));
}

TEST(TemplateTest, ReportsEveryProblemInOrder) {
  EXPECT_THAT(Check("{{ a }} {{ ds }} {{ b }} {{ c"),
              testing::ElementsAre("0: unknown template variable 'a'", "17: unknown template variable 'b'",
                                   "25: unterminated '{{'"));
}

TEST(TemplateTest, QuotesStrangeNamesSafely) {
  EXPECT_THAT(Check("{{ a\nb }}"), testing::ElementsAre("0: unknown template variable 'a\\nb'"));
}

TEST(TemplateTest, RestrictsVariablesToTheGivenSet) {
  EXPECT_THAT(CheckTemplate("{{ ds }} {{ params.p }}", {"p"}, RunTemplateVariables()), IsEmpty());
  std::vector<TemplateError> errors = CheckTemplate("{{ partition }}{{ nope }}", {}, RunTemplateVariables());
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].message, "template variable 'partition' is not available");
  EXPECT_EQ(errors[1].message, "unknown template variable 'nope'");
  EXPECT_EQ(errors[1].offset, 15u);
}


TEST(TemplateTest, RenderTemplatePastesValuesAsTheyAre) {
  std::map<std::string, std::string> vars = {{"params.f", "x$(touch pwned) 'q' \"d\""}};
  EXPECT_EQ(RenderTemplate("key/{{ params.f }}", vars), "key/x$(touch pwned) 'q' \"d\"");
  EXPECT_EQ(RenderTemplate("key/{{ params.f | raw }}", vars), "key/x$(touch pwned) 'q' \"d\"");
}

TEST(TemplateTest, ReportsUnknownAndMissingFilters) {
  EXPECT_THAT(Check("{{ ds | raw }} {{ ds|raw }}"), IsEmpty());
  EXPECT_THAT(Check("{{ ds | foo }}"), testing::ElementsAre("0: unknown template filter 'foo'"));
  EXPECT_THAT(Check("x {{ ds | rwa }}"), testing::ElementsAre("2: unknown template filter 'rwa' (did you mean 'raw'?)"));
  EXPECT_THAT(Check("{{ ds | }}"), testing::ElementsAre("0: missing template filter after '|'"));
  EXPECT_THAT(Check("{{ ds | raw | upper }}"), testing::ElementsAre("0: unknown template filter 'upper'"));
  EXPECT_THAT(Check("{{ | raw }}"), testing::ElementsAre("0: empty template variable '{{ }}'"));
  EXPECT_THAT(Check("{{ dss | raw }}"), testing::ElementsAre("0: unknown template variable 'dss' (did you mean 'ds'?)"));
}

// --- shell commands ------------------------------------------------------------------

TEST(ShellQuoteTest, SingleQuotesEveryValue) {
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("abc"), "'abc'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("$(x) `y` \"z\" \\"), "'$(x) `y` \"z\" \\'");
}

std::string Cmd(std::string_view text, std::string_view value) {
  return RenderShellCommand(text, {{"params.x", std::string(value)}, {"ds", "2026-03-29"}});
}

TEST(RenderShellCommandTest, QuotesForEachContext) {
  EXPECT_EQ(Cmd("echo {{ params.x }}", "a b"), "echo 'a b'");
  EXPECT_EQ(Cmd("echo --date={{ params.x }}.csv", "it's"), "echo --date='it'\\''s'.csv");
  EXPECT_EQ(Cmd("echo \"{{ params.x }}\"", "$a`b\"c\\d'e"), "echo \"\\$a\\`b\\\"c\\\\d'e\"");
  EXPECT_EQ(Cmd("echo '{{ params.x }}'", "it's $x"), "echo 'it'\\''s $x'");
  EXPECT_EQ(Cmd("echo \"a 'b\" {{ params.x }}", "c"), "echo \"a 'b\" 'c'");
  EXPECT_EQ(Cmd("echo 'a \"b' \"{{ params.x }}\"", "$c"), "echo 'a \"b' \"\\$c\"");
  EXPECT_EQ(Cmd("echo \\' {{ params.x }}", "c"), "echo \\' 'c'");
  EXPECT_EQ(Cmd("echo \"\\\"{{ params.x }}\"", "$c"), "echo \"\\\"\\$c\"");
  EXPECT_EQ(Cmd("echo `echo {{ params.x }}`", "a`b$c\\"), "echo `echo 'a\\`b\\$c\\\\'`");
  EXPECT_EQ(Cmd("echo \"`echo \"{{ params.x }}\"`\"", "\"$"), "echo \"`echo \"\\\\\\\"\\\\\\$\"`\"");
  EXPECT_EQ(Cmd("echo x # {{ params.x }}", "a\nb"), "echo x # a b");
  EXPECT_EQ(Cmd("cat <<EOF\n{{ params.x }}\nEOF", "$a\nEOF"), "cat <<EOF\n${1+}\\$a\n${1+}EOF\nEOF");
  EXPECT_EQ(Cmd("echo {{ params.x | raw }}", "$HOME 'x"), "echo $HOME 'x");
}

TEST(RenderShellCommandTest, DropsNulBytes) {
  EXPECT_EQ(Cmd("echo {{ params.x }}", std::string("a\0b", 3)), "echo 'ab'");
}

TEST(RenderShellCommandTest, KeepsTheExampleDagsShapes) {
  EXPECT_EQ(Cmd("echo \"requested by '{{ params.x }}'\" > {{ ds }}/README", "/in/a b.request"),
            "echo \"requested by '/in/a b.request'\" > '2026-03-29'/README");
  EXPECT_EQ(Cmd("ls -1d {{ params.x }}/*/ | head -n -{{ ds }}", "/tmp/b"),
            "ls -1d '/tmp/b'/*/ | head -n -'2026-03-29'");
  EXPECT_EQ(Cmd("echo \"n $(wc -l < \"{{ params.x }}/s.txt\") for {{ ds }}\"", "/w"),
            "echo \"n $(wc -l < \"/w/s.txt\") for 2026-03-29\"");
}

// A throwaway working directory for running rendered commands; removed afterwards.
class ShellDir {
 public:
  ShellDir() {
    std::string tmpl = ::testing::TempDir() + "/template_test_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~ShellDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  // Names in the directory: a value that ran `touch pwned` would leave one.
  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) out.push_back(e.path().filename().string());
    return out;
  }

 private:
  std::string path_;
};

// Runs `shell -c command` in `dir`, as the executor does; returns its stdout.
std::string RunShell(const std::string& shell, const std::string& command, const std::string& dir, int* status) {
  // posix_spawn, not fork: forking a sanitized test process is slow, and this runs
  // thousands of shells.
  int fds[2];
  if (::pipe(fds) != 0) return "<pipe failed>";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  std::vector<char*> argv = {const_cast<char*>(shell.c_str()), const_cast<char*>("-c"),
                             const_cast<char*>(command.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, shell.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return "<spawn failed>";
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  ::waitpid(pid, status, 0);
  return out;
}

std::vector<std::string> Shells() {
  // /bin/sh (dash on Debian) runs task commands; bash is /bin/sh elsewhere.
  std::vector<std::string> out = {"/bin/sh"};
  if (::access("/bin/bash", X_OK) == 0) out.push_back("/bin/bash");
  return out;
}

std::vector<std::string> HostileValues() {
  std::vector<std::string> values = {
      "$(touch pwned)", "`touch pwned`", "x$(touch pwned).csv", "'", "\"", "\\", "a\nb", "\n", "a\n\n",
      ";touch pwned", "&& touch pwned", "|| touch pwned", "| touch pwned", "*", "?", "[a]", "~", "~root",
      " spaced  value ", "", "\t", "ends with backslash\\", "\\\\", "'; touch pwned; '", "\"; touch pwned; \"",
      "'\"'\"", "\\'", "\\\"", "$HOME", "${HOME}", "$((1+1))", "${x:-$(touch pwned)}", "#not a comment",
      "-n", "%s%d", "it's a 'quoted' \"name\"", "EOF", "a\nEOF\ntouch pwned\n", "EOF\ntouch pwned",
      ")", "(", "$(", "`", "}}", "{{ ds }}", "!", "a;b&c|d>e<f", "> pwned", "$'\\x41'", "$\"x\"",
      "x\\\ntouch pwned", "\\\n", "'\\''", "esac", "case", ")touch pwned;(",
  };
  std::string high;
  for (int b = 0x80; b <= 0xFF; ++b) high += static_cast<char>(b);
  values.push_back(high);
  std::string control;
  for (int b = 1; b < 0x20; ++b) control += static_cast<char>(b);
  values.push_back(control);
  values.push_back("caf\xc3\xa9 \xe2\x98\x95 \xff\xfe");
  return values;
}

std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// A command template holding `{{ params.x }}` (maybe several times) and what it prints
// for value v: `before + v + after`.
struct ShellCase {
  std::string name;
  std::string command;
  std::string before;
  std::string after;
};

const std::vector<ShellCase>& ShellCases() {
  static const std::vector<ShellCase> cases = {
      {"unquoted", "printf %s {{ params.x }}", "", ""},
      {"in a word", "printf %s pre{{ params.x }}.csv", "pre", ".csv"},
      {"option value", "printf %s --date={{ params.x }}", "--date=", ""},
      {"path", "printf %s /data/{{ params.x }}/f", "/data/", "/f"},
      {"double quotes", "printf %s \"{{ params.x }}\"", "", ""},
      {"inside double quotes", "printf %s \"a '{{ params.x }}' $(echo b)\"", "a '", "' b"},
      {"single quotes", "printf %s '{{ params.x }}'", "", ""},
      {"inside single quotes", "printf %s 'a \"{{ params.x }}\" $b'", "a \"", "\" $b"},
      {"mixed", "printf %s 'a'\"b\"{{ params.x }}'c'\"{{ params.x }}\"\\'", "ab", "c"},
      {"after escaped quotes", "printf %s \\'\\\"{{ params.x }}", "'\"", ""},
      {"after a line continuation", "printf %s \\\n{{ params.x }}", "", ""},
      {"twice", "printf %s {{ params.x }} > a; printf %s {{ params.x }} >> a; cat a; rm a", "", ""},
      {"assignment", "v={{ params.x }}; printf %s \"$v\"", "", ""},
      {"command substitution", "printf %s \"$(printf %s {{ params.x }}; echo .)\"", "", "."},
      {"quotes in command substitution", "printf %s \"$(printf %s \"{{ params.x }}\" '{{ params.x }}'; echo .)\"", "",
       "."},
      {"nested command substitution", "printf %s \"$(printf %s \"$(printf %s {{ params.x }}; echo .)\")\"", "", "."},
      {"subshell in substitution", "printf %s \"$( (printf %s {{ params.x }}); echo .)\"", "", "."},
      {"backticks", "v=`printf %s {{ params.x }}; echo .`; printf %s \"$v\"", "", "."},
      {"quotes in backticks", "v=`printf %s \"{{ params.x }}\"; echo .`; printf %s \"$v\"", "", "."},
      {"single quotes in backticks", "v=`printf %s '{{ params.x }}'; echo .`; printf %s \"$v\"", "", "."},
      {"backticks in double quotes", "printf %s \"`printf %s {{ params.x }}; echo .`\"", "", "."},
      {"nested backticks", "v=`w=\\`printf %s {{ params.x }}; echo .\\`; printf %s \"$w\"`; printf %s \"$v\"", "", "."},
      {"after a comment", "# it's {{ params.x }}\nprintf %s {{ params.x }} # {{ params.x }}", "", ""},
      {"here-document", "cat <<EOF\n{{ params.x }}\nEOF", "", "\n"},
      {"here-document with tabs", "cat <<-EOF\n\t{{ params.x }}\n\tEOF\nprintf %s {{ params.x }}", "", "\n"},
      {"substitution in a here-document", "cat <<EOF\n$(printf %s \"{{ params.x }}\"; echo .)\nEOF", "", ".\n"},
      {"after a quoted here-document", "cat <<'EOF'\n'\"$x\nEOF\nprintf %s {{ params.x }}", "'\"$x\n", ""},
      {"case", "case {{ params.x }} in *) printf %s {{ params.x }};; esac", "", ""},
      {"after parameter and arithmetic expansions", "printf %s ${u:-}$((1+1)){{ params.x }}", "2", ""},
      {"after a raw value", "printf %s {{ params.raw | raw }}{{ params.x }}\"", "'", ""},
  };
  return cases;
}

// What case `c` prints for `value`.
std::string Expected(const ShellCase& c, const std::string& value) {
  if (c.name == "twice") return value + value;
  if (c.name == "mixed") return "ab" + value + "c" + value + "'";
  if (c.name == "quotes in command substitution") return value + value + ".";
  if (c.name == "case" || c.name == "after a comment") return value;
  if (c.name == "here-document with tabs") return value + "\n" + value;
  if (c.name == "after a raw value") return "'" + value;
  return c.before + value + c.after;
}

// Every hostile value, in every context, run by every shell: the command prints exactly
// the value's bytes and creates nothing. One shell runs all values of a context, each
// output ended by a NUL byte, which no value holds.
TEST(RenderShellCommandTest, TheShellSeesExactlyTheValueInEveryContext) {
  ShellDir dir;
  const std::vector<std::string> values = HostileValues();
  for (const ShellCase& c : ShellCases()) {
    std::string script;
    std::vector<std::string> commands;
    for (const std::string& value : values) {
      commands.push_back(RenderShellCommand(c.command, {{"params.x", value}, {"params.raw", "\"'"}}));
      script += commands.back() + "\nprintf '\\000'\n";
    }
    for (const std::string& shell : Shells()) {
      int status = 0;
      std::string out = RunShell(shell, script, dir.path(), &status);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << c.name << " with " << shell;
      std::vector<std::string> outputs;
      for (size_t pos = 0, nul; (nul = out.find('\0', pos)) != std::string::npos; pos = nul + 1) {
        outputs.push_back(out.substr(pos, nul - pos));
      }
      ASSERT_EQ(outputs.size(), values.size()) << c.name << " with " << shell << ": " << Printable(out);
      for (size_t i = 0; i < values.size(); ++i) {
        EXPECT_EQ(Printable(outputs[i]), Printable(Expected(c, values[i])))
            << c.name << " with " << shell << ", value " << Printable(values[i])
            << "\ncommand: " << Printable(commands[i]);
      }
      EXPECT_THAT(dir.Entries(), IsEmpty()) << c.name << " with " << shell;
      for (const std::string& name : dir.Entries()) std::filesystem::remove_all(dir.path() + "/" + name);
    }
  }
}

// `printf '%s' {{ x }} > "out"{{ x }}.txt`: one file, named after the value and holding it.
TEST(RenderShellCommandTest, RedirectedOutputHoldsTheValue) {
  ShellDir dir;
  for (const std::string& value : HostileValues()) {
    if (value.find('/') != std::string::npos) continue;  // not a file name
    std::string command =
        RenderShellCommand("printf '%s' {{ params.x }} > \"out\"{{ params.x }}.txt", {{"params.x", value}});
    int status = 0;
    RunShell("/bin/sh", command, dir.path(), &status);
    const std::string name = "out" + value + ".txt";
    EXPECT_THAT(dir.Entries(), testing::ElementsAre(name)) << Printable(command);
    std::FILE* f = std::fopen((dir.path() + "/" + name).c_str(), "rb");
    std::string content;
    if (f) {
      for (int ch; (ch = std::fgetc(f)) != EOF;) content += static_cast<char>(ch);
      std::fclose(f);
    }
    EXPECT_EQ(Printable(content), Printable(value)) << Printable(command);
    for (const std::string& entry : dir.Entries()) std::filesystem::remove_all(dir.path() + "/" + entry);
  }
}

std::vector<std::string> CheckCommand(std::string_view text) {
  std::vector<std::string> out;
  for (const TemplateError& e : CheckTemplate(text, {"x"}, TemplateVariables(), TemplateUse::kShellCommand)) {
    out.push_back(std::to_string(e.offset) + ": " + e.message + (e.hint.empty() ? "" : " (" + e.hint + ")"));
  }
  return out;
}

TEST(RenderShellCommandTest, AcceptsEveryQuotableContext) {
  for (const ShellCase& c : ShellCases()) {
    std::vector<std::string> errors;
    for (const TemplateError& e :
         CheckTemplate(c.command, {"x", "raw"}, TemplateVariables(), TemplateUse::kShellCommand)) {
      errors.push_back(e.message);
    }
    EXPECT_THAT(errors, IsEmpty()) << c.name;
  }
}

TEST(RenderShellCommandTest, ReportsContextsThatCannotBeQuoted) {
  EXPECT_THAT(CheckCommand("echo \\{{ ds }}"),
              testing::ElementsAre("6: cannot quote template variable 'ds' right after a backslash "
                                   "(remove the backslash, or write '{{ ds | raw }}')"));
  EXPECT_THAT(CheckCommand("echo \"${{ ds }}\""),
              testing::ElementsAre("7: cannot quote template variable 'ds' right after '$' "
                                   "(remove the '$', or write '{{ ds | raw }}')"));
  EXPECT_THAT(CheckCommand("echo $'a {{ ds }}'"),
              testing::ElementsAre("9: cannot quote template variable 'ds' inside $'...' "
                                   "(use '...' or \"...\" instead, or write '{{ ds | raw }}')"));
  EXPECT_THAT(CheckCommand("echo ${v:-{{ params.x }}}"),
              testing::ElementsAre("10: cannot quote template variable 'params.x' inside ${...} "
                                   "(assign it to a shell variable first, or write '{{ params.x | raw }}')"));
  EXPECT_THAT(CheckCommand("echo $(( {{ params.x }} + 1 ))"),
              testing::ElementsAre("9: cannot quote template variable 'params.x' inside $((...)) "
                                   "(assign it to a shell variable first, or write '{{ params.x | raw }}')"));
  EXPECT_THAT(CheckCommand("cat <<'EOF'\n{{ ds }}\nEOF"),
              testing::ElementsAre("12: cannot quote template variable 'ds' inside a quoted here-document "
                                   "(use an unquoted delimiter, or its BATCHD_PARAM_ variable, or write "
                                   "'{{ ds | raw }}')"));
  EXPECT_THAT(CheckCommand("cat <<{{ ds }}"),
              testing::ElementsAre("6: cannot quote template variable 'ds' in a here-document delimiter"));
  EXPECT_THAT(CheckCommand("echo \"$(case a in a) echo;; esac)\" {{ ds }}"),
              testing::ElementsAre("35: cannot quote template variable 'ds' where the shell quoting cannot be "
                                   "told (after 'case' inside $(...))"));
  EXPECT_THAT(CheckCommand("echo $'\\'' {{ ds }}"),
              testing::ElementsAre("11: cannot quote template variable 'ds' where the shell quoting cannot be "
                                   "told (after \\' inside $'...')"));
  // `| raw` is the author's own business, and nothing else is reported for it.
  EXPECT_THAT(CheckCommand("echo ${v:-{{ ds | raw }}} \\{{ ds|raw }}"), IsEmpty());
  // Only shell commands are lexed.
  EXPECT_THAT(CheckTemplate("echo ${v:-{{ ds }}}", {}, TemplateVariables(), TemplateUse::kText), IsEmpty());
}

TEST(RenderShellCommandTest, RendersUnquotableContextsAsNothing) {
  EXPECT_EQ(Cmd("echo ${v:-{{ params.x }}}", "$(touch pwned)"), "echo ${v:-}");
  EXPECT_EQ(Cmd("echo $'{{ params.x }}'", "'$(touch pwned)"), "echo $''");
  EXPECT_EQ(Cmd("echo \\{{ params.x }}", "x"), "echo \\");
}

}  // namespace
}  // namespace batchd::dag
