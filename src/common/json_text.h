#pragma once
// Text from outside (file names, partition lines, params) may hold any bytes, while JSON
// strings must be UTF-8 and nlohmann::json::dump() throws on anything else. These helpers
// keep such bytes exact where they are stored and safe where they are shown.

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace batchd {

bool IsValidUtf8(std::string_view s);

// dump() that never throws: bytes that are not UTF-8 are shown as U+FFFD. For replies and
// logs, where a value must be readable, not exact.
std::string DumpJsonForDisplay(const nlohmann::json& value, int indent = -1);

// Exact bytes as JSON: a string when they are UTF-8, else {"hex": "<lowercase hex>"}.
nlohmann::json BytesToJson(std::string_view bytes);
// The bytes BytesToJson stored; nullopt for anything else (a non-string scalar is not
// bytes: callers decide how to show it).
std::optional<std::string> BytesFromJson(const nlohmann::json& value);

}  // namespace batchd
