#include "dag/template.h"

#include <algorithm>

#include "dag/text_util.h"

namespace batchd::dag {
namespace {

constexpr std::string_view kParamsPrefix = "params.";

std::string_view Trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool Contains(const std::vector<std::string>& list, std::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

// One `{{ ... }}` occurrence, or an unterminated `{{` (end == npos).
struct Placeholder {
  size_t begin = 0;              // offset of `{{`
  size_t end = std::string_view::npos;  // offset just past `}}`
  std::string_view name;         // trimmed inner text
};

// Calls `fn(literal_text)` and `fn_var(placeholder)` in order over `text`.
template <typename Literal, typename Var>
void Scan(std::string_view text, Literal&& literal, Var&& var) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) break;
    literal(text.substr(pos, open - pos));
    size_t close = text.find("}}", open + 2);
    Placeholder p;
    p.begin = open;
    if (close == std::string_view::npos) {
      var(p);
      literal(text.substr(open));
      return;
    }
    p.end = close + 2;
    p.name = Trim(text.substr(open + 2, close - open - 2));
    var(p);
    pos = p.end;
  }
  if (pos < text.size()) literal(text.substr(pos));
}

}  // namespace

const std::vector<std::string>& TemplateVariables() {
  static const std::vector<std::string> kVars = {
      "dag", "task", "partition", "run_id", "logical_date", "ds", "ts",
      "data_interval_start", "data_interval_end", "attempt"};
  return kVars;
}

const std::vector<std::string>& RunTemplateVariables() {
  static const std::vector<std::string> kVars = {
      "dag", "run_id", "logical_date", "ds", "ts", "data_interval_start", "data_interval_end"};
  return kVars;
}

std::vector<TemplateError> CheckTemplate(std::string_view text, const std::vector<std::string>& param_names) {
  return CheckTemplate(text, param_names, TemplateVariables());
}

std::vector<TemplateError> CheckTemplate(std::string_view text, const std::vector<std::string>& param_names,
                                         const std::vector<std::string>& variables) {
  std::vector<TemplateError> errors;
  auto ignore_literal = [](std::string_view) {};
  auto check = [&](const Placeholder& p) {
    if (p.end == std::string_view::npos) {
      errors.push_back({p.begin, "unterminated '{{'", ""});
      return;
    }
    if (p.name.empty()) {
      errors.push_back({p.begin, "empty template variable '{{ }}'", ""});
      return;
    }
    if (p.name.substr(0, kParamsPrefix.size()) == kParamsPrefix) {
      std::string_view param = p.name.substr(kParamsPrefix.size());
      if (Contains(param_names, param)) return;
    } else if (Contains(variables, p.name)) {
      return;
    } else if (Contains(TemplateVariables(), p.name)) {
      errors.push_back({p.begin, "template variable '" + std::string(p.name) + "' is not available", ""});
      return;
    }
    std::vector<std::string> candidates = variables;
    for (const std::string& param : param_names) candidates.push_back(std::string(kParamsPrefix) + param);
    std::string suggestion = internal::Suggest(p.name, candidates);
    errors.push_back({p.begin, "unknown template variable " + internal::QuoteForMessage(p.name),
                      suggestion.empty() ? "" : "did you mean '" + suggestion + "'?"});
  };
  Scan(text, ignore_literal, check);
  return errors;
}

std::string RenderTemplate(std::string_view text, const std::map<std::string, std::string>& vars) {
  std::string out;
  out.reserve(text.size());
  auto literal = [&](std::string_view s) { out.append(s); };
  auto substitute = [&](const Placeholder& p) {
    if (p.end == std::string_view::npos) return;  // the literal callback keeps the rest
    auto it = vars.find(std::string(p.name));
    if (it != vars.end()) out += it->second;
  };
  Scan(text, literal, substitute);
  return out;
}

}  // namespace batchd::dag
