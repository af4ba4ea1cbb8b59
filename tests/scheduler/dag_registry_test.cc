// DagRegistry inside a caller's transaction: what a rolled-back transaction changed in
// memory is read back from the store.

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "common/time.h"
#include "dag/loader.h"
#include "engine/dag_versions.h"
#include "scheduler/dag_registry.h"
#include "store/store.h"

namespace batchd::scheduler {
namespace {

namespace fs = std::filesystem;

class DagRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/batchd-registry-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = store::Store::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    versions_ = std::make_unique<engine::DagVersionCache>(*store_);
    registry_ = std::make_unique<DagRegistry>(*store_, *versions_, SystemClock::Instance());
  }
  void TearDown() override {
    registry_.reset();
    versions_.reset();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  dag::DagPtr Load(const std::string& yaml) {
    dag::LoadResult r = dag::LoadDagString(yaml, "test.yaml");
    for (const auto& d : r.errors) ADD_FAILURE() << d.ToString();
    return r.dag;
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<engine::DagVersionCache> versions_;
  std::unique_ptr<DagRegistry> registry_;
};

constexpr char kV1[] = "dag: d\ntasks:\n  - id: t\n    command: echo one\n";
constexpr char kV2[] = "dag: d\ntasks:\n  - id: t\n    command: echo two\n";

TEST_F(DagRegistryTest, ASubmitRolledBackWithItsCallersTransactionLeavesTheCurrentVersion) {
  auto v1 = Load(kV1);
  ASSERT_TRUE(registry_->Register(v1, "submit").ok());
  ASSERT_TRUE(store_->Begin().ok());
  auto r = registry_->Register(Load(kV2), "submit");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  store_->Rollback();  // e.g. its audit row could not be written
  ASSERT_NE(registry_->Find("d"), nullptr);
  EXPECT_EQ(registry_->Find("d")->dag->content_hash, v1->content_hash);
}

TEST_F(DagRegistryTest, PauseAndDeleteRolledBackLeaveTheDagAsItWas) {
  ASSERT_TRUE(registry_->Register(Load(kV1), "submit").ok());
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(registry_->SetPaused("d", true).ok());
  store_->Rollback();
  ASSERT_NE(registry_->Find("d"), nullptr);
  EXPECT_FALSE(registry_->Find("d")->entry.paused);

  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(registry_->Delete("d", /*purge=*/false).ok());
  EXPECT_EQ(registry_->Find("d"), nullptr);
  store_->Rollback();
  EXPECT_NE(registry_->Find("d"), nullptr) << "a delete that rolled back unscheduled the DAG";
}

}  // namespace
}  // namespace batchd::scheduler
