// The DAG loader on arbitrary bytes: it returns a Dag or at least one error, never
// crashes, throws, hangs or recurses without bound (the loader's contract in
// dag/loader.h; tests/dag/loader_fuzz_test.cc checks the same on fixed inputs).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dag/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  batchd::dag::LoadResult r = batchd::dag::LoadDagString(text, "fuzz.yaml");
  if (r.ok() != (r.dag != nullptr)) abort();
  for (const auto& d : r.errors) {
    if (d.message.empty() || d.line < 0 || (d.line > 0 && d.column < 1)) abort();
  }
  return 0;
}
