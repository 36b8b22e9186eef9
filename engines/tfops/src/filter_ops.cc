// Hash-filter resources (sliding, probabilistic, dummy), Monolith's gradient intercept, and the
// sliding filter's state as tensors (engines/formats/filter_dump.py writes and reads the files,
// as it does for every engine).
#include <algorithm>
#include <cmath>

#include "kernel_util.h"
#include "resources.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace hashlab_tf {
namespace {

constexpr int64_t kSlots = int64_t{1} << 15;

// Occurrence thresholds per fid-v2 slot: a default plus (slot, threshold) pairs.
absl::Status read_thresholds(OpKernelConstruction* c, std::vector<int32_t>* out) {
  int64_t def;
  std::vector<int64_t> pairs;
  TF_RETURN_IF_ERROR(c->GetAttr("occurrence_threshold", &def));
  TF_RETURN_IF_ERROR(c->GetAttr("slot_occurrence_thresholds", &pairs));
  auto in_range = [](int64_t t) { return t >= 0 && t <= 0x7FFFFFFF; };
  if (!in_range(def))
    return absl::InvalidArgumentError("occurrence_threshold must be in [0, 2^31), got " +
                                      std::to_string(def));
  if (pairs.size() % 2)
    return absl::InvalidArgumentError("slot_occurrence_thresholds must hold (slot, threshold) "
                                      "pairs");
  out->assign(kSlots, static_cast<int32_t>(def));
  for (size_t i = 0; i < pairs.size(); i += 2) {
    if (pairs[i] < 0 || pairs[i] >= kSlots || !in_range(pairs[i + 1]))
      return absl::InvalidArgumentError("slot_occurrence_thresholds: bad pair (" +
                                        std::to_string(pairs[i]) + ", " +
                                        std::to_string(pairs[i + 1]) + ")");
    (*out)[pairs[i]] = static_cast<int32_t>(pairs[i + 1]);
  }
  return absl::OkStatus();
}

// Creates (or finds, by container/shared_name) a filter resource built by make().
class FilterOpBase : public OpKernel {
 public:
  explicit FilterOpBase(OpKernelConstruction* c, std::string kind)
      : OpKernel(c), kind_(std::move(kind)) {
    if (kind_ != "dummy") OP_REQUIRES_OK(c, read_thresholds(c, &thresholds_));
  }
  void Compute(OpKernelContext* c) override {
    tensorflow::ContainerInfo cinfo;
    OP_REQUIRES_OK(c, cinfo.Init(c->resource_manager(), def(), true));
    FilterResource* res = nullptr;
    OP_REQUIRES_OK(c, c->resource_manager()->LookupOrCreate<FilterResource>(
                          cinfo.container(), cinfo.name(), &res, [&](FilterResource** out) {
                            std::shared_ptr<hashlab::HashFilter> f;
                            absl::Status s = guarded([&] {
                              f = make();
                              f->set_thresholds(thresholds_);
                            });
                            if (s.ok()) *out = new FilterResource(f, kind_);
                            return s;
                          }));
    tensorflow::core::ScopedUnref unref(res);
    OP_REQUIRES_OK(c, tensorflow::MakeResourceHandleToOutput(
                          c, 0, cinfo.container(), cinfo.name(),
                          tensorflow::TypeIndex::Make<FilterResource>()));
  }

 protected:
  virtual std::shared_ptr<hashlab::HashFilter> make() = 0;

