#include "parallel.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "../common/params.h"

namespace chatanyone {
namespace {

int default_threads() {
  if (const char* env = std::getenv("CHATANYONE_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? int(hw) : 1;
}

class Pool {
 public:
  explicit Pool(int n) { start(n); }
  ~Pool() { stop(); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int n) {
    std::lock_guard<std::mutex> call(call_mutex_);
    stop();
    start(n);
  }

  void run(int64_t n_chunks, const std::function<void(int64_t)>& chunk_fn) {
    std::lock_guard<std::mutex> call(call_mutex_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &chunk_fn;
      n_chunks_ = n_chunks;
      next_.store(0);
      busy_ = int(workers_.size());
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [&] { return busy_ == 0; });
    fn_ = nullptr;
  }

 private:
  void start(int n) {
    quit_ = false;
    for (int i = 1; i < std::max(1, n); ++i) workers_.emplace_back([this] { loop(); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }
  void work() {
    for (int64_t i; (i = next_.fetch_add(1)) < n_chunks_;) (*fn_)(i);
  }
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
      }
      work();
      std::lock_guard<std::mutex> lk(m_);
      if (--busy_ == 0) done_cv_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex call_mutex_, m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_chunks_ = 0;
  std::atomic<int64_t> next_{0};
  int busy_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
};

std::mutex g_mutex;
Pool* g_pool = nullptr;
pid_t g_pid = 0;
int g_threads = 0;

// The pool's threads do not survive fork(); a child process builds its own pool (the parent's
// object is leaked on purpose: its mutexes may be held by threads that no longer exist).
Pool& pool() {
  std::lock_guard<std::mutex> lk(g_mutex);
  if (g_pool == nullptr || g_pid != getpid()) {
    if (g_threads <= 0) g_threads = default_threads();
    g_pool = new Pool(g_threads);
    g_pid = getpid();
  }
  return *g_pool;
}

}  // namespace

int cpu_num_threads() {
  std::lock_guard<std::mutex> lk(g_mutex);
  if (g_threads <= 0) g_threads = default_threads();
  return g_threads;
}

void cpu_set_num_threads(int n) {
  n = std::max(1, n);
  Pool* p;
  {
    std::lock_guard<std::mutex> lk(g_mutex);
    g_threads = n;
    if (g_pool == nullptr || g_pid != getpid()) return;  // built lazily with the new size
    p = g_pool;
  }
  p->resize(n);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int threads = cpu_num_threads();
  if (threads <= 1 || n <= grain) {
    fn(0, n);
    return;
  }
  // A few chunks per thread balance uneven work without much scheduling overhead.
  int64_t n_chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t(threads) * 4);
  const int64_t chunk = (n + n_chunks - 1) / n_chunks;
  n_chunks = (n + chunk - 1) / chunk;
  const std::function<void(int64_t)> chunk_fn = [&](int64_t i) {
    const int64_t b = i * chunk, e = std::min(n, b + chunk);
    fn(b, e);
  };
  pool().run(n_chunks, chunk_fn);
}

}  // namespace chatanyone
