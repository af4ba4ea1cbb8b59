#include "dag/yaml_tree.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <new>
#include <sstream>

#include "dag/text_util.h"

namespace batchd::dag::internal {
namespace {

// More empty documents than this after the first ("---" lines) is not a DAG file.
constexpr int kMaxEmptyDocuments = 100;

// Thrown by the event handlers to stop yaml-cpp; caught in ParseYaml.
struct StopParse {
  YamlError error;
};

YamlError ErrorAt(const YAML::Mark& mark, std::string message) {
  if (mark.is_null()) return YamlError{0, 0, std::move(message)};
  return YamlError{mark.line + 1, mark.column + 1, std::move(message)};
}

// Builds the tree from one document's events. Aliases become pointers to the anchored
// node; an alias to a node that is still open (it would contain itself) is refused.
class TreeBuilder final : public YAML::EventHandler {
 public:
  TreeBuilder(YamlDocument* doc, std::string_view text, size_t bom_bytes)
      : doc_(doc), text_(text), bom_bytes_(bom_bytes) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    YamlNode* node = New(YamlNode::Kind::kNull, mark);
    Register(anchor, node, /*complete=*/true);
    Attach(node);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (anchor >= anchors_.size() || anchors_[anchor].node == nullptr) {
      throw StopParse{ErrorAt(mark, "alias refers to an unknown anchor")};
    }
    const Anchor& a = anchors_[anchor];
    if (!a.complete) {
      throw StopParse{ErrorAt(mark, "alias '*" + a.name + "' refers to a node that contains it (recursive alias)")};
    }
    Attach(a.node);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (tag != "?") CheckQuoteClosed(mark);
    YamlNode* node = New(YamlNode::Kind::kScalar, mark);
    node->plain = (tag == "?");
    node->value = value;
    Register(anchor, node, /*complete=*/true);
    Attach(node);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(YamlNode::Kind::kSequence, mark, anchor);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(YamlNode::Kind::kMapping, mark, anchor);
  }
  void OnMapEnd() override { Close(); }

  void OnAnchor(const YAML::Mark&, const std::string& anchor_name) override { pending_anchor_name_ = anchor_name; }

 private:
  struct Anchor {
    const YamlNode* node = nullptr;
    bool complete = false;
    std::string name;
  };

  YamlNode* New(YamlNode::Kind kind, const YAML::Mark& mark) {
    if (doc_->nodes.size() >= kMaxYamlNodes) {
      throw StopParse{ErrorAt(mark, "the file has too many YAML nodes (more than " +
                                        std::to_string(kMaxYamlNodes) + ")")};
    }
    YamlNode& node = doc_->nodes.emplace_back();
    node.kind = kind;
    node.line = mark.line + 1;
    node.column = mark.column + 1;
    node.offset = static_cast<size_t>(mark.pos < 0 ? 0 : mark.pos) + bom_bytes_;
    return &node;
  }

  void Register(YAML::anchor_t anchor, const YamlNode* node, bool complete) {
    if (anchor == 0) return;
    if (anchor > kMaxYamlNodes) throw StopParse{YamlError{node->line, node->column, "too many anchors"}};
    if (anchors_.size() <= anchor) anchors_.resize(anchor + 1);
    anchors_[anchor] = Anchor{node, complete, pending_anchor_name_};
  }

  void Attach(const YamlNode* node) {
    if (open_.empty()) {
      if (doc_->root == nullptr) doc_->root = node;
      return;
    }
    open_.back().node->children.push_back(node);
  }

  void Open(YamlNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (open_.size() >= static_cast<size_t>(kMaxYamlDepth)) {
      throw StopParse{ErrorAt(mark, "YAML nesting is too deep (more than " + std::to_string(kMaxYamlDepth) +
                                        " levels)")};
    }
    YamlNode* node = New(kind, mark);
    Register(anchor, node, /*complete=*/false);
    Attach(node);
    open_.push_back(Open_{node, anchor});
  }

  void Close() {
    if (open_.empty()) return;  // unbalanced events: yaml-cpp never sends them
    if (open_.back().anchor != 0) anchors_[open_.back().anchor].complete = true;
    open_.pop_back();
  }

  struct Open_ {
    YamlNode* node;
    YAML::anchor_t anchor;
  };

