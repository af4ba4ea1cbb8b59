#include "dag/template.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "dag/text_util.h"

namespace batchd::dag {
namespace {

constexpr std::string_view kParamsPrefix = "params.";
constexpr std::string_view kRawFilter = "raw";

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
  std::string_view name;         // trimmed text before the first `|`
  std::vector<std::string_view> filters;  // trimmed, in order
  bool raw = false;              // `| raw` is among the filters
};

// Splits `inner` (the text between `{{` and `}}`) into the name and its filters.
void ParseInner(std::string_view inner, Placeholder& p) {
  size_t bar = inner.find('|');
  p.name = Trim(inner.substr(0, bar));
  while (bar != std::string_view::npos) {
    inner.remove_prefix(bar + 1);
    bar = inner.find('|');
    std::string_view filter = Trim(inner.substr(0, bar));
    if (filter == kRawFilter) p.raw = true;
    p.filters.push_back(filter);
  }
}

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
    ParseInner(text.substr(open + 2, close - open - 2), p);
    var(p);
    pos = p.end;
  }
  if (pos < text.size()) literal(text.substr(pos));
}

const std::string* Lookup(const std::map<std::string, std::string>& vars, std::string_view name) {
  auto it = vars.find(std::string(name));
  return it == vars.end() ? nullptr : &it->second;
}

// --- shell quoting contexts ------------------------------------------------------------
//
// RenderShellCommand feeds a POSIX-shell lexer every byte the shell will see (the literal
// text and each rendered value) and asks it, at each placeholder, which quoting context
// the shell is in there. The lexer follows what `sh -c` does with quotes, backslashes,
// `$(...)`, `` `...` ``, `${...}`, `$((...))`, comments and here-documents. Where dash
// and bash would read the text differently, or a value cannot be quoted at all, the
// context is kNone: the value renders as nothing and CheckTemplate reports it.

enum class Quoting { kUnquoted, kDouble, kSingle, kComment, kHeredoc, kNone };

struct ShellContext {
  Quoting quoting = Quoting::kUnquoted;
  // Enclosing `...` substitutions, outermost first; true for one written inside "...".
  std::vector<bool> backticks;
  // Inside a substitution or quotes within an unquoted here-document body: a value's
  // newline must not start a line that could end the document.
  bool in_heredoc = false;
  std::string problem;  // kNone: where the placeholder is, e.g. "inside ${...}"
  std::string hint;     // kNone: what to write instead; may be empty
};

// A here-document waiting for its body, which starts after the next newline.
struct Heredoc {
  std::string delimiter;  // after quote removal
  bool quoted = false;    // any part of the delimiter word was quoted: the body is literal
  bool strip_tabs = false;  // `<<-`
};

class ShellLexer {
 public:
  ShellLexer() { frames_.push_back(Frame(Kind::kCommand)); }

  void Feed(std::string_view text) {
    for (char c : text) Feed(c);
  }
  void Feed(char c);

  // The context the next byte would be read in.
  ShellContext Context();

 private:
  enum class Kind { kCommand, kSubst, kSingle, kDouble, kAnsiC, kBrace, kArith, kBacktick, kHeredoc };
  // Reading the delimiter word after `<<`: just after the operator, in blanks, in the word.
  enum class Redirect { kNone, kAfterOperator, kBlank, kWord };

  struct Frame {
    explicit Frame(Kind k) : kind(k) {}
    Kind kind;
    bool escape = false;        // a backslash waits for the byte it escapes
    bool dollar = false;        // a `$` waits for the byte that says what it starts
    bool dollar_paren = false;  // `$(` waits: another `(` makes it `$((`
    // kCommand (the whole command) and kSubst (`$(...)`):
    bool word_start = true;     // a `#` here starts a comment
    bool comment = false;
    std::string word;           // the current word, while it is plain (for `case`)
    bool word_plain = true;
    bool saw_case = false;      // a `)` may end a case pattern rather than the `$(`
    int parens = 0;             // open `(` inside this frame (also kArith)
    int less = 0;               // consecutive `<`
    Redirect redirect = Redirect::kNone;
    Heredoc pending;            // the delimiter being read
    char delimiter_quote = 0;   // `'` or `"` while inside quotes in the delimiter word
    bool delimiter_escape = false;
    std::vector<Heredoc> heredocs;  // waiting for the next newline
    // kArith: a `)` at depth 0 waits for the second one.
    bool closing = false;
    // kBacktick: written inside "...", and the lexer of the command between the backticks.
    bool in_double = false;
    std::shared_ptr<ShellLexer> inner;
    // kHeredoc: the document, the ones queued after it, and the current raw line.
    Heredoc doc;
    std::vector<Heredoc> queued;
    std::string line;
  };

