#include "dag/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <set>
#include <tuple>
#include <unordered_set>

#include "common/hash.h"
#include "common/time.h"
#include "cron/cron.h"
#include "dag/template.h"
#include "dag/text_util.h"
#include "dag/validate.h"
#include "dag/yaml_tree.h"

namespace batchd::dag {

std::string Diagnostic::ToString() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace {

using internal::DescribeYamlNode;
using internal::DidYouMean;
using internal::QuoteForMessage;
using internal::YamlNode;
using NodeKind = YamlNode::Kind;

// More than this many errors are cut off with a closing note: an operator fixes the
// first screenful, and a hostile file cannot make the report itself huge.
constexpr size_t kMaxErrors = 200;

const std::vector<std::string> kTopKeys = {
    "dag", "description", "schedule", "timezone", "start_date", "end_date", "catchup", "max_active_runs",
    "max_active_tasks", "paused", "params", "env", "defaults", "slo", "triggers", "tasks"};
const std::vector<std::string> kDefaultsKeys = {"timeout", "kill_grace", "retry", "working_dir",
                                                "pool", "priority", "env"};
const std::vector<std::string> kTaskKeys = {
    "id", "description", "command", "depends_on", "trigger_rule", "partitions", "working_dir", "pool",
    "priority", "timeout", "kill_grace", "retry", "env", "idempotency_key"};
const std::vector<std::string> kRetryKeys = {"retries", "delay", "backoff", "factor",
                                             "max_delay", "jitter", "retry_on_exit_codes"};
const std::vector<std::string> kPartitionsKeys = {"values", "range", "command"};
const std::vector<std::string> kDependencyKeys = {"task", "partitions"};
const std::vector<std::string> kSloKeys = {"max_duration", "freshness"};
const std::vector<std::string> kTriggerKeys = {"after_dag", "file"};
const std::vector<std::string> kTriggerRuleNames = {"all_success", "all_done",    "one_success",
                                                    "one_failed",  "none_failed", "all_failed"};

std::string Q(std::string_view s) { return QuoteForMessage(s); }

std::string_view Trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Where a mapping sits in the file, for messages.
//   section: "", "defaults", "defaults.retry", "retry", "partitions", "depends_on", ...
//   owner:   "", "task 'extract'", "task #3" (a task without a usable id)
struct Ctx {
  std::string section;
  std::string owner;

  // "max_active_runs", "retry.retries in task 'a'", "defaults.timeout".
  // An empty key names the section itself: "retry in task 'a'".
  std::string Field(std::string_view key) const {
    std::string s = key.empty() ? section : section.empty() ? std::string(key) : section + "." + std::string(key);
    if (!owner.empty()) s += " in " + owner;
    return s;
  }
  // "", " in task 'a'", " in retry of task 'a'", " in defaults".
  std::string Where() const {
    if (section.empty()) return owner.empty() ? "" : " in " + owner;
    return " in " + section + (owner.empty() ? "" : " of " + owner);
  }
  Ctx Sub(std::string_view child) const {
    return Ctx{section.empty() ? std::string(child) : section + "." + std::string(child), owner};
  }
};

// The checked entries of one YAML mapping, in source order, without duplicates.
struct Entry {
  std::string key;
  const YamlNode* key_node;
  const YamlNode* value;
};

class Fields {
 public:
  const YamlNode* Get(std::string_view key) const {
    const Entry* e = Find(key);
    return e ? e->value : nullptr;
  }
  const YamlNode* KeyNode(std::string_view key) const {
    const Entry* e = Find(key);
    return e ? e->key_node : nullptr;
  }
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  const std::vector<Entry>& entries() const { return entries_; }
  void Add(Entry e) { entries_.push_back(std::move(e)); }

 private:
  const Entry* Find(std::string_view key) const {
    for (const Entry& e : entries_) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
  std::vector<Entry> entries_;
};

// What the defaults section gives every task.
struct TaskDefaults {
  std::optional<Millis> timeout;
  Millis kill_grace = std::chrono::seconds(10);
  RetryPolicy retry;
  std::string working_dir;
  std::string pool;
  SourceLocation pool_location;
  int priority = 0;
  std::map<std::string, std::string> env;
};

// Where a task's templated fields were written, to place template errors precisely.
struct TaskSource {
  SourceLocation id;
  const YamlNode* command = nullptr;
  const YamlNode* idempotency_key = nullptr;
  const YamlNode* partitions_command = nullptr;
};

// Reads and validates one DAG file's text. Single use: construct, call Load().
class Loader {
 public:
  Loader(std::string_view text, const std::string& path) : text_(text), path_(path) {}

  LoadResult Load();

 private:
  // --- reporting ---
  void Error(int line, int column, std::string message) {
    errors_.push_back(Diagnostic{path_, line, column, std::move(message)});
  }
  void Error(const YamlNode* at, std::string message) { Error(at->line, at->column, std::move(message)); }
  void Error(SourceLocation at, std::string message) { Error(at.line, at.column, std::move(message)); }
  static SourceLocation Loc(const YamlNode* n) { return SourceLocation{n->line, n->column}; }

  // --- the file as a whole ---
  bool CheckEncoding();
  SourceLocation LocationOfOffset(size_t offset) const;
  std::string TabHint(int line) const;

  // --- generic readers; each reports its own errors (and returns nullopt on failure) ---
  Fields ReadMap(const YamlNode* node, const std::vector<std::string>* allowed, const Ctx& ctx,
                 bool allow_extension_keys = false);
  std::optional<Fields> MapValue(const YamlNode* value, const std::string& field,
                                 const std::vector<std::string>* allowed, const Ctx& ctx);
  bool ExpectList(const YamlNode* value, const std::string& field);
  std::optional<std::string> String(const YamlNode* value, const std::string& field, bool allow_null = false);
  std::optional<std::string> NonEmptyString(const YamlNode* value, const std::string& field);
  std::optional<int64_t> Integer(const YamlNode* value, const std::string& field, int64_t min, int64_t max);
  std::optional<double> Number(const YamlNode* value, const std::string& field);
  std::optional<bool> Bool(const YamlNode* value, const std::string& field);
  std::optional<Millis> Duration(const YamlNode* value, const std::string& field, bool allow_zero);
  std::optional<std::string> Name(const YamlNode* value, const std::string& field, std::string_view what);
  std::map<std::string, std::string> StringMap(const YamlNode* value, const Ctx& ctx, bool env_names);

  // --- sections ---
  void ReadTop(const YamlNode* root);
  void ReadSchedule(const Fields& top);
  void ReadSlo(const YamlNode* value);
  void ReadTriggers(const YamlNode* value);
  void ReadDefaults(const YamlNode* value);
  RetryPolicy ReadRetry(const YamlNode* value, const Ctx& ctx, RetryPolicy base);
  void ReadTasks(const YamlNode* value);
  void ReadTask(const YamlNode* node, size_t number);
  std::optional<Partitions> ReadPartitions(const YamlNode* value, const Ctx& ctx, TaskSource* source);
  std::vector<Dependency> ReadDependsOn(const YamlNode* value, const Ctx& ctx);
  void CheckTemplates();
  void CheckTemplateField(const YamlNode* node, std::string_view text, const std::string& field,
                          const std::vector<std::string>& params, const std::vector<std::string>& variables,
                          TemplateUse use = TemplateUse::kText);
  SourceLocation TemplateLocation(const YamlNode* node, std::string_view text, size_t offset) const;

  std::string_view text_;
  std::string path_;
  std::vector<Diagnostic> errors_;
  std::vector<size_t> line_starts_;  // byte offset of each line, for positions inside scalars
  size_t bom_bytes_ = 0;

  Dag dag_;
  const date::time_zone* zone_ = nullptr;
  TaskDefaults defaults_;
  std::vector<TaskSource> task_sources_;  // parallel to dag_.tasks
};

// --- the file as a whole -------------------------------------------------------------

SourceLocation Loader::LocationOfOffset(size_t offset) const {
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  size_t line = static_cast<size_t>(it - line_starts_.begin());  // 1-based
  size_t column = offset - line_starts_[line - 1] + 1;
  if (line == 1 && column > bom_bytes_) column -= bom_bytes_;
  return SourceLocation{static_cast<int>(line), static_cast<int>(column)};
}

// yaml-cpp's messages for a tab in indentation ("illegal block entry", ...) do not say
// what is wrong; name the tab when the error's line or the one before is indented with one.
std::string Loader::TabHint(int line) const {
  for (int l = line; l >= line - 1 && l >= 1; --l) {
    if (static_cast<size_t>(l) > line_starts_.size()) continue;
    for (size_t i = line_starts_[l - 1]; i < text_.size() && (text_[i] == ' ' || text_[i] == '\t'); ++i) {
      if (text_[i] == '\t') return " (line " + std::to_string(l) + " is indented with a tab; YAML allows only spaces)";
    }
  }
  return "";
}

// UTF-8 without NUL and other control characters (YAML forbids them; yaml-cpp would
// otherwise guess an encoding or misreport them).
bool Loader::CheckEncoding() {
  const auto* p = reinterpret_cast<const unsigned char*>(text_.data());
  const size_t n = text_.size();
  size_t i = 0;
  auto fail = [&](std::string message) {
    SourceLocation at = LocationOfOffset(i);
    Error(at, std::move(message));
    return false;
  };
  auto hex = [](unsigned c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", c);
    return std::string(buf);
  };
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
        return fail("control character " + hex(c) + " is not allowed in a DAG file");
      }
      ++i;
      continue;
    }
    size_t len;
    unsigned min;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return fail("invalid UTF-8 byte " + hex(c) + " (a DAG file must be UTF-8 text)");
    }
    if (i + len > n) return fail("invalid UTF-8 byte " + hex(c) + " (a DAG file must be UTF-8 text)");
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        return fail("invalid UTF-8 byte " + hex(c) + " (a DAG file must be UTF-8 text)");
      }
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return fail("invalid UTF-8 byte " + hex(c) + " (a DAG file must be UTF-8 text)");
    }
    i += len;
  }
  return true;
}