  // yaml-cpp accepts a quoted scalar that the end of the file cuts off ("abc<EOF>): a
  // DAG file truncated while it was copied must not run a shortened command.
  void CheckQuoteClosed(const YAML::Mark& mark) const {
    if (mark.pos < 0) return;
    size_t at = static_cast<size_t>(mark.pos) + bom_bytes_;
    if (at >= text_.size()) return;
    const char quote = text_[at];
    if (quote != '"' && quote != '\'') return;  // block scalars and tags end with the text
    for (size_t i = at + 1; i < text_.size(); ++i) {
      if (quote == '"' && text_[i] == '\\') {
        ++i;  // an escape: the next byte is not the closing quote
      } else if (text_[i] == quote) {
        if (quote == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;  // '' is an escaped quote inside '...'
          continue;
        }
        return;
      }
    }
    throw StopParse{ErrorAt(mark, std::string("YAML syntax error: unterminated quoted string (no closing ") + quote +
                                      " before the end of the file)")};
  }

  YamlDocument* doc_;
  std::string_view text_;
  size_t bom_bytes_;
  std::vector<Open_> open_;
  std::vector<Anchor> anchors_;  // by yaml-cpp's anchor id (1-based)
  std::string pending_anchor_name_;
};

// Handles the events of a document after the first: any content is an error.
class ExtraDocumentProbe final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { Fail(); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override { Fail(); }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    Fail();
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    Fail();
  }
  void OnMapEnd() override {}

  const YAML::Mark& start() const { return start_; }

 private:
  [[noreturn]] void Fail() {
    throw StopParse{ErrorAt(start_, "a DAG file must contain a single YAML document, but a second one starts here")};
  }
  YAML::Mark start_;
};

}  // namespace

YamlParse ParseYaml(std::string_view text) {
  YamlParse result;
  size_t bom = (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") ? 3 : 0;
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    TreeBuilder builder(&result.doc, text, bom);
    if (!parser.HandleNextDocument(builder)) return result;  // no document at all
    // Look at what follows. yaml-cpp 0.7 reports a stray token it cannot place (e.g. a
    // ',' outside any flow collection) as an empty document without consuming it, and
    // does so forever (jbeder/yaml-cpp#1040): a call that starts where the previous one
    // did made no progress and ends the loop with an error.
    ExtraDocumentProbe probe;
    int previous_start = -2;
    for (int docs = 0; parser.HandleNextDocument(probe); ++docs) {
      if (probe.start().pos == previous_start || docs >= kMaxEmptyDocuments) {
        size_t at = static_cast<size_t>(std::max(probe.start().pos, 0)) + bom;
        char c = at < text.size() ? text[at] : '\0';
        throw StopParse{ErrorAt(probe.start(), c > ' ' && c < 0x7F
                                                   ? std::string("YAML syntax error: unexpected '") + c + "'"
                                                   : std::string("YAML syntax error: unexpected content"))};
      }
      previous_start = probe.start().pos;
    }
  } catch (const StopParse& stop) {
    result.error = stop.error;
  } catch (const YAML::DeepRecursion& e) {
    result.error = ErrorAt(e.mark, "YAML nesting is too deep (more than " + std::to_string(kMaxYamlDepth) + " levels)");
  } catch (const YAML::Exception& e) {
    result.error = ErrorAt(e.mark, "YAML syntax error: " + e.msg);
  } catch (const std::bad_alloc&) {
    result.error = YamlError{0, 0, "out of memory while parsing YAML"};
  } catch (const std::exception& e) {
    result.error = YamlError{0, 0, std::string("YAML parser failed: ") + e.what()};
  } catch (...) {
    result.error = YamlError{0, 0, "YAML parser failed with an unknown error"};
  }
  if (result.error) {
    result.doc.root = nullptr;
    result.doc.nodes.clear();
  }
  return result;
}

std::string DescribeYamlNode(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::kNull: return "an empty value";
    case YamlNode::Kind::kScalar: return QuoteForMessage(node.value);
    case YamlNode::Kind::kSequence: return "a list";
    case YamlNode::Kind::kMapping: return "a mapping";
  }
  return "an unknown value";
}

}  // namespace batchd::dag::internal
