#pragma once
// The web UI's files (src/ui/assets), compiled into the binary so that nothing is read from
// disk or fetched from the network when a page is viewed.

#include <string_view>

namespace batchd::ui {

struct Asset {
  std::string_view name;          // file name, e.g. "app.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view body;
};

// The asset called `name`, or nullptr.
const Asset* FindAsset(std::string_view name);

}  // namespace batchd::ui
