#include "api/access_policy.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>

namespace batchd::api {
namespace {

// "a", "a and b", "a, b and c" (or with "or").
std::string Join(const std::vector<std::string>& items, const char* last) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? last : ", ";
    out += items[i];
  }
  return out;
}

std::string Plural(const char* word, size_t n) { return n == 1 ? word : std::string(word) + "s"; }

}  // namespace

std::vector<gid_t> GroupsOfUid(uid_t uid) {
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  while (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == ERANGE && buf.size() < (1u << 20))
    buf.resize(buf.size() * 2);
  if (found == nullptr) return {};
  int count = 64;
  std::vector<gid_t> gids(static_cast<size_t>(count));
  while (::getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &count) < 0) gids.resize(static_cast<size_t>(count));
  gids.resize(static_cast<size_t>(count));
  return gids;
}

std::optional<std::string> MutationDenied(const MutationAllowList& allow, int uid, uid_t daemon_uid,
                                          const std::string& method, const std::string& path,
                                          const GroupLookup& groups) {
  if (!allow.enabled) return std::nullopt;
  if (uid >= 0) {
    const auto peer = static_cast<uid_t>(uid);
    // Root can take over the daemon anyway; the daemon's own uid owns its data directory.
    if (peer == 0 || peer == daemon_uid) return std::nullopt;
    if (std::find(allow.uids.begin(), allow.uids.end(), peer) != allow.uids.end()) return std::nullopt;
    if (!allow.gids.empty()) {
      for (gid_t g : groups(peer))
        if (std::find(allow.gids.begin(), allow.gids.end(), g) != allow.gids.end()) return std::nullopt;
    }
  }
  std::vector<std::string> who = {"root"};
  if (daemon_uid != 0) who.push_back("the daemon's uid " + std::to_string(daemon_uid));
  if (!allow.uid_labels.empty()) who.push_back(Plural("uid", allow.uid_labels.size()) + " " + Join(allow.uid_labels, " or "));
  if (!allow.group_labels.empty())
    who.push_back("members of " + Plural("group", allow.group_labels.size()) + " " + Join(allow.group_labels, " or "));
  const std::string caller = uid >= 0 ? "uid " + std::to_string(uid) : "an unidentified caller";
  return caller + " may not " + method + " " + path + "; mutations are limited to " + Join(who, " and ") +
         " (config api.mutation_uids, api.mutation_groups)";
}

}  // namespace batchd::api
