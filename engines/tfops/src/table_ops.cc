// Monolith's single-table ops (monolith_hash_table_*) over hashlab::Table, plus the few
// hashlab ops the engine adapter and sharded tables need (max_update_ts, part save/restore,
// shard routing). Writes forward their table handle as output, as Monolith's do, so graphs
// can chain them with data dependencies.
#include <chrono>
#include <random>
#include <thread>

#include "checkpoint_files.h"
#include "common.h"
#include "kernel_util.h"
#include "resources.h"
#include "shard_files.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/logging.h"

namespace hashlab_tf {
namespace {

// ---- create ---------------------------------------------------------------------------------

REGISTER_OP("MonolithHashTable")
    .Input("filter_handle: resource")
    .Output("handle: resource")
    .Attr("config: string")
    .Attr("threads: int = 1")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(si::ScalarShape)
    .Doc("A table resource. `config`: the core's marshalled table config (table_config.h; "
         "engines.native.common.config_text writes it, seed, quirks and fid_version included). "
         "The filter is a MonolithHashFilter / ProbabilisticFilter / DummyHashFilter handle.");

class HashTableOp : public OpKernel {
 public:
  explicit HashTableOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("config", &config_));
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
    OP_REQUIRES(c, threads_ >= 1 && threads_ <= 1024,
                absl::InvalidArgumentError("threads must be in [1, 1024], got " +
                                           std::to_string(threads_)));
  }

  void Compute(OpKernelContext* c) override {
    RefCountPtr<FilterResource> filter;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &filter));
    tensorflow::ContainerInfo cinfo;
    OP_REQUIRES_OK(c, cinfo.Init(c->resource_manager(), def(), true));
    TableResource* res = nullptr;
    OP_REQUIRES_OK(c, c->resource_manager()->LookupOrCreate<TableResource>(
                          cinfo.container(), cinfo.name(), &res, [&](TableResource** out) {
                            std::unique_ptr<hashlab::Table> t;
                            absl::Status s = guarded([&] {
                              // A dummy filter admits everything: the table skips the pass.
                              auto f = filter->kind() == "dummy" ? nullptr : filter->filter();
                              t = std::make_unique<hashlab::Table>(
                                  hashlab::TableConfig::parse(config_), shared_pool(threads_),
                                  f);
                            });
                            if (s.ok()) *out = new TableResource(std::move(t));
                            return s;
                          }));
    tensorflow::core::ScopedUnref unref(res);
    OP_REQUIRES_OK(c, tensorflow::MakeResourceHandleToOutput(
                          c, 0, cinfo.container(), cinfo.name(),
                          tensorflow::TypeIndex::Make<TableResource>()));
  }

 private:
  std::string config_;
  int64_t threads_ = 1;
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTable").Device(DEVICE_CPU), HashTableOp);

// ---- writes ----------------------------------------------------------------------------------

absl::Status HandleOut(InferenceContext* c) {
  c->set_output(0, c->Scalar());
  return absl::OkStatus();
}

#define HASHLAB_ASSIGN_OP(NAME)                  \
  REGISTER_OP(NAME)                              \
      .Input("table_handle: resource")           \
      .Input("id_values: int64")                 \
      .Input("id_updates: float")                \
      .Input("req_time: int64")                  \
      .Output("table_handle_output: resource")   \
      .SetShapeFn(HandleOut)

HASHLAB_ASSIGN_OP("MonolithHashTableAssign");
HASHLAB_ASSIGN_OP("MonolithHashTableAssignAdd");

template <bool kAdd>
class AssignOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    const Tensor& ids = c->input(1);
    const Tensor& values = c->input(2);
    int64_t req_time;
    OP_REQUIRES_OK(c, check_ids(ids));
    OP_REQUIRES_OK(c, check_rows(values, ids.dim_size(0), t->table().dim(), "values"));
    OP_REQUIRES_OK(c, scalar_i64(c->input(3), "req_time", &req_time));
    OP_REQUIRES_OK(c, guarded([&] {
      t->table().write(ids.flat<int64_t>().data(), values.flat<float>().data(), ids.dim_size(0),
                       req_time, kAdd);
    }));
    c->set_output(0, c->input(0));
  }
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableAssign").Device(DEVICE_CPU), AssignOp<false>);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableAssignAdd").Device(DEVICE_CPU), AssignOp<true>);

