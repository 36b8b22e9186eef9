// TensorFlow resources around the native core: a table (hashlab::Table, the very class the
// native-cpu engine binds) and a hash filter, plus the C++-exception -> Status mapping every
// kernel uses.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "filters.h"
#include "table.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "thread_pool.h"

namespace hashlab_tf {

class FilterResource : public tensorflow::ResourceBase {
 public:
  FilterResource(std::shared_ptr<hashlab::HashFilter> f, std::string kind)
      : filter_(std::move(f)), kind_(std::move(kind)) {}
  std::string DebugString() const override { return "hashlab " + kind_ + " hash filter"; }
  const std::shared_ptr<hashlab::HashFilter>& filter() const { return filter_; }
  const std::string& kind() const { return kind_; }

 private:
  std::shared_ptr<hashlab::HashFilter> filter_;
  std::string kind_;
};

class TableResource : public tensorflow::ResourceBase {
 public:
  using Staged = std::unique_ptr<hashlab::Table::Restored>;

  explicit TableResource(std::unique_ptr<hashlab::Table> t) : table_(std::move(t)) {}
  std::string DebugString() const override {
    return "hashlab table (dim " + std::to_string(table_->dim()) + ")";
  }
  int64_t MemoryUsed() const override { return table_->memory_bytes(); }
  hashlab::Table& table() { return *table_; }

  // Restores staged (read and checked) but not committed yet, by token: a model restores
  // many tables all-or-nothing, committing only when every one of them staged.
  int64_t keep_staged(Staged s) {
    std::lock_guard<std::mutex> lk(staged_mu_);
    staged_.emplace(++last_token_, std::move(s));
    return last_token_;
  }
  Staged take_staged(int64_t token) {  // nullptr: unknown (or already taken) token
    std::lock_guard<std::mutex> lk(staged_mu_);
    auto it = staged_.find(token);
    if (it == staged_.end()) return nullptr;
    Staged s = std::move(it->second);
    staged_.erase(it);
    return s;
  }

 private:
  std::unique_ptr<hashlab::Table> table_;
  std::mutex staged_mu_;
  std::map<int64_t, Staged> staged_;
  int64_t last_token_ = 0;
};

// One pool per thread count, shared by every table of the process that asks for that many.
inline std::shared_ptr<hashlab::ThreadPool> shared_pool(int threads) {
  static std::mutex mu;
  static std::map<int, std::weak_ptr<hashlab::ThreadPool>> pools;
  std::lock_guard<std::mutex> lk(mu);
  auto& slot = pools[threads];
  std::shared_ptr<hashlab::ThreadPool> pool = slot.lock();
  if (!pool) {
    pool = std::make_shared<hashlab::ThreadPool>(threads);
    slot = pool;
  }
  return pool;
}

// Runs fn, turning the core's exceptions into the Status codes the Python side maps back:
// invalid_argument -> InvalidArgument (ValueError), CheckpointFailure -> DataLoss
// (CheckpointError), bad_alloc -> ResourceExhausted (MemoryError), system_error -> its errno's
// code (OSError).
template <typename Fn>
absl::Status guarded(Fn&& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const hashlab::CheckpointFailure& e) {
    return absl::DataLossError(e.what());
  } catch (const std::invalid_argument& e) {
    return absl::InvalidArgumentError(e.what());
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory");
  } catch (const std::system_error& e) {
    return absl::ErrnoToStatus(e.code().value(), e.what());
  } catch (const std::exception& e) {
    return absl::InternalError(e.what());
  }
}

template <typename T>
absl::Status lookup_resource(tensorflow::OpKernelContext* c, int input,
                             tensorflow::core::RefCountPtr<T>* out) {
  return tensorflow::LookupResource(c, tensorflow::HandleFromInput(c, input), out);
}

}  // namespace hashlab_tf