  static bool Blank(char c) { return c == ' ' || c == '\t'; }
  static bool Operator(char c) {
    return c == ';' || c == '&' || c == '|' || c == '<' || c == '>' || c == '(' || c == ')';
  }

  Frame& Top() { return frames_.back(); }
  void Push(Kind kind) { frames_.push_back(Frame(kind)); }
  void PushBacktick(bool in_double) {
    Frame f(Kind::kBacktick);
    f.in_double = in_double;
    f.inner = std::make_shared<ShellLexer>();
    frames_.push_back(std::move(f));
  }
  void Lose(std::string why) {
    if (ambiguous_.empty()) ambiguous_ = std::move(why);
  }
  bool InDouble() const;
  bool HeredocBelowTop() const;
  bool Dollar(char c);
  void Dispatch(char c);
  void CommandByte(char c);
  bool DelimiterByte(char c);
  void EndWord();
  void Newline();
  void EndHeredoc(size_t index);
  void DoubleByte(char c);
  void AnsiCByte(char c);
  void BraceByte(char c);
  void ArithByte(char c);
  void BacktickByte(char c);
  void HeredocByte(char c);

  std::vector<Frame> frames_;
  std::string ambiguous_;  // why the quoting cannot be told from here on; sticky
};

void ShellLexer::Feed(char c) {
  if (!ambiguous_.empty()) return;
  // The innermost open here-document ends at a line equal to its delimiter, read raw
  // whatever is open inside it.
  for (size_t i = frames_.size(); i-- > 0;) {
    if (frames_[i].kind != Kind::kHeredoc) continue;
    Frame& doc = frames_[i];
    if (c != '\n') {
      doc.line += c;
      break;
    }
    std::string_view line = doc.line;
    if (doc.doc.strip_tabs) line.remove_prefix(std::min(line.find_first_not_of('\t'), line.size()));
    if (line == doc.doc.delimiter) {
      if (i + 1 != frames_.size() || doc.escape || doc.dollar) {
        return Lose("after a here-document that ends inside an open quote or substitution");
      }
      return EndHeredoc(i);
    }
    if (i + 1 == frames_.size() && doc.escape) {
      return Lose("after a backslash at the end of a here-document line");
    }
    doc.line.clear();
    break;
  }
  Dispatch(c);
}

void ShellLexer::Dispatch(char c) {
  switch (Top().kind) {
    case Kind::kCommand:
    case Kind::kSubst: return CommandByte(c);
    case Kind::kSingle:
      if (c == '\'') frames_.pop_back();
      return;
    case Kind::kDouble: return DoubleByte(c);
    case Kind::kAnsiC: return AnsiCByte(c);
    case Kind::kBrace: return BraceByte(c);
    case Kind::kArith: return ArithByte(c);
    case Kind::kBacktick: return BacktickByte(c);
    case Kind::kHeredoc: return HeredocByte(c);
  }
}

// Whether a `...` opened here is inside "...": the nearest quoting frame decides.
bool ShellLexer::InDouble() const {
  for (size_t i = frames_.size(); i-- > 0;) {
    Kind k = frames_[i].kind;
    if (k == Kind::kBrace || k == Kind::kArith) continue;
    return k == Kind::kDouble;
  }
  return false;
}

bool ShellLexer::HeredocBelowTop() const {
  for (size_t i = 0; i + 1 < frames_.size(); ++i) {
    if (frames_[i].kind == Kind::kHeredoc) return true;
  }
  return false;
}

// The byte after a `$` (or after `$(`): starts a substitution, or is read as usual.
// Returns true when it was consumed here.
bool ShellLexer::Dollar(char c) {
  Frame& f = Top();
  if (f.dollar_paren) {
    f.dollar_paren = false;
    if (c == '(') {
      Push(Kind::kArith);
      return true;
    }
    Push(Kind::kSubst);
    Dispatch(c);
    return true;
  }
  if (!f.dollar) return false;
  f.dollar = false;
  const bool command = f.kind == Kind::kCommand || f.kind == Kind::kSubst;
  switch (c) {
    case '(': f.dollar_paren = true; return true;
    case '{': Push(Kind::kBrace); return true;
    // bash reads $'...' with backslash escapes, dash as `$` and '...'; $"..." is "..." in both.
    case '\'': if (!command) return false; Push(Kind::kAnsiC); return true;
    case '"': if (!command) return false; Push(Kind::kDouble); return true;
    default: return false;
  }
}