REGISTER_OP("MonolithHashTableOptimize")
    .Input("table_handle: resource")
    .Input("id_values: int64")
    .Input("id_updates: float")
    .Input("learning_rate_tensor: float")
    .Input("req_time: int64")
    .Input("global_step: int64")
    .Output("table_handle_output: resource")
    .Attr("enable_dedup: bool = false")
    .SetShapeFn(HandleOut);

class OptimizeOp : public OpKernel {
 public:
  explicit OptimizeOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("enable_dedup", &dedup_));
  }
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    const Tensor& ids = c->input(1);
    const Tensor& grads = c->input(2);
    const Tensor& lrs = c->input(3);
    int64_t req_time, global_step;
    OP_REQUIRES_OK(c, check_ids(ids));
    OP_REQUIRES_OK(c, check_rows(grads, ids.dim_size(0), t->table().dim(), "grads"));
    OP_REQUIRES_OK(c, check_learning_rates(
                          lrs, static_cast<int64_t>(t->table().config().segments.size()),
                          "learning_rates"));
    OP_REQUIRES_OK(c, scalar_i64(c->input(4), "req_time", &req_time));
    OP_REQUIRES_OK(c, scalar_i64(c->input(5), "global_step", &global_step));
    OP_REQUIRES_OK(c, guarded([&] {
      t->table().apply_gradients(ids.flat<int64_t>().data(), grads.flat<float>().data(),
                                 ids.dim_size(0), global_step, dedup_, req_time,
                                 lrs.flat<float>().data(), lrs.NumElements());
    }));
    c->set_output(0, c->input(0));
  }

 private:
  bool dedup_ = false;
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableOptimize").Device(DEVICE_CPU), OptimizeOp);

// ---- reads -----------------------------------------------------------------------------------

REGISTER_OP("MonolithHashTableLookup")
    .Input("table_handle: resource")
    .Input("ids: int64")
    .Output("embeddings: float32")
    .Attr("dim_size: int")
    .SetShapeFn([](InferenceContext* c) {
      int64_t dim;
      TF_RETURN_IF_ERROR(c->GetAttr("dim_size", &dim));
      c->set_output(0, c->Matrix(c->Dim(c->input(1), 0), dim));
      return absl::OkStatus();
    });

class LookupOp : public OpKernel {
 public:
  explicit LookupOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("dim_size", &dim_));
  }
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    const Tensor& ids = c->input(1);
    OP_REQUIRES_OK(c, check_ids(ids));
    OP_REQUIRES(c, dim_ == t->table().dim(),
                absl::InvalidArgumentError("dim_size " + std::to_string(dim_) +
                                           " does not match the table dim " +
                                           std::to_string(t->table().dim())));
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({ids.dim_size(0), dim_}), &out));
    OP_REQUIRES_OK(c, guarded([&] {
      t->table().lookup(ids.flat<int64_t>().data(), ids.dim_size(0), out->flat<float>().data());
    }));
  }

 private:
  int64_t dim_ = 0;
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableLookup").Device(DEVICE_CPU), LookupOp);

REGISTER_OP("MonolithHashTableLookupEntry")
    .Input("table_handle: resource")
    .Input("ids: int64")
    .Output("entry_str: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->Dim(c->input(1), 0)));
      return absl::OkStatus();
    });

void blobs_to_strings(const std::vector<hashlab::Blobs>& parts, Tensor* out) {
  auto flat = out->flat<tensorflow::tstring>();
  int64_t k = 0;
  for (const auto& b : parts)
    for (int64_t i = 0; i < b.count(); ++i, ++k)
      flat(k).assign(reinterpret_cast<const char*>(b.data.data()) + b.offsets[i],
                     static_cast<size_t>(b.offsets[i + 1] - b.offsets[i]));
}

