#pragma once
// Text helpers for error messages: "did you mean ...?" suggestions for typos in keys,
// variables, task ids and enum values, and quoting of user text. Private to src/dag.

#include <string>
#include <string_view>
#include <vector>

namespace batchd::dag::internal {

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), capped:
// returns `cap + 1` as soon as the distance is known to exceed `cap`.
size_t EditDistance(std::string_view a, std::string_view b, size_t cap = 64);

// The closest candidate if it is close enough to be a plausible typo of `word`
// (distance 1 for words of up to four characters, else 2); empty otherwise.
// Ties go to the earlier candidate.
std::string Suggest(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" when there is no plausible candidate.
std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates);

// `text` quoted for a message: 'abc', shortened after 60 bytes, control characters escaped.
std::string QuoteForMessage(std::string_view text);

}  // namespace batchd::dag::internal