 private:
  std::string kind_;
  std::vector<int32_t> thresholds_ = std::vector<int32_t>(kSlots, 0);
};

REGISTER_OP("MonolithHashFilter")
    .Output("handle: resource")
    .Attr("capacity: int = 300000000")
    .Attr("split_num: int = 7")
    .Attr("occurrence_threshold: int = 0")
    .Attr("slot_occurrence_thresholds: list(int) = []")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(si::ScalarShape);

class SlidingFilterOp : public FilterOpBase {
 public:
  explicit SlidingFilterOp(OpKernelConstruction* c) : FilterOpBase(c, "sliding") {
    OP_REQUIRES_OK(c, c->GetAttr("capacity", &capacity_));
    OP_REQUIRES_OK(c, c->GetAttr("split_num", &split_num_));
    // The sizes engines/filters.py FilterSpec accepts (Monolith clamps to 300 and 5).
    OP_REQUIRES(c, capacity_ >= 1 && split_num_ >= 1 && split_num_ <= 99999,
                absl::InvalidArgumentError("capacity must be >= 1 and split_num in [1, 99999]"));
    const int64_t per_split = std::max<int64_t>(capacity_, 300) /
                              (std::max<int64_t>(split_num_, 5) - 1);
    OP_REQUIRES(c, static_cast<int64_t>(static_cast<double>(per_split) * 1.2) >= 1,
                absl::InvalidArgumentError("capacity is too small for split_num"));
    OP_REQUIRES(c, per_split <= (int64_t{1} << 34),
                absl::InvalidArgumentError("capacity is too large"));
  }

 protected:
  std::shared_ptr<hashlab::HashFilter> make() override {
    return std::make_shared<hashlab::SlidingHashFilter>(capacity_, split_num_);
  }

 private:
  int64_t capacity_ = 0, split_num_ = 0;
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashFilter").Device(DEVICE_CPU), SlidingFilterOp);

REGISTER_OP("MonolithProbabilisticFilter")
    .Output("handle: resource")
    .Attr("equal_probability: bool = false")
    .Attr("seed: int = 0")
    .Attr("occurrence_threshold: int = 0")
    .Attr("slot_occurrence_thresholds: list(int) = []")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(si::ScalarShape);

class ProbabilisticFilterOp : public FilterOpBase {
 public:
  explicit ProbabilisticFilterOp(OpKernelConstruction* c) : FilterOpBase(c, "probabilistic") {
    OP_REQUIRES_OK(c, c->GetAttr("equal_probability", &equal_));
    OP_REQUIRES_OK(c, c->GetAttr("seed", &seed_));
  }

 protected:
  std::shared_ptr<hashlab::HashFilter> make() override {
    return std::make_shared<hashlab::ProbabilisticFilter>(static_cast<uint64_t>(seed_), equal_);
  }

 private:
  bool equal_ = false;
  int64_t seed_ = 0;
};
REGISTER_KERNEL_BUILDER(Name("MonolithProbabilisticFilter").Device(DEVICE_CPU),
                        ProbabilisticFilterOp);

REGISTER_OP("MonolithDummyHashFilter")
    .Output("handle: resource")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(si::ScalarShape);

class DummyFilterOp : public FilterOpBase {
 public:
  explicit DummyFilterOp(OpKernelConstruction* c) : FilterOpBase(c, "dummy") {}

 protected:
  std::shared_ptr<hashlab::HashFilter> make() override {
    return std::make_shared<hashlab::DummyHashFilter>();
  }
};
REGISTER_KERNEL_BUILDER(Name("MonolithDummyHashFilter").Device(DEVICE_CPU), DummyFilterOp);

// ---- gradient intercept ----------------------------------------------------------------------

REGISTER_OP("MonolithHashFilterInterceptGradient")
    .Input("filter_handle: resource")
    .Input("ids: int64")
    .Input("embeddings: float")
    .Output("same_embeddings: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(2));
      return absl::OkStatus();
    })
    .Doc("Identity on embeddings; its gradient (registered in Python) zeroes the rows of ids "
         "the filter does not admit yet.");

class InterceptOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override { c->set_output(0, c->input(2)); }
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashFilterInterceptGradient").Device(DEVICE_CPU),
                        InterceptOp);

REGISTER_OP("MonolithHashFilterInterceptGradientGradient")
    .Input("filter_handle: resource")
    .Input("ids: int64")
    .Input("grad: float")
    .Output("filtered_grad: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(2));
      return absl::OkStatus();
    });

class InterceptGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<FilterResource> f;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &f));
    const Tensor& ids = c->input(1);
    const Tensor& grad = c->input(2);
    OP_REQUIRES_OK(c, check_ids(ids));
    const int64_t n = ids.dim_size(0);
    OP_REQUIRES(c, grad.dims() >= 1 && grad.dim_size(0) == n,
                absl::InvalidArgumentError("grads has " + std::to_string(grad.dims() ? grad.dim_size(0) : 0) +
                                           " rows but ids has " + std::to_string(n) +
                                           " elements"));
    Tensor* out;
    OP_REQUIRES_OK(c, c->allocate_output(0, grad.shape(), &out));
    const int64_t width = n ? grad.NumElements() / n : 0;
    const int64_t* id = ids.flat<int64_t>().data();
    const float* g = grad.flat<float>().data();
    float* o = out->flat<float>().data();
    std::copy(g, g + grad.NumElements(), o);
    hashlab::HashFilter& filter = *f->filter();
    std::lock_guard<std::mutex> lk(filter.mutex());  // batch order matters: one pass, in order
    for (int64_t i = 0; i < n; ++i)
      if (filter.should_be_filtered(id[i], 1, -1)) std::fill(o + i * width, o + (i + 1) * width, 0.f);
  }
};
REGISTER_KERNEL_BUILDER(Name("MonolithHashFilterInterceptGradientGradient").Device(DEVICE_CPU),
                        InterceptGradOp);

// ---- sliding-filter state (for filter_dump.py) ------------------------------------------------

hashlab::SlidingHashFilter* sliding_of(FilterResource& f) {
  auto* s = dynamic_cast<hashlab::SlidingHashFilter*>(f.filter().get());
  if (!s) throw std::invalid_argument("not a sliding hash filter (kind " + f.kind() + ")");
  return s;
}

REGISTER_OP("HashlabSlidingFilterState")
    .Input("filter_handle: resource")
    .Output("meta: int64")          // head, head_increment, failure_count, split_num, max_backward_step
    .Output("split_ints: int64")    // [splits, 4]: capacity, total_size, num_elements, failure_count
    .Output("fill_rates: float64")  // [splits]
    .Output("cells: uint16")        // every split's total_size + 64 cells, concatenated
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(5));
      c->set_output(1, c->Matrix(c->UnknownDim(), 4));
      c->set_output(2, c->Vector(c->UnknownDim()));
      c->set_output(3, c->Vector(c->UnknownDim()));
      return absl::OkStatus();
    });

class SlidingStateOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<FilterResource> f;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &f));
    hashlab::SlidingHashFilter* s = nullptr;
    OP_REQUIRES_OK(c, guarded([&] { s = sliding_of(*f); }));
    std::lock_guard<std::mutex> lk(s->mutex());
    const int64_t k = static_cast<int64_t>(s->splits.size());
    int64_t cells = 0;
    for (const auto& sp : s->splits) cells += static_cast<int64_t>(sp.cells.size());
    Tensor *meta, *ints, *rates, *cell;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({5}), &meta));
    OP_REQUIRES_OK(c, c->allocate_output(1, TensorShape({k, 4}), &ints));
    OP_REQUIRES_OK(c, c->allocate_output(2, TensorShape({k}), &rates));
    OP_REQUIRES_OK(c, c->allocate_output(3, TensorShape({cells}), &cell));
    auto m = meta->flat<int64_t>();
    m(0) = s->head;
    m(1) = s->head_increment;
    m(2) = s->failure_count_;
    m(3) = s->split_num();
    m(4) = s->max_backward_step();
    auto in = ints->matrix<int64_t>();
    uint16_t* out = cell->flat<uint16_t>().data();
    for (int64_t i = 0; i < k; ++i) {
      const auto& sp = s->splits[i];
      in(i, 0) = sp.capacity;
      in(i, 1) = sp.total_size;
      in(i, 2) = sp.num_elements;
      in(i, 3) = sp.failure_count;
      rates->flat<double>()(i) = sp.fill_rate;
      out = std::copy(sp.cells.begin(), sp.cells.end(), out);
    }
  }
};
REGISTER_KERNEL_BUILDER(Name("HashlabSlidingFilterState").Device(DEVICE_CPU), SlidingStateOp);

