#pragma once
// `{{ name }}` templates in commands and idempotency keys. Pure functions.
//
// Syntax: `{{` starts a variable and the next `}}` ends it; spaces inside are optional
// (`{{ds}}` == `{{ ds }}`). A variable may be followed by filters: `{{ x | raw }}`; `raw`
// is the only one. Everything else is literal text, including lone `{`, `}` and `}}`.
// There is no escape for a literal `{{`.
//
// Two renderings: RenderTemplate pastes values as they are (idempotency keys, which no
// shell sees); RenderShellCommand quotes each value for the shell quoting context at its
// placeholder, so that `/bin/sh -c` hands the task exactly the value's bytes and no value
// can add shell syntax.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace batchd::dag {

// The variables a template may use; params are written `params.NAME`.
// dag task partition run_id logical_date ds ts data_interval_start data_interval_end attempt
const std::vector<std::string>& TemplateVariables();

// The subset known before a run's partitions exist (for `partitions: {command: ...}`):
// dag run_id logical_date ds ts data_interval_start data_interval_end (and params.NAME).
const std::vector<std::string>& RunTemplateVariables();

struct TemplateError {
  size_t offset = 0;       // byte offset into the template where the problem starts
  std::string message;     // "unknown template variable 'foo'" / "unterminated '{{'"
  // A suggestion for the operator without the parentheses, e.g. "did you mean 'ds'?";
  // empty when there is none. Kept apart so callers can add context before it.
  std::string hint;
};

// What a template becomes: plain text, or a command for `/bin/sh -c`.
enum class TemplateUse { kText, kShellCommand };

// Checks syntax, filters and that every variable is known (params.NAME must name a key
// in `param_names`). Returns every problem found.
std::vector<TemplateError> CheckTemplate(std::string_view text,
                                         const std::vector<std::string>& param_names);

// Same, allowing only `variables` (plus params.NAME). A variable of TemplateVariables()
// that is not in `variables` is reported as "template variable 'x' is not available".
// For kShellCommand it also reports placeholders whose shell context cannot be quoted
// safely (inside $'...', ${...}, $((...)), a quoted here-document, right after `\` or
// `$`, ...); RenderShellCommand renders those as nothing.
std::vector<TemplateError> CheckTemplate(std::string_view text,
                                         const std::vector<std::string>& param_names,
                                         const std::vector<std::string>& variables,
                                         TemplateUse use = TemplateUse::kText);

// Substitutes variables as they are; `vars` holds the plain names and "params.NAME"
// entries. Unknown names render as empty (CheckTemplate rejects them at load time).
// An unterminated `{{` and the rest of the text after it are kept literally.
std::string RenderTemplate(std::string_view text, const std::map<std::string, std::string>& vars);

// Substitutes variables into a shell command, each value quoted for the context the
// literal text before it leaves the shell in: unquoted (also inside a word or a
// comment), "...", '...', an unquoted here-document, and the same nested in $(...) or
// `...`. `{{ x | raw }}` pastes the value verbatim. NUL bytes, which no command line can
// carry, are dropped from values.
std::string RenderShellCommand(std::string_view text, const std::map<std::string, std::string>& vars);

// `value` as one single-quoted shell word ('it'\''s'); '' for the empty string.
std::string ShellQuote(std::string_view value);

}  // namespace batchd::dag