void ShellLexer::EndWord() {
  Frame& f = Top();
  if (f.word_plain && f.word == "case") f.saw_case = true;
  f.word.clear();
  f.word_plain = true;
  f.word_start = true;
}

void ShellLexer::Newline() {
  EndWord();
  Frame& f = Top();
  if (f.heredocs.empty()) return;
  Frame doc(Kind::kHeredoc);
  doc.doc = f.heredocs.front();
  doc.queued.assign(f.heredocs.begin() + 1, f.heredocs.end());
  f.heredocs.clear();
  frames_.push_back(std::move(doc));
}

void ShellLexer::EndHeredoc(size_t index) {
  std::vector<Heredoc> queued = std::move(frames_[index].queued);
  frames_.erase(frames_.begin() + static_cast<std::ptrdiff_t>(index), frames_.end());
  if (queued.empty()) return;
  Frame doc(Kind::kHeredoc);
  doc.doc = queued.front();
  doc.queued.assign(queued.begin() + 1, queued.end());
  frames_.push_back(std::move(doc));
}

// The delimiter word after `<<` (returns false when `c` ends it and is read as usual).
bool ShellLexer::DelimiterByte(char c) {
  Frame& f = Top();
  switch (f.redirect) {
    case Redirect::kNone: return false;
    case Redirect::kAfterOperator:
      if (c == '<') {  // `<<<`: a bash here-string, an ordinary word follows
        f.redirect = Redirect::kNone;
        return true;
      }
      f.redirect = Redirect::kBlank;
      if (c == '-') {
        f.pending.strip_tabs = true;
        return true;
      }
      [[fallthrough]];
    case Redirect::kBlank:
      if (Blank(c)) return true;
      if (c == '\n' || Operator(c)) {
        Lose("after a here-document without a delimiter");
        return true;
      }
      f.redirect = Redirect::kWord;
      [[fallthrough]];
    case Redirect::kWord: break;
  }
  if (f.delimiter_escape) {
    f.delimiter_escape = false;
    f.pending.delimiter += c;
  } else if (f.delimiter_quote) {
    if (c == f.delimiter_quote) {
      f.delimiter_quote = 0;
    } else if (c == '\\' && f.delimiter_quote == '"') {
      f.delimiter_escape = true;
    } else {
      f.pending.delimiter += c;
    }
  } else if (c == '\\') {
    f.delimiter_escape = true;
    f.pending.quoted = true;
  } else if (c == '\'' || c == '"') {
    f.delimiter_quote = c;
    f.pending.quoted = true;
  } else if (c == '$' || c == '`') {
    Lose("after a here-document delimiter with '$' or '`'");
  } else if (Blank(c) || c == '\n' || Operator(c)) {
    f.heredocs.push_back(std::move(f.pending));
    f.pending = Heredoc{};
    f.redirect = Redirect::kNone;
    return false;
  } else {
    f.pending.delimiter += c;
  }
  return true;
}

// A byte of a command, unquoted: the whole command, or inside `$(...)`.
void ShellLexer::CommandByte(char c) {
  Frame& f = Top();
  if (f.comment) {
    if (c == '\n') {
      f.comment = false;
      Newline();
    }
    return;
  }
  if (DelimiterByte(c)) return;
  if (f.escape) {
    f.escape = false;  // `\` + newline joins lines; anything else is one quoted byte
    if (c != '\n') f.word_start = false;
    return;
  }
  if (Dollar(c)) return;
  if (c != '<') f.less = 0;
  switch (c) {
    case '\\': f.escape = true; f.word_plain = false; f.word_start = false; return;
    case '\'': f.word_plain = false; f.word_start = false; Push(Kind::kSingle); return;
    case '"': f.word_plain = false; f.word_start = false; Push(Kind::kDouble); return;
    case '`': f.word_plain = false; f.word_start = false; PushBacktick(false); return;
    case '$': f.dollar = true; f.word_plain = false; f.word_start = false; return;
    case '#':
      if (f.word_start) {
        f.comment = true;
        return;
      }
      break;
    case '(': EndWord(); ++Top().parens; return;
    case ')':
      EndWord();
      if (f.parens > 0) {
        --f.parens;
      } else if (f.kind == Kind::kSubst) {
        if (f.saw_case) return Lose("after 'case' inside $(...)");
        if (!f.heredocs.empty()) return Lose("after $(...) that ends before its here-document");
        frames_.pop_back();
      }
      return;
    case '\n': return Newline();
    case '<':
      EndWord();
      if (++f.less == 2) {
        f.less = 0;
        f.redirect = Redirect::kAfterOperator;
        f.pending = Heredoc{};
      }
      return;
    default:
      if (Blank(c) || Operator(c)) return EndWord();
      break;
  }
  f.word += c;
  f.word_start = false;
}