int64_t blob_count(const std::vector<hashlab::Blobs>& parts) {
  int64_t n = 0;
  for (const auto& b : parts) n += b.count();
  return n;
}

class LookupEntryOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    const Tensor& ids = c->input(1);
    OP_REQUIRES_OK(c, check_ids(ids));
    std::vector<hashlab::Blobs> parts;
    OP_REQUIRES_OK(c, guarded([&] {
      parts = t->table().lookup_entry(ids.flat<int64_t>().data(), ids.dim_size(0));
    }));
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({blob_count(parts)}), &out));
    blobs_to_strings(parts, out);
  }
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableLookupEntry").Device(DEVICE_CPU), LookupEntryOp);

REGISTER_OP("MonolithHashTableSize")
    .Input("table_handle: resource")
    .Output("size: int64")
    .SetShapeFn(si::ScalarShape);

REGISTER_OP("HashlabHashTableMaxUpdateTs")
    .Input("table_handle: resource")
    .Output("max_update_ts: int64")
    .SetShapeFn(si::ScalarShape)
    .Doc("The largest req_time the table has seen (its TTL reference time).");

REGISTER_OP("HashlabHashTableMemoryBytes")
    .Input("table_handle: resource")
    .Output("memory_bytes: int64")
    .SetShapeFn(si::ScalarShape)
    .Doc("Bytes held by the table's slot arrays and rows.");

enum class Scalar { kSize, kMaxUpdateTs, kMemoryBytes };

template <Scalar kWhat>
class ScalarReadOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({}), &out));
    const hashlab::Table& table = t->table();
    out->scalar<int64_t>()() = kWhat == Scalar::kSize          ? table.size()
                               : kWhat == Scalar::kMaxUpdateTs ? table.max_update_ts()
                                                               : table.memory_bytes();
  }
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableSize").Device(DEVICE_CPU),
                        ScalarReadOp<Scalar::kSize>);
REGISTER_KERNEL_BUILDER(Name("HashlabHashTableMaxUpdateTs").Device(DEVICE_CPU),
                        ScalarReadOp<Scalar::kMaxUpdateTs>);
REGISTER_KERNEL_BUILDER(Name("HashlabHashTableMemoryBytes").Device(DEVICE_CPU),
                        ScalarReadOp<Scalar::kMemoryBytes>);

// ---- checkpoints -----------------------------------------------------------------------------

std::string scalar_string(const Tensor& t) { return std::string(t.scalar<tensorflow::tstring>()()); }

absl::Status check_basename(const Tensor& t, std::string* out) {
  if (t.dims() != 0)
    return absl::InvalidArgumentError("basename must be a scalar string, got shape " +
                                      t.shape().DebugString());
  *out = scalar_string(t);
  if (out->empty() || out->back() == '/')
    return absl::InvalidArgumentError("basename must name a file prefix, got '" + *out + "'");
  return absl::OkStatus();
}

REGISTER_OP("MonolithHashTableSave")
    .Input("handle: resource")
    .Input("basename: string")
    .Output("output_handle: resource")
    .Attr("nshards: int = -1")
    .Attr("random_sleep_ms: int = 0")
    .SetShapeFn(HandleOut);

class SaveOp : public OpKernel {
 public:
  explicit SaveOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("nshards", &nshards_));
    OP_REQUIRES_OK(c, c->GetAttr("random_sleep_ms", &sleep_ms_));
  }
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    std::string basename;
    OP_REQUIRES_OK(c, check_basename(c->input(1), &basename));
    if (sleep_ms_ > 0) {  // Monolith: spread many tables' file-system metadata load
      std::mt19937_64 gen{std::random_device{}()};
      std::this_thread::sleep_for(std::chrono::milliseconds(gen() % sleep_ms_));
    }
    hashlab::SaveResult saved;
    OP_REQUIRES_OK(c, guarded([&] { saved = t->table().save(basename, nshards_); }));
    // A failure after the commit point: the save succeeded (docs/checkpoints.md, "Save").
    if (!saved.warning.empty()) LOG(WARNING) << saved.warning;
    c->set_output(0, c->input(0));
  }

 private:
  int64_t nshards_ = -1, sleep_ms_ = 0;
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableSave").Device(DEVICE_CPU), SaveOp);