// --- generic readers -----------------------------------------------------------------

// Checks the keys of a mapping: scalars, no duplicates, only `allowed` ones (any key when
// `allowed` is null). The YAML merge key `<<: *anchor` (or a list of anchors) is
// supported: merged entries fill in keys not written explicitly; each merged mapping is
// visited once, so merges cannot blow up. With `allow_extension_keys`, keys starting with
// "x-" are skipped: a place for anchors shared by several tasks (as in docker compose).
Fields Loader::ReadMap(const YamlNode* node, const std::vector<std::string>* allowed, const Ctx& ctx,
                       bool allow_extension_keys) {
  Fields fields;
  std::vector<const YamlNode*> merges;
  auto add = [&](const YamlNode* key, const YamlNode* value, bool merged) {
    if (key->kind != NodeKind::kScalar) {
      if (!merged) Error(key, "a key" + ctx.Where() + " must be a string, got " + DescribeYamlNode(*key));
      return;
    }
    if (key->value == "<<" && key->plain) {
      merges.push_back(value);
      return;
    }
    if (allow_extension_keys && key->value.rfind("x-", 0) == 0) return;
    if (fields.Has(key->value)) {
      if (!merged) {
        Error(key, "duplicate key " + Q(key->value) + ctx.Where() + " (first defined at line " +
                       std::to_string(fields.KeyNode(key->value)->line) + ")");
      }
      return;
    }
    if (allowed && std::find(allowed->begin(), allowed->end(), key->value) == allowed->end()) {
      Error(key, "unknown key " + Q(key->value) + ctx.Where() + DidYouMean(key->value, *allowed));
      return;
    }
    fields.Add(Entry{key->value, key, value});
  };
  auto add_all = [&](const YamlNode* map, bool merged) {
    for (size_t i = 0; i + 1 < map->children.size(); i += 2) add(map->children[i], map->children[i + 1], merged);
  };
  add_all(node, /*merged=*/false);

  std::unordered_set<const YamlNode*> visited{node};
  for (size_t m = 0; m < merges.size(); ++m) {  // `merges` grows as merged maps merge more
    const YamlNode* value = merges[m];
    std::vector<const YamlNode*> sources;
    if (value->kind == NodeKind::kMapping) {
      sources.push_back(value);
    } else if (value->kind == NodeKind::kSequence &&
               std::all_of(value->children.begin(), value->children.end(),
                           [](const YamlNode* c) { return c->kind == NodeKind::kMapping; })) {
      sources = value->children;
    } else {
      Error(value, "the merge key '<<' needs a mapping or a list of mappings, got " + DescribeYamlNode(*value));
      continue;
    }
    for (const YamlNode* source : sources) {
      if (visited.insert(source).second) add_all(source, /*merged=*/true);
    }
  }
  return fields;
}

