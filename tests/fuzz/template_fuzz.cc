// `{{ name }}` templates on arbitrary text: CheckTemplate (with every variable and with
// the run-level subset) and RenderTemplate. Offsets stay inside the text, and a template
// that checks clean renders without any `{{` left over. Where dag/template.h has the
// shell renderer (BATCHD_FUZZ_SHELL_COMMAND, set by tests/fuzz/CMakeLists.txt), also
// RenderShellCommand, and ShellQuote must give back its input (less NUL bytes) when
// unquoted.
// Input: the template, then optionally a NUL byte and the value of params.region.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dag/template.h"

namespace {

std::map<std::string, std::string> Vars() {
  std::map<std::string, std::string> vars;
  for (const std::string& name : batchd::dag::TemplateVariables()) vars[name] = "v-" + name;
  vars["params.region"] = "eu west";
  vars["params.date"] = "2026-01-05";
  return vars;
}

#ifdef BATCHD_FUZZ_SHELL_COMMAND
// Sets `out` to the word a POSIX shell reads from a sequence of '...' and \' parts;
// false for any other syntax.
bool Unquote(std::string_view quoted, std::string* out) {
  out->clear();
  size_t i = 0;
  while (i < quoted.size()) {
    if (quoted[i] == '\\' && i + 1 < quoted.size() && quoted[i + 1] == '\'') {
      out->push_back('\'');
      i += 2;
    } else if (quoted[i] == '\'') {
      size_t end = quoted.find('\'', i + 1);
      if (end == std::string_view::npos) return false;
      out->append(quoted.substr(i + 1, end - i - 1));
      i = end + 1;
    } else {
      return false;
    }
  }
  return true;
}
#endif

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> params = {"region", "date"};
  std::map<std::string, std::string> vars = Vars();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view text = input.substr(0, input.find('\0'));
  if (text.size() < input.size()) vars["params.region"] = std::string(input.substr(text.size() + 1));

  auto errors = batchd::dag::CheckTemplate(text, params);
  for (const auto& e : errors) {
    if (e.offset > text.size() || e.message.empty()) abort();
  }
  for (const auto& e : batchd::dag::CheckTemplate(text, params, batchd::dag::RunTemplateVariables())) {
    if (e.offset > text.size() || e.message.empty()) abort();
  }
  std::string rendered = batchd::dag::RenderTemplate(text, vars);
  if (errors.empty() && vars["params.region"].find('{') == std::string::npos &&
      rendered.find("{{") != std::string::npos) {
    abort();
  }

#ifdef BATCHD_FUZZ_SHELL_COMMAND
  for (const auto& e : batchd::dag::CheckTemplate(text, params, batchd::dag::TemplateVariables(),
                                                  batchd::dag::TemplateUse::kShellCommand)) {
    if (e.offset > text.size() || e.message.empty()) abort();
  }
  (void)batchd::dag::RenderShellCommand(text, vars);
  // No command line can carry a NUL byte: values lose theirs.
  std::string value = vars["params.region"], unquoted;
  std::erase(value, '\0');
  if (!Unquote(batchd::dag::ShellQuote(vars["params.region"]), &unquoted) || unquoted != value) abort();
#endif
  return 0;
}
