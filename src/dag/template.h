#pragma once
// `{{ name }}` templates in commands and idempotency keys. Pure functions.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace batchd::dag {

// The variables a template may use; params are written `params.NAME`.
// dag task partition run_id logical_date ds ts data_interval_start data_interval_end attempt
const std::vector<std::string>& TemplateVariables();

struct TemplateError {
  size_t offset = 0;       // byte offset into the template where the problem starts
  std::string message;     // "unknown template variable 'foo'" / "unterminated '{{'"
};

// Checks syntax and that every variable is known (params.NAME must name a key in
// `param_names`). Returns every problem found.
std::vector<TemplateError> CheckTemplate(std::string_view text,
                                         const std::vector<std::string>& param_names);

// Substitutes variables; `vars` holds the plain names and "params.NAME" entries.
// Unknown names render as empty (CheckTemplate rejects them at load time).
std::string RenderTemplate(std::string_view text, const std::map<std::string, std::string>& vars);

}  // namespace batchd::dag