REGISTER_OP("HashlabSlidingFilterSetState")
    .Input("filter_handle: resource")
    .Input("head: int64")
    .Input("head_increment: int64")
    .Input("failure_count: int64")
    .Input("split_ints: int64")     // [k, 3]: total_size, num_elements, failure_count
    .Input("fill_rates: float64")   // [k]
    .Input("cells: uint16")         // sum(total_size + 64)
    .Output("output_handle: resource")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Scalar());
      return absl::OkStatus();
    })
    .Doc("Replaces the ring and the first k splits at once (a validated restore).");

class SlidingSetStateOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* c) override {
    RefCountPtr<FilterResource> f;
    OP_REQUIRES_OK(c, lookup_resource(c, 0, &f));
    hashlab::SlidingHashFilter* s = nullptr;
    OP_REQUIRES_OK(c, guarded([&] { s = sliding_of(*f); }));
    int64_t head, head_inc, failures;
    OP_REQUIRES_OK(c, scalar_i64(c->input(1), "head", &head));
    OP_REQUIRES_OK(c, scalar_i64(c->input(2), "head_increment", &head_inc));
    OP_REQUIRES_OK(c, scalar_i64(c->input(3), "failure_count", &failures));
    const Tensor& ints = c->input(4);
    const Tensor& rates = c->input(5);
    const Tensor& cells = c->input(6);
    OP_REQUIRES(c, ints.dims() == 2 && ints.dim_size(1) == 3 && rates.dims() == 1 &&
                       rates.dim_size(0) == ints.dim_size(0) && cells.dims() == 1,
                absl::InvalidArgumentError("split_ints must be [k, 3], fill_rates [k], cells 1-D"));
    const int64_t k = ints.dim_size(0);
    OP_REQUIRES(c, k <= static_cast<int64_t>(s->splits.size()),
                absl::InvalidArgumentError("more split states than splits"));
    OP_REQUIRES(c, head >= 0 && head < static_cast<int64_t>(s->splits.size()),
                absl::InvalidArgumentError("head is not a split index"));
    auto in = ints.matrix<int64_t>();
    const uint16_t* cell = cells.flat<uint16_t>().data();
    int64_t used = 0;
    std::vector<hashlab::SplitArray> fresh;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t total = in(i, 0);
      OP_REQUIRES(c, total >= 1 && used + total + 64 <= cells.NumElements(),
                  absl::InvalidArgumentError("split cells must hold total_size + 64 values"));
      hashlab::SplitArray sp = s->splits[i];
      sp.total_size = total;
      sp.num_elements = in(i, 1);
      sp.failure_count = in(i, 2);
      sp.fill_rate = rates.flat<double>()(i);
      sp.cells.assign(cell + used, cell + used + total + 64);
      used += total + 64;
      fresh.push_back(std::move(sp));
    }
    OP_REQUIRES(c, used == cells.NumElements(),
                absl::InvalidArgumentError("cells has values beyond the last split"));
    std::lock_guard<std::mutex> lk(s->mutex());
    for (int64_t i = 0; i < k; ++i) s->splits[i] = std::move(fresh[i]);
    s->head = head;
    s->head_increment = head_inc;
    s->failure_count_ = failures;
    c->set_output(0, c->input(0));
  }
};
REGISTER_KERNEL_BUILDER(Name("HashlabSlidingFilterSetState").Device(DEVICE_CPU),
                        SlidingSetStateOp);

}  // namespace
}  // namespace hashlab_tf
