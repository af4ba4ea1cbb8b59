#include "store/checkpointer.h"

#include <sqlite3.h>
#include <spdlog/spdlog.h>

namespace batchd::store {

namespace {
// Past this many pages the writer stops waiting for the thread and checkpoints itself,
// so a stalled checkpointer cannot let the WAL grow without bound.
constexpr int kWriterCheckpointFactor = 20;
}  // namespace

WalCheckpointer::WalCheckpointer(sqlite3* writer, const std::string& path, int threshold_pages)
    : writer_(writer), threshold_pages_(threshold_pages), next_checkpoint_at_(threshold_pages) {
  if (sqlite3_open_v2(path.c_str(), &conn_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    spdlog::warn("cannot open a checkpoint connection to '{}' ({}); checkpoints run inline", path,
                 conn_ ? sqlite3_errmsg(conn_) : "out of memory");
    sqlite3_close(conn_);
    conn_ = nullptr;
    return;
  }
  sqlite3_busy_timeout(conn_, 1000);
  // The checkpoint's fsyncs (of the WAL, then of the database) are what keep copied
  // pages safe before the WAL is reused; NORMAL does both.
  sqlite3_exec(conn_, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
  thread_ = std::thread([this] { Loop(); });
  sqlite3_wal_hook(writer_, &WalCheckpointer::Hook, this);  // replaces wal_autocheckpoint
}

WalCheckpointer::~WalCheckpointer() {
  if (!conn_) return;
  sqlite3_wal_autocheckpoint(writer_, threshold_pages_);  // unhooks us
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
  sqlite3_close(conn_);
}

int WalCheckpointer::completed() const {
  std::lock_guard lock(mu_);
  return completed_;
}

int WalCheckpointer::Hook(void* self, sqlite3* db, const char* schema, int wal_pages) {
  auto* c = static_cast<WalCheckpointer*>(self);
  // A passive checkpoint does not shrink the WAL: the writer restarts it from the top at
  // its next transaction once everything was copied back. Until then `wal_pages` keeps
  // growing, so ask again only after another threshold's worth of pages.
  if (wal_pages < c->last_wal_pages_) c->next_checkpoint_at_ = c->threshold_pages_;  // restarted
  c->last_wal_pages_ = wal_pages;
  if (wal_pages < c->next_checkpoint_at_) return SQLITE_OK;
  c->next_checkpoint_at_ = wal_pages + c->threshold_pages_;
  if (wal_pages >= c->threshold_pages_ * kWriterCheckpointFactor) {
    sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    return SQLITE_OK;
  }
  {
    std::lock_guard lock(c->mu_);
    c->wanted_ = true;
  }
  c->cv_.notify_one();
  return SQLITE_OK;
}

void WalCheckpointer::Loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return wanted_ || stopping_; });
      if (stopping_) return;
    }
    int log_frames = 0, checkpointed = 0;
    int rc = sqlite3_wal_checkpoint_v2(conn_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &checkpointed);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
      spdlog::warn("WAL checkpoint failed: {}", sqlite3_errmsg(conn_));
    std::lock_guard lock(mu_);
    wanted_ = false;  // the next commit past the threshold asks again
    ++completed_;
  }
}

}  // namespace batchd::store