void ShellLexer::DoubleByte(char c) {
  Frame& f = Top();
  if (f.escape) {
    f.escape = false;
    return;
  }
  if (Dollar(c)) return;
  switch (c) {
    case '\\': f.escape = true; return;
    case '"': frames_.pop_back(); return;
    case '$': f.dollar = true; return;
    case '`': PushBacktick(true); return;
    default: return;
  }
}

void ShellLexer::AnsiCByte(char c) {
  Frame& f = Top();
  if (f.escape) {
    f.escape = false;
    // bash reads on after \', dash's '...' ends there.
    if (c == '\'') Lose("after \\' inside $'...'");
    return;
  }
  if (c == '\\') f.escape = true;
  if (c == '\'') frames_.pop_back();
}

void ShellLexer::BraceByte(char c) {
  Frame& f = Top();
  if (f.escape) {
    f.escape = false;
    return;
  }
  if (Dollar(c)) return;
  switch (c) {
    case '\\': f.escape = true; return;
    case '}': frames_.pop_back(); return;
    case '$': f.dollar = true; return;
    case '`': PushBacktick(InDouble()); return;
    // Shells disagree about quotes and braces in the word of ${x:-word}.
    case '\'':
    case '"': return Lose("after quotes inside ${...}");
    case '{': return Lose("after a brace inside ${...}");
    default: return;
  }
}

void ShellLexer::ArithByte(char c) {
  Frame& f = Top();
  if (f.closing) {
    f.closing = false;
    if (c != ')') return Lose("after $((...) that closes with a single ')'");
    frames_.pop_back();
    return;
  }
  if (f.escape) {
    f.escape = false;
    return;
  }
  if (Dollar(c)) return;
  switch (c) {
    case '\\': f.escape = true; return;
    case '(': ++f.parens; return;
    case ')':
      if (f.parens > 0) {
        --f.parens;
      } else {
        f.closing = true;
      }
      return;
    case '$': f.dollar = true; return;
    case '`': PushBacktick(InDouble()); return;
    case '\'':
    case '"': return Lose("after quotes inside $((...))");
    default: return;
  }
}

// Between backticks the shell first removes the backslash of \$, \`, \\ (and of \" when
// the backticks are inside "..."), then reads the result as a command of its own.
void ShellLexer::BacktickByte(char c) {
  Frame& f = Top();
  if (f.escape) {
    f.escape = false;
    if (!(c == '$' || c == '`' || c == '\\' || (c == '"' && f.in_double))) f.inner->Feed('\\');
    f.inner->Feed(c);
    return;
  }
  if (c == '\\') {
    f.escape = true;
  } else if (c == '`') {
    frames_.pop_back();
  } else {
    f.inner->Feed(c);
  }
}

// An unquoted here-document body expands $, ` and \ as "..." does; quotes are plain bytes.
void ShellLexer::HeredocByte(char c) {
  Frame& f = Top();
  if (f.doc.quoted) return;
  if (f.escape) {
    f.escape = false;
    return;
  }
  if (Dollar(c)) return;
  switch (c) {
    case '\\': f.escape = true; return;
    case '$': f.dollar = true; return;
    case '`': PushBacktick(false); return;
    default: return;
  }
}