REGISTER_OP("MonolithHashTableRestore")
    .Input("handle: resource")
    .Input("basename: string")
    .Output("output_handle: resource")
    .SetShapeFn(HandleOut);

absl::Status string_vector_out(OpKernelContext* c, int index,
                               const std::vector<std::string>& v) {
  Tensor* out;
  TF_RETURN_IF_ERROR(c->allocate_output(index, TensorShape({static_cast<int64_t>(v.size())}),
                                        &out));
  for (size_t i = 0; i < v.size(); ++i) out->flat<tensorflow::tstring>()(i) = v[i];
  return absl::OkStatus();
}

absl::Status PathsOut(InferenceContext* c) {
  c->set_output(0, c->Vector(c->UnknownDim()));
  return absl::OkStatus();
}

REGISTER_OP("HashlabHashTableSave")
    .Input("handle: resource")
    .Input("basename: string")
    .Input("nshards: int64")
    .Output("paths: string")
    .Output("warning: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->UnknownDim()));
      c->set_output(1, c->Scalar());
      return absl::OkStatus();
    })
    .Doc("Monolith's save with the shard count as an input (-1: automatic); returns the paths "
         "and what failed after the commit point (the save succeeded; empty: nothing).");

class SavePathsOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    std::string basename;
    int64_t nshards;
    OP_REQUIRES_OK(c, check_basename(c->input(1), &basename));
    OP_REQUIRES_OK(c, scalar_i64(c->input(2), "nshards", &nshards));
    hashlab::SaveResult saved;
    OP_REQUIRES_OK(c, guarded([&] { saved = t->table().save(basename, nshards); }));
    OP_REQUIRES_OK(c, string_vector_out(c, 0, saved.paths));
    Tensor* warning;
    OP_REQUIRES_OK(c, c->allocate_output(1, TensorShape({}), &warning));
    warning->scalar<tensorflow::tstring>()() = saved.warning;
  }
};
REGISTER_KERNEL_BUILDER(Name("HashlabHashTableSave").Device(DEVICE_CPU), SavePathsOp);

REGISTER_OP("HashlabHashTableWritePartShards")
    .Input("handle: resource")
    .Input("basename: string")
    .Input("nshards: int64")
    .Input("first_shard: int64")
    .Input("shard_stride: int64")
    .Output("lines: string")
    .SetShapeFn(PathsOut)
    .Doc("Step 1 of a sharded table's save, on each task: writes shards {s : s % shard_stride "
         "== first_shard} of an nshards-shard checkpoint under temporary names and returns "
         "their manifest lines for HashlabCommitShardSet.");

class WritePartShardsOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    std::string basename;
    int64_t nshards, first, stride;
    OP_REQUIRES_OK(c, check_basename(c->input(1), &basename));
    OP_REQUIRES_OK(c, scalar_i64(c->input(2), "nshards", &nshards));
    OP_REQUIRES_OK(c, scalar_i64(c->input(3), "first_shard", &first));
    OP_REQUIRES_OK(c, scalar_i64(c->input(4), "shard_stride", &stride));
    std::vector<std::string> lines;
    OP_REQUIRES_OK(c, guarded([&] {
      lines = write_part_shards(t->table(), basename, nshards, first, stride);
    }));
    OP_REQUIRES_OK(c, string_vector_out(c, 0, lines));
  }
};
REGISTER_KERNEL_BUILDER(Name("HashlabHashTableWritePartShards").Device(DEVICE_CPU),
                        WritePartShardsOp);

REGISTER_OP("HashlabCommitShardSet")
    .Input("basename: string")
    .Input("nshards: int64")
    .Input("lines: string")
    .Output("paths: string")
    .SetIsStateful()
    .SetShapeFn(PathsOut)
    .Doc("Step 2 of a sharded table's save, once: commits the shards every task wrote (the "
         "manifest protocol of docs/checkpoints.md) and returns their paths in order.");

class CommitShardSetOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    std::string basename;
    int64_t nshards;
    OP_REQUIRES_OK(c, check_basename(c->input(0), &basename));
    OP_REQUIRES_OK(c, scalar_i64(c->input(1), "nshards", &nshards));
    const Tensor& lines_t = c->input(2);
    std::vector<std::string> lines;
    for (int64_t i = 0; i < lines_t.NumElements(); ++i)
      lines.emplace_back(lines_t.flat<tensorflow::tstring>()(i));
    hashlab::SaveResult saved;
    OP_REQUIRES_OK(c, guarded([&] { saved = commit_part_shards(basename, nshards, lines); }));
    // A failure after the commit point: the save succeeded (docs/checkpoints.md, "Save").
    if (!saved.warning.empty()) LOG(WARNING) << saved.warning;
    OP_REQUIRES_OK(c, string_vector_out(c, 0, saved.paths));
  }
};
REGISTER_KERNEL_BUILDER(Name("HashlabCommitShardSet").Device(DEVICE_CPU), CommitShardSetOp);

REGISTER_OP("HashlabHashTableRestorePart")
    .Input("handle: resource")
    .Input("basename: string")
    .Input("part: int64")
    .Input("num_parts: int64")
    .Output("output_handle: resource")
    .SetShapeFn(HandleOut)
    .Doc("Restores the entries with shard_of(id, num_parts) == part from a checkpoint of any "
         "shard count (a parameter-server task's share of it).");

REGISTER_OP("HashlabHashTableStageRestore")
    .Input("handle: resource")
    .Input("basename: string")
    .Input("part: int64")
    .Input("num_parts: int64")
    .Output("token: int64")
    .SetIsStateful()
    .SetShapeFn(si::ScalarShape)
    .Doc("Step 1 of a two-step restore: read, check and parse (the part of) the checkpoint; "
         "the table does not change. Returns a token for CommitRestore / DiscardRestore.");

absl::Status read_part_args(OpKernelContext* c, std::string* basename, int64_t* part,
                            int64_t* num_parts) {
  TF_RETURN_IF_ERROR(check_basename(c->input(1), basename));
  TF_RETURN_IF_ERROR(scalar_i64(c->input(2), "part", part));
  return scalar_i64(c->input(3), "num_parts", num_parts);
}

template <bool kPart>
class RestoreOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    std::string basename;
    int64_t part = 0, num_parts = 1;
    if (kPart) {
      OP_REQUIRES_OK(c, read_part_args(c, &basename, &part, &num_parts));
    } else {
      OP_REQUIRES_OK(c, check_basename(c->input(1), &basename));
    }
    OP_REQUIRES_OK(c, guarded([&] {
      t->table().commit_restore(stage_part(t->table(), basename, part, num_parts));
    }));
    c->set_output(0, c->input(0));
  }
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableRestore").Device(DEVICE_CPU), RestoreOp<false>);
REGISTER_KERNEL_BUILDER(Name("HashlabHashTableRestorePart").Device(DEVICE_CPU), RestoreOp<true>);

class StageRestoreOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    std::string basename;
    int64_t part, num_parts;
    OP_REQUIRES_OK(c, read_part_args(c, &basename, &part, &num_parts));
    TableResource::Staged staged;
    OP_REQUIRES_OK(c, guarded([&] { staged = stage_part(t->table(), basename, part, num_parts); }));
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = t->keep_staged(std::move(staged));
  }
};
REGISTER_KERNEL_BUILDER(Name("HashlabHashTableStageRestore").Device(DEVICE_CPU), StageRestoreOp);

REGISTER_OP("HashlabHashTableCommitRestore")
    .Input("handle: resource")
    .Input("token: int64")
    .Output("output_handle: resource")
    .SetShapeFn(HandleOut)
    .Doc("Step 2: replace the table's content with a staged restore.");

