#pragma once
// WalCheckpointer: copies the write-ahead log back into the database file on its own
// thread and connection, so that the writer never stalls on it.
//
// SQLite's default checkpoints run inside the COMMIT that pushes the WAL past 1,000
// pages, on the committing thread, and with synchronous=NORMAL or FULL a checkpoint
// fsyncs the WAL and the database file: two disk flushes, 10-30 ms on a virtio disk,
// every ~150 engine commits, during which no attempt is dispatched. Here the writer's
// wal_hook only signals this thread, which runs a PASSIVE checkpoint (it never blocks
// the writer and never waits for readers). Durability is unchanged: commits are made
// durable by the WAL alone; checkpoints only bound its size.
//
// Thread rules: the hook (Nudge) runs on the writer's thread; everything else on the
// checkpointer's own thread. Construct and destroy on the writer's thread.

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace batchd::store {

class WalCheckpointer {
 public:
  // Opens a second connection to `path` and registers the hook on `writer`. When the
  // connection cannot be opened, the writer keeps SQLite's own auto-checkpoints.
  WalCheckpointer(sqlite3* writer, const std::string& path, int threshold_pages = 1000);
  // Stops the thread and restores the writer's auto-checkpoint (closing the last
  // connection checkpoints everything anyway).
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  bool active() const { return conn_ != nullptr; }
  // Checkpoints run so far (for tests).
  int completed() const;

 private:
  static int Hook(void* self, sqlite3* db, const char* schema, int wal_pages);
  void Loop();

  sqlite3* writer_;
  sqlite3* conn_ = nullptr;
  const int threshold_pages_;
  // Writer thread only (the hook):
  int last_wal_pages_ = 0;
  int next_checkpoint_at_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false;   // GUARDED_BY(mu_)
  bool stopping_ = false; // GUARDED_BY(mu_)
  int completed_ = 0;     // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace batchd::store
