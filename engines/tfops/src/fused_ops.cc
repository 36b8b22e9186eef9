// Monolith's fused multi-table lookup and optimize (fsf Part C): K tables, N shards, blocks in
// shard-major order (block s*K + t). Blocks run in order on the calling thread (each table
// still uses its own pool), so results do not depend on scheduling, as in engines/fused.py.
#include <limits>

#include "kernel_util.h"
#include "resources.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace hashlab_tf {
namespace {

struct Layout {
  std::vector<int32_t> id_offsets, emb_offsets, emb_splits;  // K*N+1, K*N+1, N
};

// The offsets of ComputeFusedOffsets, with the checks of engines/fused.py plan().
absl::Status plan(const Tensor& sizes, const std::vector<int64_t>& dims, int64_t num_shards,
                  int64_t num_ids, Layout* out) {
  const int64_t k = static_cast<int64_t>(dims.size());
  if (sizes.dims() != 1 || sizes.NumElements() != k * num_shards)
    return absl::InvalidArgumentError(
        "fused_slot_size must have K*N = " + std::to_string(k) + "*" +
        std::to_string(num_shards) + " = " + std::to_string(k * num_shards) +
        " elements, got shape " + sizes.shape().DebugString());
  const int32_t* s = sizes.flat<int32_t>().data();
  int64_t ids = 0, embs = 0;
  out->id_offsets.assign(1, 0);
  out->emb_offsets.assign(1, 0);
  out->emb_splits.assign(static_cast<size_t>(num_shards), 0);
  for (int64_t shard = 0; shard < num_shards; ++shard) {
    int64_t split = 0;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t n = s[shard * k + t];
      if (n < 0) return absl::InvalidArgumentError("fused_slot_size must be >= 0");
      ids += n;
      embs += n * dims[t];
      split += n * dims[t];
      if (embs >= (int64_t{1} << 31))
        return absl::InvalidArgumentError(
            "fused ops: total embedding size does not fit int32 offsets");
      out->id_offsets.push_back(static_cast<int32_t>(ids));
      out->emb_offsets.push_back(static_cast<int32_t>(embs));
    }
    out->emb_splits[shard] = static_cast<int32_t>(split);
  }
  if (ids != num_ids)
    return absl::InvalidArgumentError("fused_slot_size sums to " + std::to_string(ids) +
                                      " but ids has " + std::to_string(num_ids));
  return absl::OkStatus();
}

absl::Status tables_of(OpKernelContext* c, int64_t k, std::vector<RefCountPtr<TableResource>>* out,
                       std::vector<int64_t>* dims) {
  out->resize(static_cast<size_t>(k));
  dims->resize(static_cast<size_t>(k));
  for (int64_t t = 0; t < k; ++t) {
    TF_RETURN_IF_ERROR(lookup_resource(c, static_cast<int>(t), &(*out)[t]));
    (*dims)[t] = (*out)[t]->table().dim();
  }
  return absl::OkStatus();
}

void to_tensor(const std::vector<int32_t>& v, Tensor* t) {
  std::copy(v.begin(), v.end(), t->flat<int32_t>().data());
}

REGISTER_OP("MonolithHashTableFusedLookup")
    .Input("table_handles: N * resource")
    .Input("ids: int64")
    .Input("fused_slot_size: int32")
    .Input("req_time: int64")
    .Output("embeddings: float32")
    .Output("embedding_splits: int32")
    .Output("id_offsets: int32")
    .Output("embedding_offsets: int32")
    .Output("indices: int64")
    .Attr("N: int >= 1")
    .Attr("num_of_shards: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      int64_t k, n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &k));
      TF_RETURN_IF_ERROR(c->GetAttr("num_of_shards", &n));
      c->set_output(0, c->Vector(c->UnknownDim()));
      c->set_output(1, c->Vector(n));
      c->set_output(2, c->Vector(k * n + 1));
      c->set_output(3, c->Vector(k * n + 1));
      c->set_output(4, c->input(k));
      return absl::OkStatus();
    })
    .Doc("req_time is accepted and unused, as in Monolith's CPU kernel.");

class FusedLookupOp : public OpKernel {
 public:
  explicit FusedLookupOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("N", &k_));
    OP_REQUIRES_OK(c, c->GetAttr("num_of_shards", &shards_));
  }
  void Compute(OpKernelContext* c) override {
    std::vector<RefCountPtr<TableResource>> tables;
    std::vector<int64_t> dims;
    OP_REQUIRES_OK(c, tables_of(c, k_, &tables, &dims));
    const Tensor& ids = c->input(k_);
    OP_REQUIRES_OK(c, check_ids(ids));
    Layout lay;
    OP_REQUIRES_OK(c, plan(c->input(k_ + 1), dims, shards_, ids.dim_size(0), &lay));
    Tensor *emb, *splits, *id_off, *emb_off;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({lay.emb_offsets.back()}), &emb));
    OP_REQUIRES_OK(c, c->allocate_output(1, TensorShape({shards_}), &splits));
    OP_REQUIRES_OK(c, c->allocate_output(2, TensorShape({k_ * shards_ + 1}), &id_off));
    OP_REQUIRES_OK(c, c->allocate_output(3, TensorShape({k_ * shards_ + 1}), &emb_off));
    c->set_output(4, ids);
    to_tensor(lay.emb_splits, splits);
    to_tensor(lay.id_offsets, id_off);
    to_tensor(lay.emb_offsets, emb_off);
    const int64_t* id = ids.flat<int64_t>().data();
    float* out = emb->flat<float>().data();
    OP_REQUIRES_OK(c, guarded([&] {
      for (int64_t b = 0; b < k_ * shards_; ++b) {
        const int64_t n = lay.id_offsets[b + 1] - lay.id_offsets[b];
        if (n > 0) tables[b % k_]->table().lookup(id + lay.id_offsets[b], n, out + lay.emb_offsets[b]);
      }
    }));
  }

 private:
  int64_t k_ = 1, shards_ = 1;
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableFusedLookup").Device(DEVICE_CPU), FusedLookupOp);

