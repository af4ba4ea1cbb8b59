#pragma once

#include <string>
#include <string_view>

namespace batchd {

// Lower-case hex SHA-256 of `data` (Nettle's implementation: no initialization cost,
// where OpenSSL 3's first digest loads its config and providers, ~2 ms per process).
std::string Sha256Hex(std::string_view data);

}  // namespace batchd