std::optional<Fields> Loader::MapValue(const YamlNode* value, const std::string& field,
                                       const std::vector<std::string>* allowed, const Ctx& ctx) {
  if (value->kind != NodeKind::kMapping) {
    Error(value, field + " must be a mapping, got " + DescribeYamlNode(*value));
    return std::nullopt;
  }
  return ReadMap(value, allowed, ctx);
}

bool Loader::ExpectList(const YamlNode* value, const std::string& field) {
  if (value->kind == NodeKind::kSequence) return true;
  Error(value, field + " must be a list, got " + DescribeYamlNode(*value));
  return false;
}

std::optional<std::string> Loader::String(const YamlNode* value, const std::string& field, bool allow_null) {
  if (value->kind == NodeKind::kScalar) return value->value;
  if (value->kind == NodeKind::kNull && allow_null) return std::string();
  Error(value, field + " must be a string, got " + DescribeYamlNode(*value));
  return std::nullopt;
}

std::optional<std::string> Loader::NonEmptyString(const YamlNode* value, const std::string& field) {
  std::optional<std::string> s = String(value, field);
  if (s && Trim(*s).empty()) {
    Error(value, field + " must not be empty");
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> Loader::Integer(const YamlNode* value, const std::string& field, int64_t min, int64_t max) {
  auto invalid = [&] {
    Error(value, field + " must be an integer, got " + DescribeYamlNode(*value));
    return std::nullopt;
  };
  if (value->kind != NodeKind::kScalar) return invalid();
  std::string_view s = Trim(value->value);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return invalid();
  if (v < min) {
    Error(value, field + " must be >= " + std::to_string(min) + ", got " + std::to_string(v));
    return std::nullopt;
  }
  if (v > max) {
    Error(value, field + " must be <= " + std::to_string(max) + ", got " + std::to_string(v));
    return std::nullopt;
  }
  return v;
}

std::optional<double> Loader::Number(const YamlNode* value, const std::string& field) {
  auto invalid = [&] {
    Error(value, field + " must be a number, got " + DescribeYamlNode(*value));
    return std::nullopt;
  };
  if (value->kind != NodeKind::kScalar) return invalid();
  std::string_view s = Trim(value->value);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return invalid();
  return v;
}

std::optional<bool> Loader::Bool(const YamlNode* value, const std::string& field) {
  if (value->kind == NodeKind::kScalar) {
    static const std::vector<std::string> kTrue = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const std::vector<std::string> kFalse = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    std::string s(Trim(value->value));
    if (std::find(kTrue.begin(), kTrue.end(), s) != kTrue.end()) return true;
    if (std::find(kFalse.begin(), kFalse.end(), s) != kFalse.end()) return false;
  }
  Error(value, field + " must be true or false, got " + DescribeYamlNode(*value));
  return std::nullopt;
}

std::optional<Millis> Loader::Duration(const YamlNode* value, const std::string& field, bool allow_zero) {
  if (value->kind != NodeKind::kScalar) {
    Error(value, field + " must be a duration such as 30s, 5m or 2h, got " + DescribeYamlNode(*value));
    return std::nullopt;
  }
  Result<Millis> d = ParseDuration(value->value);
  if (!d.ok()) {
    Error(value, field + ": " + d.status().message());
    return std::nullopt;
  }
  if (!allow_zero && d->count() == 0) {
    Error(value, field + " must be greater than 0");
    return std::nullopt;
  }
  return *d;
}

std::optional<std::string> Loader::Name(const YamlNode* value, const std::string& field, std::string_view what) {
  std::optional<std::string> s = String(value, field);
  if (!s) return std::nullopt;
  if (*s == "." || *s == "..") {
    Error(value, "invalid " + std::string(what) + " " + Q(*s) + ": '.' and '..' are not allowed as names");
    return std::nullopt;
  }
  if (!IsValidName(*s)) {
    Error(value, "invalid " + std::string(what) + " " + Q(*s) + ": names must be 1-128 characters from [A-Za-z0-9_.-]");
    return std::nullopt;
  }
  return s;
}

// `params` and `env`: a mapping of names to scalars (an empty value is the empty string).
std::map<std::string, std::string> Loader::StringMap(const YamlNode* value, const Ctx& ctx, bool env_names) {
  std::map<std::string, std::string> out;
  std::optional<Fields> fields = MapValue(value, ctx.Field(""), nullptr, ctx);
  if (!fields) return out;
  for (const Entry& e : fields->entries()) {
    if (env_names) {
      if (!IsEnvName(e.key)) {
        Error(e.key_node, "invalid environment variable name " + Q(e.key) + ctx.Where() +
                              ": names must match [A-Za-z_][A-Za-z0-9_]*");
        continue;
      }
      if (e.key.rfind("BATCHD_", 0) == 0) {
        Error(e.key_node, "environment variable " + Q(e.key) + ctx.Where() +
                              " is reserved: names starting with BATCHD_ are set by batchd");
        continue;
      }
    } else if (!IsValidName(e.key)) {
      Error(e.key_node, "invalid param name " + Q(e.key) + ": names must be 1-128 characters from [A-Za-z0-9_.-]");
      continue;
    }
    std::optional<std::string> s = String(e.value, ctx.Sub(e.key).Field(""), /*allow_null=*/true);
    if (s) out[e.key] = *s;
  }
  return out;
}

// --- sections ------------------------------------------------------------------------

LoadResult Loader::Load() {
  LoadResult result;
  line_starts_.push_back(0);
  if (text_.size() <= kMaxDagFileBytes) {
    for (size_t i = 0; i < text_.size(); ++i) {
      if (text_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }
  if (text_.size() >= 3 && text_.substr(0, 3) == "\xEF\xBB\xBF") bom_bytes_ = 3;

  if (text_.size() > kMaxDagFileBytes) {
    Error(0, 0, "file is too large: " + std::to_string(text_.size()) + " bytes (the limit is " +
                    std::to_string(kMaxDagFileBytes) + " bytes)");
  } else if (Trim(text_.substr(bom_bytes_)).empty()) {
    Error(1, 1, "file is empty");
  } else if (CheckEncoding()) {
    internal::YamlParse parse = internal::ParseYaml(text_);
    if (parse.error) {
      std::string message = parse.error->message;
      if (message.find("tab") == std::string::npos) message += TabHint(parse.error->line);
      Error(parse.error->line, parse.error->column, std::move(message));
    } else if (parse.doc.root == nullptr || parse.doc.root->kind == NodeKind::kNull) {
      Error(1, 1, "file is empty");
    } else if (parse.doc.root->kind != NodeKind::kMapping) {
      Error(parse.doc.root, "the top level must be a mapping of DAG keys (dag, tasks, ...), got " +
                                DescribeYamlNode(*parse.doc.root));
    } else {
      ReadTop(parse.doc.root);
    }
  }

  // File order; identical messages (e.g. from a mapping merged into several places)
  // appear once.
  std::stable_sort(errors_.begin(), errors_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  errors_.erase(std::unique(errors_.begin(), errors_.end(),
                            [](const Diagnostic& a, const Diagnostic& b) {
                              return a.line == b.line && a.column == b.column && a.message == b.message;
                            }),
                errors_.end());
  if (errors_.size() > kMaxErrors) {
    size_t total = errors_.size();
    errors_.resize(kMaxErrors);
    Error(0, 0, "too many errors: showing the first " + std::to_string(kMaxErrors) + " of " + std::to_string(total));
  }
  if (!errors_.empty()) {
    result.errors = std::move(errors_);
    return result;
  }
  dag_.source_path = path_;
  dag_.source = std::string(text_);
  dag_.content_hash = Sha256Hex(text_);
  result.dag = std::make_shared<const Dag>(std::move(dag_));
  return result;
}

void Loader::ReadTop(const YamlNode* root) {
  Fields top = ReadMap(root, &kTopKeys, Ctx{}, /*allow_extension_keys=*/true);

  if (const YamlNode* v = top.Get("dag")) {
    if (auto name = Name(v, "dag", "dag name")) dag_.name = *name;
  } else {
    Error(root, "missing required key 'dag'");
  }
  if (const YamlNode* v = top.Get("description")) {
    if (auto s = String(v, "description", /*allow_null=*/true)) dag_.description = *s;
  }
  ReadSchedule(top);
  if (const YamlNode* v = top.Get("catchup")) {
    if (auto b = Bool(v, "catchup")) dag_.catchup = *b;
  }
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (const YamlNode* v = top.Get("max_active_runs")) {
    if (auto n = Integer(v, "max_active_runs", 1, kIntMax)) dag_.max_active_runs = static_cast<int>(*n);
  }
  if (const YamlNode* v = top.Get("max_active_tasks")) {
    if (auto n = Integer(v, "max_active_tasks", 1, kIntMax)) dag_.max_active_tasks = static_cast<int>(*n);
  }
  if (const YamlNode* v = top.Get("paused")) {
    if (auto b = Bool(v, "paused")) dag_.paused = *b;
  }
  if (const YamlNode* v = top.Get("params")) dag_.params = StringMap(v, Ctx{"params", ""}, /*env_names=*/false);
  if (const YamlNode* v = top.Get("env")) dag_.env = StringMap(v, Ctx{"env", ""}, /*env_names=*/true);
  if (const YamlNode* v = top.Get("slo")) ReadSlo(v);
  if (const YamlNode* v = top.Get("triggers")) ReadTriggers(v);
  if (const YamlNode* v = top.Get("defaults")) ReadDefaults(v);
  if (const YamlNode* v = top.Get("tasks")) {
    ReadTasks(v);
  } else {
    Error(root, "missing required key 'tasks'");
  }

  std::vector<SourceLocation> id_locations;
  for (const TaskSource& s : task_sources_) id_locations.push_back(s.id);
  internal::CheckTaskGraph(dag_.tasks, id_locations,
                           [this](SourceLocation at, std::string message) { Error(at, std::move(message)); });
  CheckTemplates();
}

void Loader::ReadSchedule(const Fields& top) {
  if (const YamlNode* v = top.Get("timezone")) {
    if (auto name = String(v, "timezone")) {
      Result<const date::time_zone*> zone = LookupZone(*name);
      if (zone.ok()) {
        zone_ = *zone;
        dag_.timezone = std::string(Trim(*name));
      } else {
        Error(v, zone.status().message());
      }
    }
  }
  if (zone_ == nullptr) {
    Result<const date::time_zone*> utc = LookupZone("UTC");
    if (utc.ok()) zone_ = *utc;
  }
  if (const YamlNode* v = top.Get("schedule"); v && v->kind != NodeKind::kNull) {
    if (auto text = String(v, "schedule")) {
      Result<cron::CronExpr> expr = cron::CronExpr::Parse(*text);
      if (expr.ok()) {
        dag_.schedule = expr->text();
      } else {
        Error(v, expr.status().message());
      }
    }
  }
  auto instant = [&](const char* key, std::optional<SysSeconds>* out) {
    const YamlNode* v = top.Get(key);
    if (!v || v->kind == NodeKind::kNull) return;
    std::optional<std::string> text = String(v, key);
    if (!text || zone_ == nullptr) return;
    Result<SysSeconds> t = ParseInstant(*text, zone_);
    if (t.ok()) {
      *out = *t;
    } else {
      Error(v, std::string(key) + ": " + t.status().message());
    }
  };
  instant("start_date", &dag_.start_date);
  instant("end_date", &dag_.end_date);
  if (dag_.start_date && dag_.end_date && *dag_.end_date < *dag_.start_date) {
    Error(top.Get("end_date"), "end_date " + Q(top.Get("end_date")->value) + " is before start_date " +
                                   Q(top.Get("start_date")->value));
  }
}

void Loader::ReadSlo(const YamlNode* value) {
  Ctx ctx{"slo", ""};
  std::optional<Fields> slo = MapValue(value, "slo", &kSloKeys, ctx);
  if (!slo) return;
  if (const YamlNode* v = slo->Get("max_duration"); v && v->kind != NodeKind::kNull) {
    dag_.slo.max_duration = Duration(v, ctx.Field("max_duration"), /*allow_zero=*/false);
  }
  if (const YamlNode* v = slo->Get("freshness"); v && v->kind != NodeKind::kNull) {
    dag_.slo.freshness = Duration(v, ctx.Field("freshness"), /*allow_zero=*/false);
  }
}

void Loader::ReadTriggers(const YamlNode* value) {
  if (!ExpectList(value, "triggers")) return;
  Ctx ctx{"triggers", ""};
  for (const YamlNode* item : value->children) {
    if (item->kind != NodeKind::kMapping) {
      Error(item, "each trigger must be a mapping such as {after_dag: NAME} or {file: GLOB}, got " +
                      DescribeYamlNode(*item));
      continue;
    }
    Fields fields = ReadMap(item, &kTriggerKeys, ctx);
    if (fields.entries().empty()) {
      Error(item, "each trigger must have exactly one of after_dag or file");
      continue;
    }
    if (fields.entries().size() > 1) {
      Error(fields.entries()[1].key_node, "each trigger must have exactly one of after_dag or file");
      continue;
    }
    const Entry& e = fields.entries()[0];
    Trigger trigger;
    trigger.location = Loc(e.key_node);
    if (e.key == "after_dag") {
      std::optional<std::string> name = Name(e.value, "triggers.after_dag", "after_dag name");
      if (!name) continue;
      if (*name == dag_.name) {
        Error(e.value, "after_dag trigger on the DAG itself (" + Q(*name) + ") would start runs forever");
        continue;
      }
      trigger.kind = Trigger::Kind::kAfterDag;
      trigger.value = *name;
    } else {
      std::optional<std::string> glob = NonEmptyString(e.value, "triggers.file");
      if (!glob) continue;
      if (glob->front() != '/') {
        Error(e.value, "triggers.file must be an absolute path, got " + Q(*glob));
        continue;
      }
      trigger.kind = Trigger::Kind::kFile;
      trigger.value = *glob;
    }
    dag_.triggers.push_back(std::move(trigger));
  }
}

void Loader::ReadDefaults(const YamlNode* value) {
  Ctx ctx{"defaults", ""};
  std::optional<Fields> d = MapValue(value, "defaults", &kDefaultsKeys, ctx);
  if (!d) return;
  if (const YamlNode* v = d->Get("timeout"); v && v->kind != NodeKind::kNull) {
    defaults_.timeout = Duration(v, ctx.Field("timeout"), /*allow_zero=*/false);
  }
  if (const YamlNode* v = d->Get("kill_grace")) {
    if (auto g = Duration(v, ctx.Field("kill_grace"), /*allow_zero=*/true)) defaults_.kill_grace = *g;
  }
  if (const YamlNode* v = d->Get("retry")) defaults_.retry = ReadRetry(v, ctx.Sub("retry"), defaults_.retry);
  if (const YamlNode* v = d->Get("working_dir")) {
    if (auto s = NonEmptyString(v, ctx.Field("working_dir"))) defaults_.working_dir = *s;
  }
  if (const YamlNode* v = d->Get("pool")) {
    if (auto s = Name(v, ctx.Field("pool"), "pool name")) {
      defaults_.pool = *s;
      defaults_.pool_location = Loc(v);
    }
  }
  if (const YamlNode* v = d->Get("priority")) {
    if (auto n = Integer(v, ctx.Field("priority"), std::numeric_limits<int>::min(), std::numeric_limits<int>::max())) {
      defaults_.priority = static_cast<int>(*n);
    }
  }
  if (const YamlNode* v = d->Get("env")) defaults_.env = StringMap(v, ctx.Sub("env"), /*env_names=*/true);
}

// A retry mapping merged field by field over `base` (the defaults' policy for a task).
RetryPolicy Loader::ReadRetry(const YamlNode* value, const Ctx& ctx, RetryPolicy base) {
  std::optional<Fields> r = MapValue(value, ctx.Field(""), &kRetryKeys, ctx);
  if (!r) return base;
  if (const YamlNode* v = r->Get("retries")) {
    if (auto n = Integer(v, ctx.Field("retries"), 0, std::numeric_limits<int>::max())) base.retries = static_cast<int>(*n);
  }
  if (const YamlNode* v = r->Get("delay")) {
    if (auto d = Duration(v, ctx.Field("delay"), /*allow_zero=*/true)) base.delay = *d;
  }
  if (const YamlNode* v = r->Get("backoff")) {
    if (auto s = String(v, ctx.Field("backoff"))) {
      if (*s == "fixed") {
        base.backoff = Backoff::kFixed;
      } else if (*s == "exponential") {
        base.backoff = Backoff::kExponential;
      } else {
        Error(v, ctx.Field("backoff") + " must be fixed or exponential, got " + Q(*s) +
                     DidYouMean(*s, {"fixed", "exponential"}));
      }
    }
  }
  if (const YamlNode* v = r->Get("factor")) {
    if (auto f = Number(v, ctx.Field("factor"))) {
      if (*f < 1) {
        Error(v, ctx.Field("factor") + " must be >= 1, got " + Q(Trim(v->value)));
      } else {
        base.factor = *f;
      }
    }
  }
  if (const YamlNode* v = r->Get("max_delay")) {
    if (auto d = Duration(v, ctx.Field("max_delay"), /*allow_zero=*/true)) base.max_delay = *d;
  }
  if (const YamlNode* v = r->Get("jitter")) {
    if (auto b = Bool(v, ctx.Field("jitter"))) base.jitter = *b;
  }
  if (const YamlNode* v = r->Get("retry_on_exit_codes")) {
    const std::string field = ctx.Field("retry_on_exit_codes");
    if (ExpectList(v, field)) {
      std::vector<int> codes;
      for (const YamlNode* item : v->children) {
        std::string_view s = item->kind == NodeKind::kScalar ? Trim(item->value) : std::string_view();
        int code = -1;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), code);
        if (s.empty() || ec != std::errc() || end != s.data() + s.size() || code < 0 || code > 255) {
          Error(item, field + " must contain exit codes 0-255, got " + DescribeYamlNode(*item));
          continue;
        }
        if (std::find(codes.begin(), codes.end(), code) == codes.end()) codes.push_back(code);
      }
      base.retry_on_exit_codes = std::move(codes);
    }
  }
  return base;
}

void Loader::ReadTasks(const YamlNode* value) {
  if (!ExpectList(value, "tasks")) return;
  if (value->children.empty()) {
    Error(value, "tasks must list at least one task");
    return;
  }
  for (size_t i = 0; i < value->children.size(); ++i) ReadTask(value->children[i], i + 1);
}

void Loader::ReadTask(const YamlNode* node, size_t number) {
  if (node->kind != NodeKind::kMapping) {
    Error(node, "task #" + std::to_string(number) + " must be a mapping with at least id and command, got " +
                    DescribeYamlNode(*node));
    return;
  }
  // Name the task by its id in every message when the id is usable, else by its number.
  Ctx ctx{"", "task #" + std::to_string(number)};
  for (size_t i = 0; i + 1 < node->children.size(); i += 2) {
    const YamlNode* k = node->children[i];
    const YamlNode* v = node->children[i + 1];
    if (k->kind == NodeKind::kScalar && k->value == "id" && v->kind == NodeKind::kScalar && !v->value.empty()) {
      ctx.owner = "task " + Q(v->value);
      break;
    }
  }
  Fields f = ReadMap(node, &kTaskKeys, ctx);
  Task task;
  TaskSource source;
  task.location = Loc(node);
  source.id = Loc(node);

  if (const YamlNode* v = f.Get("id")) {
    source.id = Loc(v);
    // An invalid id is reported but kept, so that tasks depending on it do not also get
    // "depends on unknown task" errors (the file is rejected anyway).
    Name(v, ctx.Field("id"), "task id");
    if (v->kind == NodeKind::kScalar) task.id = v->value;
  } else {
    Error(node, "missing required key 'id'" + ctx.Where());
  }
  if (const YamlNode* v = f.Get("description")) {
    if (auto s = String(v, ctx.Field("description"), /*allow_null=*/true)) task.description = *s;
  }
  if (const YamlNode* v = f.Get("command")) {
    if (auto s = NonEmptyString(v, ctx.Field("command"))) {
      task.command = *s;
      source.command = v;
    }
  } else {
    Error(node, "missing required key 'command'" + ctx.Where());
  }
  if (const YamlNode* v = f.Get("depends_on")) task.depends_on = ReadDependsOn(v, ctx);
  if (const YamlNode* v = f.Get("trigger_rule")) {
    if (auto s = String(v, ctx.Field("trigger_rule"))) {
      if (auto rule = ParseTriggerRule(*s)) {
        task.trigger_rule = *rule;
      } else {
        Error(v, ctx.Field("trigger_rule") +
                     " must be one of all_success, all_done, one_success, one_failed, none_failed, all_failed, got " +
                     Q(*s) + DidYouMean(*s, kTriggerRuleNames));
      }
    }
  }
  if (const YamlNode* v = f.Get("partitions")) {
    if (auto p = ReadPartitions(v, ctx.Sub("partitions"), &source)) task.partitions = std::move(*p);
  }

  task.working_dir = defaults_.working_dir;
  if (const YamlNode* v = f.Get("working_dir")) {
    if (auto s = NonEmptyString(v, ctx.Field("working_dir"))) task.working_dir = *s;
  }
  task.pool = defaults_.pool;
  task.pool_location = defaults_.pool_location;
  if (const YamlNode* v = f.Get("pool")) {
    if (auto s = Name(v, ctx.Field("pool"), "pool name")) {
      task.pool = *s;
      task.pool_location = Loc(v);
    }
  }
  task.priority = defaults_.priority;
  if (const YamlNode* v = f.Get("priority")) {
    if (auto n = Integer(v, ctx.Field("priority"), std::numeric_limits<int>::min(), std::numeric_limits<int>::max())) {
      task.priority = static_cast<int>(*n);
    }
  }
  task.timeout = defaults_.timeout;
  if (const YamlNode* v = f.Get("timeout")) {
    task.timeout = v->kind == NodeKind::kNull ? std::nullopt : Duration(v, ctx.Field("timeout"), false);
  }
  task.kill_grace = defaults_.kill_grace;
  if (const YamlNode* v = f.Get("kill_grace")) {
    if (auto g = Duration(v, ctx.Field("kill_grace"), /*allow_zero=*/true)) task.kill_grace = *g;
  }
  task.retry = defaults_.retry;
  if (const YamlNode* v = f.Get("retry")) task.retry = ReadRetry(v, ctx.Sub("retry"), defaults_.retry);
  task.env = defaults_.env;
  if (const YamlNode* v = f.Get("env")) {
    for (auto& [name, val] : StringMap(v, ctx.Sub("env"), /*env_names=*/true)) task.env[name] = val;
  }
  if (const YamlNode* v = f.Get("idempotency_key")) {
    if (auto s = NonEmptyString(v, ctx.Field("idempotency_key"))) {
      task.idempotency_key = *s;
      source.idempotency_key = v;
    }
  }
  dag_.tasks.push_back(std::move(task));
  task_sources_.push_back(source);
}

std::optional<Partitions> Loader::ReadPartitions(const YamlNode* value, const Ctx& ctx, TaskSource* source) {
  const std::string field = ctx.Field("");
  std::optional<Fields> f = MapValue(value, field, &kPartitionsKeys, ctx);
  if (!f) return std::nullopt;
  if (f->entries().empty()) {
    Error(value, field + " must have exactly one of values, range or command");
    return std::nullopt;
  }
  if (f->entries().size() > 1) {
    Error(f->entries()[1].key_node, field + " must have exactly one of values, range or command");
    return std::nullopt;
  }
  const Entry& e = f->entries()[0];
  Partitions p;
  if (e.key == "values") {
    if (!ExpectList(e.value, ctx.Field("values"))) return std::nullopt;
    if (e.value->children.empty()) {
      Error(e.value, ctx.Field("values") + " must not be empty");
      return std::nullopt;
    }
    if (e.value->children.size() > static_cast<size_t>(kMaxPartitions)) {
      Error(e.value, ctx.Field("values") + " has " + std::to_string(e.value->children.size()) +
                         " values (the limit is " + std::to_string(kMaxPartitions) + ")");
      return std::nullopt;
    }
    std::set<std::string> seen;
    bool ok = true;
    for (const YamlNode* item : e.value->children) {
      std::optional<std::string> name = Name(item, ctx.Field("values"), "partition value");
      if (!name) {
        ok = false;
      } else if (!seen.insert(*name).second) {
        Error(item, "duplicate partition value " + Q(*name) + ctx.Where());
        ok = false;
      } else {
        p.values.push_back(*name);
      }
    }
    if (!ok) return std::nullopt;
    p.kind = Partitions::Kind::kValues;
  } else if (e.key == "range") {
    const std::string rfield = ctx.Field("range");
    if (e.value->kind != NodeKind::kSequence || e.value->children.size() != 2) {
      Error(e.value, rfield + " must be a list of two integers [begin, end], got " + DescribeYamlNode(*e.value));
      return std::nullopt;
    }
    constexpr int64_t kLimit = int64_t{1} << 53;  // keeps end - begin from overflowing
    auto begin = Integer(e.value->children[0], rfield, -kLimit, kLimit);
    auto end = Integer(e.value->children[1], rfield, -kLimit, kLimit);
    if (!begin || !end) return std::nullopt;
    if (*begin >= *end) {
      Error(e.value, rfield + " must have begin < end, got [" + std::to_string(*begin) + ", " +
                         std::to_string(*end) + "]");
      return std::nullopt;
    }
    if (*end - *begin > kMaxPartitions) {
      Error(e.value, rfield + " has " + std::to_string(*end - *begin) + " partitions (the limit is " +
                         std::to_string(kMaxPartitions) + ")");
      return std::nullopt;
    }
    p.kind = Partitions::Kind::kRange;
    p.range_begin = *begin;
    p.range_end = *end;
  } else {
    std::optional<std::string> command = NonEmptyString(e.value, ctx.Field("command"));
    if (!command) return std::nullopt;
    p.kind = Partitions::Kind::kCommand;
    p.command = *command;
    source->partitions_command = e.value;
  }
  return p;
}

std::vector<Dependency> Loader::ReadDependsOn(const YamlNode* value, const Ctx& ctx) {
  std::vector<Dependency> deps;
  const std::string field = ctx.Field("depends_on");
  if (!ExpectList(value, field)) return deps;
  Ctx dctx = ctx.Sub("depends_on");
  for (const YamlNode* item : value->children) {
    if (item->kind == NodeKind::kScalar) {
      if (Trim(item->value).empty()) {
        Error(item, field + " must not contain an empty task id");
        continue;
      }
      deps.push_back(Dependency{item->value, false, Loc(item)});
      continue;
    }
    if (item->kind != NodeKind::kMapping) {
      Error(item, field + " must list task ids or mappings {task: ID, partitions: same|all}, got " +
                      DescribeYamlNode(*item));
      continue;
    }
    Fields f = ReadMap(item, &kDependencyKeys, dctx);
    Dependency dep;
    dep.location = Loc(item);
    const YamlNode* task = f.Get("task");
    if (!task) {
      Error(item, "missing required key 'task'" + dctx.Where());
      continue;
    }
    std::optional<std::string> id = NonEmptyString(task, dctx.Field("task"));
    if (!id) continue;
    dep.task = *id;
    dep.location = Loc(task);
    if (const YamlNode* v = f.Get("partitions")) {
      std::optional<std::string> mode = String(v, dctx.Field("partitions"));
      if (!mode) continue;
      if (*mode == "same") {
        dep.same_partition = true;
      } else if (*mode != "all") {
        Error(v, dctx.Field("partitions") + " must be same or all, got " + Q(*mode));
        continue;
      }
    }
    deps.push_back(std::move(dep));
  }
  return deps;
}

// --- templates -----------------------------------------------------------------------

void Loader::CheckTemplates() {
  std::vector<std::string> params;
  for (const auto& [name, value] : dag_.params) params.push_back(name);
  bool file_trigger = std::any_of(dag_.triggers.begin(), dag_.triggers.end(),
                                  [](const Trigger& t) { return t.kind == Trigger::Kind::kFile; });
  if (file_trigger && !dag_.params.count("trigger_file")) params.push_back("trigger_file");

  for (size_t i = 0; i < dag_.tasks.size(); ++i) {
    const Task& task = dag_.tasks[i];
    const TaskSource& source = task_sources_[i];
    std::string owner = task.id.empty() ? "task #" + std::to_string(i + 1) : "task " + Q(task.id);
    if (source.command) {
      CheckTemplateField(source.command, task.command, "command of " + owner, params, TemplateVariables(),
                         TemplateUse::kShellCommand);
    }
    if (source.idempotency_key) {
      CheckTemplateField(source.idempotency_key, task.idempotency_key, "idempotency_key of " + owner, params,
                         TemplateVariables());
    }
    if (source.partitions_command) {
      CheckTemplateField(source.partitions_command, task.partitions.command, "partitions.command of " + owner,
                         params, RunTemplateVariables(), TemplateUse::kShellCommand);
    }
  }
}

void Loader::CheckTemplateField(const YamlNode* node, std::string_view text, const std::string& field,
                                const std::vector<std::string>& params, const std::vector<std::string>& variables,
                                TemplateUse use) {
  for (const TemplateError& e : CheckTemplate(text, params, variables, use)) {
    std::string message = e.message + " in " + field;
    if (!e.hint.empty()) message += " (" + e.hint + ")";
    Error(TemplateLocation(node, text, e.offset), std::move(message));
  }
}

// The position of text[offset] in the source file. Finds the same `{{ ...` in the raw
// source after the scalar's start (the n-th occurrence for the n-th in the value), which
// is exact for plain, quoted and block scalars; falls back to the scalar's own position.
SourceLocation Loader::TemplateLocation(const YamlNode* node, std::string_view text, size_t offset) const {
  size_t token_end = text.find("}}", offset);
  token_end = token_end == std::string_view::npos ? text.size() : token_end + 2;
  token_end = std::min({token_end, text.find('\n', offset), offset + 64});
  std::string_view token = text.substr(offset, token_end - offset);
  size_t occurrence = 0;
  for (size_t at = text.find(token); at < offset; at = text.find(token, at + 1)) ++occurrence;
  size_t limit = std::min(text_.size(), node->offset + 4 * text.size() + 256);
  size_t pos = node->offset;
  for (size_t k = 0; pos < limit; ++k) {
    pos = text_.find(token, pos);
    if (pos == std::string_view::npos || pos + token.size() > limit) break;
    if (k == occurrence) return LocationOfOffset(pos);
    ++pos;
  }
  return Loc(node);
}

// RAII for a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

LoadResult FileError(const std::string& path, std::string message) {
  LoadResult result;
  result.errors.push_back(Diagnostic{path, 0, 0, std::move(message)});
  return result;
}

}  // namespace

LoadResult LoadDagString(std::string_view text, const std::string& path) {
  try {
    Loader loader(text, path);
    return loader.Load();
  } catch (const std::bad_alloc&) {
    return FileError(path, "out of memory while loading the DAG file");
  } catch (const std::exception& e) {
    return FileError(path, std::string("internal error while loading the DAG file: ") + e.what());
  } catch (...) {
    return FileError(path, "internal error while loading the DAG file");
  }
}

LoadResult LoadDagFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not hang the loader; it is refused below anyway.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) return FileError(path, std::string("cannot open file: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return FileError(path, std::string("cannot read file: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return FileError(path, "cannot read file: it is a directory");
  if (!S_ISREG(st.st_mode)) return FileError(path, "cannot read file: not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxDagFileBytes) {
    return FileError(path, "file is too large: " + std::to_string(st.st_size) + " bytes (the limit is " +
                               std::to_string(kMaxDagFileBytes) + " bytes)");
  }
  // Read at most one byte more than the limit, in case the file grew since fstat. The
  // buffer starts at the size fstat saw (plus one byte to notice growth), not at the
  // limit: zero-filling 4 MiB costs milliseconds per load.
  std::string text;
  size_t total = 0;
  for (;;) {
    if (total == text.size()) {
      if (text.size() > kMaxDagFileBytes) break;
      const size_t want = text.empty() ? static_cast<size_t>(st.st_size) + 1 : text.size() * 2;
      try {
        text.resize(std::min(want, kMaxDagFileBytes + 1));
      } catch (const std::bad_alloc&) {
        return FileError(path, "out of memory while reading the file");
      }
    }
    ssize_t n = ::read(fd.get(), text.data() + total, text.size() - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError(path, std::string("cannot read file: ") + std::strerror(errno));
    }
    if (n == 0) break;
    total += static_cast<size_t>(n);
  }
  if (total > kMaxDagFileBytes) {
    return FileError(path, "file is too large: more than " + std::to_string(kMaxDagFileBytes) + " bytes (the limit is " +
                               std::to_string(kMaxDagFileBytes) + " bytes)");
  }
  text.resize(total);
  return LoadDagString(text, path);
}

std::vector<Diagnostic> CheckPools(const Dag& dag, const std::map<std::string, int>& pools) {
  std::vector<Diagnostic> out;
  std::set<std::tuple<int, int, std::string>> reported;  // tasks sharing a defaults pool: one error
  for (const auto& task : dag.tasks) {
    if (task.pool.empty() || pools.count(task.pool)) continue;
    if (!reported.emplace(task.pool_location.line, task.pool_location.column, task.pool).second) continue;
    std::string defined;
    for (const auto& [name, _] : pools) defined += (defined.empty() ? "" : ", ") + name;
    out.push_back({dag.source_path, task.pool_location.line, task.pool_location.column,
                   "pool " + internal::QuoteForMessage(task.pool) + " is not defined in the daemon config (" +
                       (defined.empty() ? "it defines no pools" : "pools: " + defined) + ")"});
  }
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return out;
}

}  // namespace batchd::dag