ShellContext ShellLexer::Context() {
  auto none = [](std::string problem, std::string hint = "") {
    ShellContext ctx;
    ctx.quoting = Quoting::kNone;
    ctx.problem = std::move(problem);
    ctx.hint = std::move(hint);
    return ctx;
  };
  if (!ambiguous_.empty()) return none("where the shell quoting cannot be told (" + ambiguous_ + ")");
  // `$(` followed by a value is a command substitution.
  if (Top().dollar_paren) {
    Top().dollar_paren = false;
    Push(Kind::kSubst);
  }
  const Frame& f = Top();
  if (f.escape) return none("right after a backslash", "remove the backslash");
  if (f.dollar) return none("right after '$'", "remove the '$'");
  ShellContext ctx;
  switch (f.kind) {
    case Kind::kCommand:
    case Kind::kSubst:
      if (f.redirect != Redirect::kNone) return none("in a here-document delimiter");
      ctx.quoting = f.comment ? Quoting::kComment : Quoting::kUnquoted;
      break;
    case Kind::kSingle: ctx.quoting = Quoting::kSingle; break;
    case Kind::kDouble: ctx.quoting = Quoting::kDouble; break;
    case Kind::kAnsiC: return none("inside $'...'", "use '...' or \"...\" instead");
    case Kind::kBrace: return none("inside ${...}", "assign it to a shell variable first");
    case Kind::kArith: return none("inside $((...))", "assign it to a shell variable first");
    case Kind::kHeredoc:
      if (f.doc.quoted) {
        return none("inside a quoted here-document", "use an unquoted delimiter, or its BATCHD_PARAM_ variable");
      }
      ctx.quoting = Quoting::kHeredoc;
      break;
    case Kind::kBacktick: {
      bool in_double = f.in_double;
      ctx = f.inner->Context();
      ctx.backticks.insert(ctx.backticks.begin(), in_double);
      break;
    }
  }
  if (HeredocBelowTop()) ctx.in_heredoc = true;
  return ctx;
}

// --- escaping --------------------------------------------------------------------------

// Breaks a line inside quotes in a here-document: a line that starts with '' or "" can
// never equal an unquoted delimiter, which holds no quote.
constexpr std::string_view kHeredocGuard = "${1+}";  // expands to nothing, in dash and bash

std::string QuotedBody(std::string_view value, char quote, bool in_heredoc) {
  std::string out;
  out.reserve(value.size() + 8);
  if (in_heredoc) out.append(2, quote);
  for (char c : value) {
    if (c == '\0') continue;
    if (quote == '\'' && c == '\'') {
      out += "'\\''";
    } else if (quote == '"' && (c == '$' || c == '`' || c == '"' || c == '\\')) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
    if (c == '\n' && in_heredoc) out.append(2, quote);
  }
  return out;
}

std::string HeredocBody(std::string_view value) {
  std::string out(kHeredocGuard);
  for (char c : value) {
    if (c == '\0') continue;
    if (c == '$' || c == '`' || c == '\\') out += '\\';
    out += c;
    if (c == '\n') out += kHeredocGuard;
  }
  return out;
}

// What the text between backticks must hold for the command inside to read `inner`.
std::string BacktickEscape(std::string_view inner, bool in_double) {
  std::string out;
  out.reserve(inner.size() + 8);
  for (char c : inner) {
    if (c == '\\' || c == '`' || c == '$' || (c == '"' && in_double)) out += '\\';
    out += c;
  }
  return out;
}

