#pragma once
// Who may change state through the control API. Reading is open to anyone who can connect
// to the socket (its file mode decides that); with an allow-list configured
// (api.mutation_uids, api.mutation_groups in config/batchd.yaml) a mutating request
// (POST, PUT, PATCH, DELETE) is accepted only from root, from the daemon's own uid, from a
// listed uid, or from a member of a listed group. Group membership is looked up when the
// request arrives, so adding an operator to a group takes effect without a reload.
//
// Pure apart from GroupsOfUid (NSS); thread rules: none (values).

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace batchd::api {

struct MutationAllowList {
  bool enabled = false;                   // either key configured (an empty list still enables it)
  std::vector<uid_t> uids;                // resolved from mutation_uids
  std::vector<gid_t> gids;                // resolved from mutation_groups
  std::vector<std::string> uid_labels;    // as configured, for messages
  std::vector<std::string> group_labels;  // as configured, for messages
};

// Every gid `uid` belongs to (its passwd entry's primary group and its supplementary
// groups); empty when the uid has no passwd entry.
std::vector<gid_t> GroupsOfUid(uid_t uid);

using GroupLookup = std::function<std::vector<gid_t>(uid_t)>;

// nullopt when the peer `uid` (-1: unknown, e.g. TCP) may send `method path`; otherwise the
// reason, written for the operator:
//   uid 65534 may not POST /v1/dags/x/runs; mutations are limited to root, uid 1000 and
//   members of group ops (config api.mutation_uids, api.mutation_groups)
std::optional<std::string> MutationDenied(const MutationAllowList& allow, int uid, uid_t daemon_uid,
                                          const std::string& method, const std::string& path,
                                          const GroupLookup& groups = GroupsOfUid);

}  // namespace batchd::api
