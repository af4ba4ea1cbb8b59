#include "api/access_policy.h"

#include <gtest/gtest.h>

namespace batchd::api {
namespace {

constexpr uid_t kDaemonUid = 998;

std::vector<gid_t> NoGroups(uid_t) { return {}; }

TEST(MutationDeniedTest, WithoutAnAllowListEveryCallerMayMutate) {
  MutationAllowList off;
  EXPECT_EQ(MutationDenied(off, 1001, kDaemonUid, "POST", "/v1/reload", NoGroups), std::nullopt);
  EXPECT_EQ(MutationDenied(off, -1, kDaemonUid, "POST", "/v1/reload", NoGroups), std::nullopt);
}

TEST(MutationDeniedTest, AnEmptyListStillAllowsRootAndTheDaemonsOwnUid) {
  MutationAllowList allow;
  allow.enabled = true;
  EXPECT_EQ(MutationDenied(allow, 0, kDaemonUid, "POST", "/v1/reload", NoGroups), std::nullopt);
  EXPECT_EQ(MutationDenied(allow, kDaemonUid, kDaemonUid, "POST", "/v1/reload", NoGroups), std::nullopt);
  EXPECT_EQ(MutationDenied(allow, 1001, kDaemonUid, "POST", "/v1/reload", NoGroups),
            "uid 1001 may not POST /v1/reload; mutations are limited to root and the daemon's uid 998 "
            "(config api.mutation_uids, api.mutation_groups)");
  // A daemon running as root does not name itself twice.
  EXPECT_EQ(MutationDenied(allow, 1001, 0, "DELETE", "/v1/dags/x", NoGroups),
            "uid 1001 may not DELETE /v1/dags/x; mutations are limited to root "
            "(config api.mutation_uids, api.mutation_groups)");
}

TEST(MutationDeniedTest, ListedUidsAndMembersOfListedGroupsMayMutate) {
  MutationAllowList allow;
  allow.enabled = true;
  allow.uids = {1000, 1001};
  allow.uid_labels = {"alice (1000)", "1001"};
  allow.gids = {50, 60};
  allow.group_labels = {"ops", "60"};
  int lookups = 0;
  auto groups = [&](uid_t uid) {
    ++lookups;
    return uid == 2000 ? std::vector<gid_t>{2000, 60} : std::vector<gid_t>{uid};
  };
  EXPECT_EQ(MutationDenied(allow, 1000, kDaemonUid, "POST", "/v1/dags", groups), std::nullopt);
  EXPECT_EQ(MutationDenied(allow, 1001, kDaemonUid, "POST", "/v1/dags", groups), std::nullopt);
  EXPECT_EQ(lookups, 0) << "a listed uid needs no group lookup";
  EXPECT_EQ(MutationDenied(allow, 2000, kDaemonUid, "POST", "/v1/dags", groups), std::nullopt);
  EXPECT_EQ(MutationDenied(allow, 3000, kDaemonUid, "POST", "/v1/dags/x/runs", groups),
            "uid 3000 may not POST /v1/dags/x/runs; mutations are limited to root, the daemon's uid 998, uids "
            "alice (1000) or 1001 and members of groups ops or 60 (config api.mutation_uids, api.mutation_groups)");
}

TEST(MutationDeniedTest, AnUnidentifiedCallerIsRefused) {
  MutationAllowList allow;
  allow.enabled = true;
  allow.uids = {1000};
  allow.uid_labels = {"1000"};
  EXPECT_EQ(MutationDenied(allow, -1, kDaemonUid, "POST", "/v1/reload", NoGroups),
            "an unidentified caller may not POST /v1/reload; mutations are limited to root, the daemon's uid 998 "
            "and uid 1000 (config api.mutation_uids, api.mutation_groups)");
}

TEST(GroupsOfUidTest, RootIsInGroupZeroAndAnUnknownUidInNone) {
  auto root = GroupsOfUid(0);
  EXPECT_NE(std::find(root.begin(), root.end(), 0u), root.end());
  EXPECT_TRUE(GroupsOfUid(4'000'000'000u).empty());
}

}  // namespace
}  // namespace batchd::api