std::string EscapeFor(const ShellContext& ctx, std::string_view value) {
  std::string out;
  switch (ctx.quoting) {
    case Quoting::kUnquoted: out = "'" + QuotedBody(value, '\'', ctx.in_heredoc) + "'"; break;
    case Quoting::kSingle: out = QuotedBody(value, '\'', ctx.in_heredoc); break;
    case Quoting::kDouble: out = QuotedBody(value, '"', ctx.in_heredoc); break;
    case Quoting::kHeredoc: out = HeredocBody(value); break;
    case Quoting::kComment:
      // Nothing reads a comment, but a newline would end it.
      for (char c : value) {
        if (c != '\0') out += c == '\n' ? ' ' : c;
      }
      break;
    case Quoting::kNone: return "";
  }
  for (auto it = ctx.backticks.rbegin(); it != ctx.backticks.rend(); ++it) out = BacktickEscape(out, *it);
  return out;
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

namespace {

// The problem with a placeholder's name or filters, if any.
std::optional<TemplateError> CheckPlaceholder(const Placeholder& p, const std::vector<std::string>& param_names,
                                              const std::vector<std::string>& variables) {
  if (p.end == std::string_view::npos) return TemplateError{p.begin, "unterminated '{{'", ""};
  if (p.name.empty()) return TemplateError{p.begin, "empty template variable '{{ }}'", ""};
  for (std::string_view filter : p.filters) {
    if (filter.empty()) return TemplateError{p.begin, "missing template filter after '|'", ""};
    if (filter != kRawFilter) {
      std::string suggestion = internal::Suggest(filter, {std::string(kRawFilter)});
      return TemplateError{p.begin, "unknown template filter " + internal::QuoteForMessage(filter),
                           suggestion.empty() ? "" : "did you mean '" + suggestion + "'?"};
    }
  }
  if (p.name.substr(0, kParamsPrefix.size()) == kParamsPrefix) {
    std::string_view param = p.name.substr(kParamsPrefix.size());
    if (Contains(param_names, param)) return std::nullopt;
  } else if (Contains(variables, p.name)) {
    return std::nullopt;
  } else if (Contains(TemplateVariables(), p.name)) {
    return TemplateError{p.begin, "template variable '" + std::string(p.name) + "' is not available", ""};
  }
  std::vector<std::string> candidates = variables;
  for (const std::string& param : param_names) candidates.push_back(std::string(kParamsPrefix) + param);
  std::string suggestion = internal::Suggest(p.name, candidates);
  return TemplateError{p.begin, "unknown template variable " + internal::QuoteForMessage(p.name),
                       suggestion.empty() ? "" : "did you mean '" + suggestion + "'?"};
}

}  // namespace

std::vector<TemplateError> CheckTemplate(std::string_view text, const std::vector<std::string>& param_names,
                                         const std::vector<std::string>& variables, TemplateUse use) {
  std::vector<TemplateError> errors;
  ShellLexer lexer;
  const bool shell = use == TemplateUse::kShellCommand;
  auto literal = [&](std::string_view s) {
    if (shell) lexer.Feed(s);
  };
  auto check = [&](const Placeholder& p) {
    if (auto error = CheckPlaceholder(p, param_names, variables)) {
      errors.push_back(std::move(*error));
      return;
    }
    // Values are not known here: an empty one leaves the lexer where any quoted value
    // would, and a raw one is taken for plain word bytes.
    if (!shell || p.raw) return;
    ShellContext ctx = lexer.Context();
    if (ctx.quoting == Quoting::kNone) {
      std::string name(p.name);
      std::string hint = ctx.hint.empty() ? "" : ctx.hint + ", or write '{{ " + name + " | raw }}'";
      errors.push_back({p.begin, "cannot quote template variable '" + name + "' " + ctx.problem, std::move(hint)});
      return;
    }
    lexer.Feed(EscapeFor(ctx, ""));
  };
  Scan(text, literal, check);
  return errors;
}

std::string RenderTemplate(std::string_view text, const std::map<std::string, std::string>& vars) {
  std::string out;
  out.reserve(text.size());
  auto literal = [&](std::string_view s) { out.append(s); };
  auto substitute = [&](const Placeholder& p) {
    if (p.end == std::string_view::npos) return;  // the literal callback keeps the rest
    if (const std::string* value = Lookup(vars, p.name)) out += *value;
  };
  Scan(text, literal, substitute);
  return out;
}

std::string RenderShellCommand(std::string_view text, const std::map<std::string, std::string>& vars) {
  std::string out;
  out.reserve(text.size());
  ShellLexer lexer;
  auto literal = [&](std::string_view s) {
    out.append(s);
    lexer.Feed(s);
  };
  auto substitute = [&](const Placeholder& p) {
    if (p.end == std::string_view::npos) return;  // the literal callback keeps the rest
    const std::string* found = Lookup(vars, p.name);
    std::string_view value = found ? std::string_view(*found) : std::string_view();
    // The lexer reads what the shell will read, raw values included, so the quoting of
    // every later placeholder follows the real command.
    std::string rendered = p.raw ? std::string(value) : EscapeFor(lexer.Context(), value);
    lexer.Feed(rendered);
    out += rendered;
  };
  Scan(text, literal, substitute);
  return out;
}

std::string ShellQuote(std::string_view value) { return "'" + QuotedBody(value, '\'', false) + "'"; }

}  // namespace batchd::dag
