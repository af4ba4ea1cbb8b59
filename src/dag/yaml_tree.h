#pragma once
// A small, immutable YAML tree with source positions, built from yaml-cpp's event
// parser. Private to src/dag: nothing outside the loader sees yaml-cpp or this tree.
//
// Why not YAML::Node: it hides duplicate keys and aliases, and its marks are lost on
// aliased nodes. Here every node keeps its 1-based line/column, duplicate keys stay
// visible to the validator, an alias is a pointer to the anchored node (never a copy,
// so an alias bomb costs one pointer per alias), and a node that would contain itself
// through an alias is refused.
//
// Robustness limits: nesting deeper than kMaxYamlDepth and more than kMaxYamlNodes
// nodes are refused; every yaml-cpp exception is caught here and becomes a YamlError.

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace batchd::dag::internal {

inline constexpr int kMaxYamlDepth = 64;
inline constexpr size_t kMaxYamlNodes = 500'000;  // ~40 MB of nodes at most

struct YamlNode {
  enum class Kind { kNull, kScalar, kSequence, kMapping };
  Kind kind = Kind::kNull;
  int line = 0;        // 1-based
  int column = 0;      // 1-based
  size_t offset = 0;   // byte offset of the node's first character in the source
  bool plain = true;   // scalar written without quotes or block indicator
  std::string value;   // scalar text
  // kSequence: the items. kMapping: key, value, key, value, ... in source order.
  std::vector<const YamlNode*> children;
};

struct YamlError {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;
  std::string message;
};

// Owns every node; `root` is null when the text holds no document.
struct YamlDocument {
  std::deque<YamlNode> nodes;
  const YamlNode* root = nullptr;
};

struct YamlParse {
  YamlDocument doc;
  std::optional<YamlError> error;  // set: `doc` is unusable
};

// Parses one YAML document. Never throws. A second non-empty document is an error.
YamlParse ParseYaml(std::string_view text);

// "a mapping", "a list", "an empty value" or the quoted scalar ('abc').
std::string DescribeYamlNode(const YamlNode& node);

}  // namespace batchd::dag::internal