REGISTER_OP("MonolithHashTableFusedOptimize")
    .Input("table_handles: N * resource")
    .Input("ids: int64")
    .Input("indices: int64")
    .Input("fused_slot_size: int32")
    .Input("id_grads: float")
    .Input("id_offsets: int32")
    .Input("grad_offsets: int32")
    .Input("learning_rate_tensors: float")
    .Input("req_time: int64")
    .Input("global_step: int64")
    .Output("table_handles_output: N * resource")
    .Attr("N: int >= 1")
    .Attr("num_of_shards: int >= 1")
    .Attr("enable_grad_accumulation: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      int64_t k;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &k));
      for (int64_t i = 0; i < k; ++i) c->set_output(static_cast<int>(i), c->Scalar());
      return absl::OkStatus();
    })
    .Doc("indices is accepted and unused, as in Monolith's CPU kernel; "
         "enable_grad_accumulation is dedup within each (shard, table) block.");

class FusedOptimizeOp : public OpKernel {
 public:
  explicit FusedOptimizeOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("N", &k_));
    OP_REQUIRES_OK(c, c->GetAttr("num_of_shards", &shards_));
    OP_REQUIRES_OK(c, c->GetAttr("enable_grad_accumulation", &dedup_));
  }
  void Compute(OpKernelContext* c) override {
    std::vector<RefCountPtr<TableResource>> tables;
    std::vector<int64_t> dims;
    OP_REQUIRES_OK(c, tables_of(c, k_, &tables, &dims));
    const Tensor& ids = c->input(k_);
    const Tensor& grads = c->input(k_ + 3);
    const Tensor& lrs = c->input(k_ + 6);
    int64_t req_time, global_step;
    OP_REQUIRES_OK(c, check_ids(ids));
    OP_REQUIRES_OK(c, check_ids(c->input(k_ + 1), "indices"));
    Layout lay;
    OP_REQUIRES_OK(c, plan(c->input(k_ + 2), dims, shards_, ids.dim_size(0), &lay));
    OP_REQUIRES_OK(c, check_flat(grads, lay.emb_offsets.back(), "grads"));
    for (auto [name, idx, want] : {std::tuple{"id_offsets", k_ + 4, &lay.id_offsets},
                                   std::tuple{"grad_offsets", k_ + 5, &lay.emb_offsets}}) {
      const Tensor& got = c->input(idx);
      bool same = got.dims() == 1 && got.NumElements() == static_cast<int64_t>(want->size());
      for (int64_t i = 0; same && i < got.NumElements(); ++i)
        same = got.flat<int32_t>()(i) == (*want)[i];
      OP_REQUIRES(c, same, absl::InvalidArgumentError(
                               std::string(name) +
                               " does not match fused_slot_size and the table dims"));
    }
    std::vector<int64_t> lr_start(static_cast<size_t>(k_ + 1), 0);
    for (int64_t t = 0; t < k_; ++t)
      lr_start[t + 1] = lr_start[t] +
                        static_cast<int64_t>(tables[t]->table().config().segments.size());
    OP_REQUIRES_OK(c, check_learning_rates(lrs, lr_start[k_], "learning_rates"));
    OP_REQUIRES_OK(c, scalar_i64(c->input(k_ + 7), "req_time", &req_time));
    OP_REQUIRES_OK(c, scalar_i64(c->input(k_ + 8), "global_step", &global_step));
    const int64_t* id = ids.flat<int64_t>().data();
    const float* g = grads.flat<float>().data();
    const float* lr = lrs.flat<float>().data();
    // Every block, empty ones too, so every table sees req_time (its max_update_ts).
    OP_REQUIRES_OK(c, guarded([&] {
      for (int64_t b = 0; b < k_ * shards_; ++b) {
        const int64_t t = b % k_;
        tables[t]->table().apply_gradients(id + lay.id_offsets[b], g + lay.emb_offsets[b],
                                           lay.id_offsets[b + 1] - lay.id_offsets[b],
                                           global_step, dedup_, req_time, lr + lr_start[t],
                                           lr_start[t + 1] - lr_start[t]);
      }
    }));
    for (int64_t t = 0; t < k_; ++t) c->set_output(static_cast<int>(t), c->input(static_cast<int>(t)));
  }

 private:
  int64_t k_ = 1, shards_ = 1;
  bool dedup_ = false;
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableFusedOptimize").Device(DEVICE_CPU),
                        FusedOptimizeOp);

}  // namespace
}  // namespace hashlab_tf