REGISTER_OP("HashlabHashTableDiscardRestore")
    .Input("handle: resource")
    .Input("token: int64")
    .Output("output_handle: resource")
    .SetShapeFn(HandleOut)
    .Doc("Drop a staged restore that will not be committed (another table failed to stage).");

template <bool kCommit>
class FinishRestoreOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    int64_t token;
    OP_REQUIRES_OK(c, scalar_i64(c->input(1), "token", &token));
    TableResource::Staged staged = t->take_staged(token);
    OP_REQUIRES(c, staged != nullptr || !kCommit,
                absl::InvalidArgumentError("token " + std::to_string(token) +
                                           " names no staged restore of this table"));
    if (kCommit) OP_REQUIRES_OK(c, guarded([&] { t->table().commit_restore(std::move(staged)); }));
    c->set_output(0, c->input(0));
  }
};
REGISTER_KERNEL_BUILDER(Name("HashlabHashTableCommitRestore").Device(DEVICE_CPU),
                        FinishRestoreOp<true>);
REGISTER_KERNEL_BUILDER(Name("HashlabHashTableDiscardRestore").Device(DEVICE_CPU),
                        FinishRestoreOp<false>);

REGISTER_OP("MonolithHashTableSaveAsTensor")
    .Input("table_handle: resource")
    .Input("shard_idx: int32")
    .Input("num_shards: int32")
    .Input("limit: int64")
    .Input("offset: int64")
    .Output("new_offset: int64")
    .Output("entry: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Scalar());
      c->set_output(1, c->Vector(c->UnknownDim()));
      return absl::OkStatus();
    });

class SaveAsTensorOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<TableResource> t;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &t));
    for (int i = 1; i <= 4; ++i)
      OP_REQUIRES(c, c->input(i).dims() == 0,
                  absl::InvalidArgumentError("shard_idx, num_shards, limit and offset must be "
                                             "scalars"));
    const int64_t shard_idx = c->input(1).scalar<int32_t>()();
    const int64_t num_shards = c->input(2).scalar<int32_t>()();
    const int64_t limit = c->input(3).scalar<int64_t>()();
    const int64_t offset = c->input(4).scalar<int64_t>()();
    int64_t new_offset = 0;
    std::vector<hashlab::Blobs> parts(1);
    OP_REQUIRES_OK(c, guarded([&] {
      parts[0] = t->table().save_as_tensor(shard_idx, num_shards, limit, offset, &new_offset);
    }));
    Tensor *off, *out;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({}), &off));
    off->scalar<int64_t>()() = new_offset;
    OP_REQUIRES_OK(c, c->allocate_output(1, TensorShape({blob_count(parts)}), &out));
    blobs_to_strings(parts, out);
  }
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableSaveAsTensor").Device(DEVICE_CPU), SaveAsTensorOp);

// ---- routing ---------------------------------------------------------------------------------

REGISTER_OP("HashlabShardOf")
    .Input("ids: int64")
    .Output("shards: int32")
    .Attr("num_shards: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("shard_of(id, num_shards) = mix64(id) % num_shards: the fixed id hash that routes ids "
         "to parameter-server tasks and to checkpoint shards alike (docs/semantics.md §1).");

class ShardOfOp : public OpKernel {
 public:
  explicit ShardOfOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("num_shards", &n_));
    OP_REQUIRES(c, n_ <= hashlab::kMaxShards,
                absl::InvalidArgumentError("num_shards must be <= 99999, got " +
                                           std::to_string(n_)));
  }
  void Compute(OpKernelContext* c) override {
    const Tensor& ids = c->input(0);
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, ids.shape(), &out));
    const int64_t* in = ids.flat<int64_t>().data();
    int32_t* o = out->flat<int32_t>().data();
    for (int64_t i = 0; i < ids.NumElements(); ++i)
      o[i] = static_cast<int32_t>(hashlab::shard_of(in[i], static_cast<uint32_t>(n_)));
  }

 private:
  int64_t n_ = 1;
};
REGISTER_KERNEL_BUILDER(Name("HashlabShardOf").Device(DEVICE_CPU), ShardOfOp);

}  // namespace
}  // namespace hashlab_tf
