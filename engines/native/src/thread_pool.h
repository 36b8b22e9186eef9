// A fixed pool of std::threads owned by one engine, running work as dynamically claimed chunks.
//
// for_chunks(n, grain, fn) splits [0, n) into chunks of `grain` units; the calling thread and
// the pool's threads claim chunks from a shared counter until none is left. Why dynamic: on a
// shared machine a pool thread may be descheduled (another process keeps a core busy), and a
// static split would make the whole call wait for it; here the caller simply takes the
// remaining chunks, and a thread that wakes after the work is gone never delays the caller
// (it only waits for chunks a thread has already claimed). Work of at most one chunk runs on
// the caller alone, without waking anyone.
//
// Results never depend on which thread ran a chunk: callers give every chunk its own output
// (partition-owned writes, per-range reads). `worker` (0 = the caller) indexes per-thread
// scratch space.
//
// The pool's threads start with its first job that has more than one chunk, not with the
// pool: an engine that never runs parallel work (a probe for its capabilities, a one-thread
// table) has no thread that the OS, or valgrind in the simulated cost mode, could schedule in
// the middle of another call (there a thread's first run landed inside whichever call was
// being counted when it got the CPU, issue 20 row 11). A thread that cannot be started
// leaves its chunks to the others.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace hashlab {

class ThreadPool {
 public:
  using ChunkFn = std::function<void(int64_t begin, int64_t end, int worker)>;

  explicit ThreadPool(int threads) : size_(threads < 1 ? 1 : threads) {}
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  void for_chunks(int64_t n, int64_t grain, const ChunkFn& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    // One chunk, one thread, or the pool busy with another caller's job: run inline (the
    // results are the same whoever runs a chunk).
    std::unique_lock<std::mutex> busy(run_mu_, std::defer_lock);
    if (n <= grain || size_ == 1 || !busy.try_lock()) {
      for (int64_t b = 0; b < n; b += grain) fn(b, b + grain < n ? b + grain : n, 0);
      return;
    }
    start_workers();
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    next_.store(0, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    state_.store(0, std::memory_order_release);  // open, nobody in
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      work(0);
    } catch (...) {
      mine = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
    // Close the job: threads that have not joined yet never will. Wait only for those that
    // are inside a chunk.
    uint32_t s = state_.fetch_or(kClosed, std::memory_order_acq_rel);
    if ((s & ~kClosed) != 0) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [this] {
        return (state_.load(std::memory_order_acquire) & ~kClosed) == 0;
      });
    }
    fn_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

  // Calls fn(t) once for every t in [0, size()) and waits for all of them (static parts; for
  // work whose split must not depend on scheduling, e.g. per-thread buffers merged in order).
  void run(const std::function<void(int)>& fn) {
    for_chunks(size_, 1, [&](int64_t b, int64_t, int) { fn(static_cast<int>(b)); });
  }

  // Split [0, n) into `parts` contiguous ranges; part t gets [begin, end).
  static void range(int64_t n, int parts, int t, int64_t* begin, int64_t* end) {
    const int64_t chunk = n / parts, extra = n % parts;
    *begin = t * chunk + (t < extra ? t : extra);
    *end = *begin + chunk + (t < extra ? 1 : 0);
  }

 private:
  static constexpr uint32_t kClosed = 1u << 31;

  // Under run_mu_: the threads not started yet (once; a failure leaves their chunks to the
  // caller and the threads that did start).
  void start_workers() {
    if (started_) return;
    started_ = true;
    try {
      for (int t = 1; t < size_; ++t) workers_.emplace_back([this, t] { loop(t); });
    } catch (const std::system_error&) {
    }
  }

  void work(int worker) {
    for (;;) {
      if (failed_.load(std::memory_order_relaxed)) return;
      const int64_t b = next_.fetch_add(grain_, std::memory_order_relaxed);
      if (b >= n_) return;
      (*fn_)(b, b + grain_ < n_ ? b + grain_ : n_, worker);
    }
  }

  void loop(int t) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      // Join the job unless the caller has closed it already.
      uint32_t s = state_.load(std::memory_order_acquire);
      bool joined = false;
      while (!(s & kClosed)) {
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
          joined = true;
          break;
        }
      }
      if (!joined) continue;
      try {
        work(t);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
        failed_.store(true, std::memory_order_relaxed);
      }
      if ((state_.fetch_sub(1, std::memory_order_acq_rel) & ~kClosed) == 1) {
        std::lock_guard<std::mutex> lk(mu_);  // pairs with the caller's wait
        done_cv_.notify_all();
      }
    }
  }

  const int size_;
  std::vector<std::thread> workers_;
  bool started_ = false;  // workers_ started (under run_mu_)
  std::mutex run_mu_;     // one job at a time
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  // The current job (valid while the caller is inside for_chunks).
  const ChunkFn* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<uint32_t> state_{kClosed};  // kClosed bit | number of pool threads inside
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

}  // namespace hashlab
