// Python bindings of the GPU engine (_native_cuda). Compiled by the host compiler; the CUDA
// work happens in hashlab_cuda_core. Arrays may be host (numpy: copied to the device and back)
// or CUDA device arrays through DLPack (CuPy, PyTorch, ...: used in place, never copied).
// engines/native/gpu.py validates arguments first; these functions re-check what C++ relies on.
//
// Errors: invalid_argument -> ValueError, bad_alloc -> MemoryError, CUDA failures ->
// RuntimeError, system_error -> OSError, CheckpointFailure -> engines.errors.CheckpointError.
// Checkpoints go through the same ShardCodec as the CPU engine (byte-identical files).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <limits>
#include <system_error>
#include <thread>

#include "binding_common.h"
#include "entry_dump.h"
#include "shard_codec.h"
#include "cuda_check.h"
#include "dev_buffer.h"
#include "device_scope.h"
#include "gpu_table.h"
#include "kernels.h"

namespace nb = nanobind;
using namespace nb::literals;
using hashlab::gpu::DevBuf;
using hashlab::gpu::DeviceScope;
using hashlab::gpu::GpuTable;

namespace {

using AnyArray = nb::ndarray<nb::ro>;
constexpr int kCpu = nb::device::cpu::value;
constexpr int kCuda = nb::device::cuda::value;
constexpr int kCudaManaged = 13;  // kDLCUDAManaged

bool is_device(const AnyArray& a) {
  return a.device_type() == kCuda || a.device_type() == kCudaManaged;
}

bool c_contiguous(const AnyArray& a) {
  int64_t expect = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expect) return false;
    expect *= static_cast<int64_t>(a.shape(i));
  }
  return true;
}

// A device pointer to an argument's data: the caller's device memory when it already lives on
// the table's device, else a stream-ordered copy of the host array.
struct DevArg {
  const void* ptr = nullptr;
  DevBuf copy;
};

DevArg device_arg(const AnyArray& a, nb::dlpack::dtype dt, size_t count, int device,
                  const char* name) {
  if (a.dtype() != dt)
    throw nb::type_error((std::string(name) + " has the wrong dtype").c_str());
  if (a.size() != count)
    throw std::invalid_argument(std::string(name) + " must have " + std::to_string(count) +
                                " elements, got " + std::to_string(a.size()));
  if (!c_contiguous(a)) throw std::invalid_argument(std::string(name) + " must be C-contiguous");
  DevArg out;
  if (is_device(a)) {
    if (a.device_id() != device)
      throw std::invalid_argument(std::string(name) + " is on CUDA device " +
                                  std::to_string(a.device_id()) + " but the table is on device " +
                                  std::to_string(device));
    out.ptr = a.data();
    return out;
  }
  if (a.device_type() != kCpu)
    throw std::invalid_argument(std::string(name) + " must be a host or CUDA array");
  const size_t bytes = count * a.itemsize();
  out.copy = DevBuf(bytes, nullptr);
  if (bytes)
    hashlab::gpu::check_cuda(cudaMemcpyAsync(out.copy.get(), a.data(), bytes,
                                             cudaMemcpyHostToDevice, nullptr), "copy to device");
  out.ptr = out.copy.get();
  return out;
}

template <typename T>
nb::ndarray<nb::numpy, T> host_array(T* data, std::initializer_list<size_t> shape) {
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return nb::ndarray<nb::numpy, T>(data, shape, owner);
}

// Device output memory owned by the returned array; freed on its own device.
struct DeviceAlloc {
  void* ptr;
  int device;
};

nb::ndarray<nb::device::cuda, float> device_array(int device, size_t rows, size_t cols) {
  DeviceAlloc* a = new DeviceAlloc{nullptr, device};
  const size_t bytes = std::max<size_t>(rows * cols, 1) * 4;
  const cudaError_t rc = cudaMallocAsync(&a->ptr, bytes, nullptr);
  if (rc != cudaSuccess) {
    delete a;
    hashlab::gpu::check_cuda(rc, "cudaMallocAsync lookup output");
  }
  nb::capsule owner(a, [](void* p) noexcept {
    auto* d = static_cast<DeviceAlloc*>(p);
    int prev = 0;
    cudaGetDevice(&prev);
    cudaSetDevice(d->device);
    cudaFreeAsync(d->ptr, nullptr);
    cudaSetDevice(prev);
    delete d;
  });
  const size_t shape[2] = {rows, cols};
  return nb::ndarray<nb::device::cuda, float>(a->ptr, 2, shape, owner, nullptr,
                                              nb::dtype<float>(), kCuda, device);
}

nb::list bytes_list(const std::vector<std::string>& v) {
  nb::list out;
  for (const auto& s : v) out.append(nb::bytes(s.data(), s.size()));
  return out;
}

int64_t rows_of(const AnyArray& a, int64_t dim, const char* name) {
  if (a.ndim() == 2 && static_cast<int64_t>(a.shape(1)) == dim) return a.shape(0);
  if (a.ndim() == 1 && dim > 0 && static_cast<int64_t>(a.shape(0)) % dim == 0)
    return static_cast<int64_t>(a.shape(0)) / dim;
  throw std::invalid_argument(std::string(name) + " must have shape [n, " + std::to_string(dim) +
                              "]");
}

// Every entry of the table, copied to the host once: the ShardCodec's EntrySource.
class HostEntries : public hashlab::EntrySource {
 public:
  explicit HostEntries(GpuTable& t) : stride_(t.config().record_words()) {
    t.export_all(&ids_, &recs_);
  }
  int64_t parts() const override { return 1; }
  void list(int64_t, std::vector<hashlab::EntryRef>* out) const override {
    out->reserve(out->size() + ids_.size());
    for (size_t i = 0; i < ids_.size(); ++i)
      out->push_back(hashlab::EntryRef{ids_[i], recs_.data() + i * stride_});
  }

 private:
  int64_t stride_;
  std::vector<int64_t> ids_;
  std::vector<float> recs_;
};

// Host threads that encode and parse checkpoints for every GPU table of the process.
hashlab::ThreadPool& codec_pool() {
  static hashlab::ThreadPool pool(
      static_cast<int>(std::max(1u, std::min(8u, std::thread::hardware_concurrency()))));
  return pool;
}

}  // namespace

// A parsed checkpoint waiting for Table.commit_restore (opaque to Python).
struct StagedRestore {
  std::vector<int64_t> ids, ts;
  std::vector<int32_t> num_count;
  std::vector<float> rows;
  int64_t dim = 0;
  bool used = false;
};

NB_MODULE(_native_cuda, m) {
  m.doc() = "hashtable-lab native GPU engine (CUDA tables; see engines/native/cuda/README.md)";
  hashlab::binding::register_errors();
  hashlab::binding::bind_vocabulary(m);
  hashlab::binding::bind_constants(m);

  // "" when a CUDA device can be used, else why not (cudaGetDeviceCount's error string).
  m.def("probe", []() -> std::string {
    std::string err;
    const int n = hashlab::gpu::device_count(&err);
    if (n > 0) return "";
    return "no CUDA device: " + (err.empty() ? std::string("cudaGetDeviceCount found 0 devices")
                                             : err);
  });
  m.def("device_count", []() { return hashlab::gpu::device_count(nullptr); });

  // (device_type, device_id, dtype "int64"/"float32"/other, shape) of any DLPack array, for
  // gpu.py's validation of device arrays without importing their framework.
  m.def("array_info", [](AnyArray a) {
    std::string dt = "other";
    if (a.dtype() == nb::dtype<int64_t>()) dt = "int64";
    else if (a.dtype() == nb::dtype<float>()) dt = "float32";
    else if (a.dtype() == nb::dtype<int32_t>()) dt = "int32";
    else if (a.dtype() == nb::dtype<double>()) dt = "float64";
    nb::list shape;
    for (size_t i = 0; i < a.ndim(); ++i) shape.append(a.shape(i));
    return nb::make_tuple(a.device_type(), a.device_id(), dt, nb::tuple(shape),
                          c_contiguous(a));
  }, "array"_a);

  // First row of a float32 device array [rows, width] with a NaN/Inf, or -1.
  m.def("first_nonfinite", [](AnyArray a, int64_t width) {
    if (!is_device(a) || a.dtype() != nb::dtype<float>())
      throw std::invalid_argument("first_nonfinite needs a float32 CUDA array");
    if (!c_contiguous(a)) throw std::invalid_argument("array must be C-contiguous");
    if (width < 1 || a.size() % static_cast<size_t>(width))
      throw std::invalid_argument("width does not divide the array");
    DeviceScope scope(a.device_id());
    const unsigned long long none = ~0ULL;
    DevBuf bad(sizeof none, nullptr);
    hashlab::gpu::check_cuda(cudaMemcpyAsync(bad.get(), &none, sizeof none,
                                             cudaMemcpyHostToDevice, nullptr), "upload");
    hashlab::gpu::launch_find_nonfinite(static_cast<const float*>(a.data()),
                                        static_cast<int64_t>(a.size()) / width, width,
                                        bad.as<unsigned long long>(), nullptr);
    unsigned long long got = none;
    hashlab::gpu::check_cuda(cudaMemcpy(&got, bad.get(), sizeof got, cudaMemcpyDeviceToHost),
                             "download");
    return got == none ? int64_t{-1} : static_cast<int64_t>(got);
  }, "array"_a, "width"_a);
  using HostIds = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
  using Lrs = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

  nb::class_<StagedRestore>(m, "StagedRestore");

  nb::class_<GpuTable>(m, "Table")
      // config: the marshalled table config (table_config.h; engines/native/common.py).
      .def("__init__", [](GpuTable* self, int device, const std::string& config,
                          int64_t initial_capacity) {
        new (self) GpuTable(hashlab::TableConfig::parse(config), device, initial_capacity);
      }, "device"_a, "config"_a, "initial_capacity"_a)
      .def_prop_ro("dim", &GpuTable::dim)
      .def_prop_ro("device", &GpuTable::device)
      // filter(ids: int64[m], counts: int64[m]) -> uint8[m] (1 = admit), or None.
      .def("set_filter", [](GpuTable& t, nb::object fn) {
        if (fn.is_none()) {
          t.set_filter(nullptr);
          return;
        }
        nb::object keep_alive = fn;
        t.set_filter([keep_alive](const std::vector<int64_t>& ids,
                                  const std::vector<int64_t>& counts) {
          nb::gil_scoped_acquire gil;
          int64_t* a = new int64_t[ids.size() ? ids.size() : 1];
          int64_t* c = new int64_t[counts.size() ? counts.size() : 1];
          std::memcpy(a, ids.data(), ids.size() * 8);
          std::memcpy(c, counts.data(), counts.size() * 8);
          nb::object res = keep_alive(host_array<int64_t>(a, {ids.size()}),
                                      host_array<int64_t>(c, {counts.size()}));
          auto keep = nb::cast<nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig,
                                           nb::device::cpu>>(res);
          return std::vector<uint8_t>(keep.data(), keep.data() + keep.shape(0));
        });
      }, "filter"_a.none())
      .def("lookup", [](GpuTable& t, AnyArray ids, nb::object out) -> nb::object {
        if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
        const int64_t n = static_cast<int64_t>(ids.shape(0));
        const int64_t D = t.dim();
        if (D > 0 && n > std::numeric_limits<int64_t>::max() / 4 / D)
          throw std::invalid_argument("batch too large: ids x dim overflows");
        DeviceScope scope(t.device());
        DevArg d_ids = device_arg(ids, nb::dtype<int64_t>(), n, t.device(), "ids");
        if (!out.is_none()) {  // caller-provided float32 CUDA [n, D] output
          AnyArray o = nb::cast<AnyArray>(out);
          if (!is_device(o) || o.device_id() != t.device() || o.dtype() != nb::dtype<float>() ||
              o.size() != static_cast<size_t>(n * D) || !c_contiguous(o))
            throw std::invalid_argument("out must be a C-contiguous float32 CUDA array of " +
                                        std::to_string(n) + "x" + std::to_string(D) +
                                        " elements on the table's device");
          {
            nb::gil_scoped_release rel;
            t.lookup(static_cast<const int64_t*>(d_ids.ptr), n, static_cast<float*>(const_cast<void*>(o.data())), D);
          }
          return out;
        }
        if (is_device(ids)) {  // device in -> device out (DLPack, no copy)
          auto arr = device_array(t.device(), static_cast<size_t>(n), static_cast<size_t>(D));
          {
            nb::gil_scoped_release rel;
            t.lookup(static_cast<const int64_t*>(d_ids.ptr), n, static_cast<float*>(arr.data()),
                     D);
          }
          return nb::cast(arr);
        }
        float* host = new float[(n * D) > 0 ? n * D : 1];
        auto arr = host_array<float>(host, {static_cast<size_t>(n), static_cast<size_t>(D)});
        {
          nb::gil_scoped_release rel;
          DevBuf d_out(static_cast<size_t>(std::max<int64_t>(n * D, 1)) * 4, nullptr);
          t.lookup(static_cast<const int64_t*>(d_ids.ptr), n, d_out.as<float>(), D);
          hashlab::gpu::check_cuda(cudaMemcpy(host, d_out.get(), static_cast<size_t>(n * D) * 4,
                                              cudaMemcpyDeviceToHost), "copy lookup result");
        }
        return nb::cast(arr);
      }, "ids"_a, "out"_a.none() = nb::none())
      .def("assign", [](GpuTable& t, AnyArray ids, AnyArray values, int64_t req_time, bool add) {
        if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
        const int64_t n = static_cast<int64_t>(ids.shape(0));
        if (rows_of(values, t.dim(), "values") != n)
          throw std::invalid_argument("values must have one row per id");
        DeviceScope scope(t.device());
        DevArg d_ids = device_arg(ids, nb::dtype<int64_t>(), n, t.device(), "ids");
        DevArg d_val = device_arg(values, nb::dtype<float>(), n * t.dim(), t.device(), "values");
        nb::gil_scoped_release rel;
        t.write(static_cast<const int64_t*>(d_ids.ptr), static_cast<const float*>(d_val.ptr), n,
                req_time, add);
      }, "ids"_a, "values"_a, "req_time"_a, "add"_a)
      .def("apply_gradients", [](GpuTable& t, AnyArray ids, AnyArray grads, int64_t global_step,
                                 bool dedup, int64_t req_time, Lrs lrs) {
        if (ids.ndim() != 1) throw std::invalid_argument("ids must be 1-D");
        const int64_t n = static_cast<int64_t>(ids.shape(0));
        if (rows_of(grads, t.dim(), "grads") != n)
          throw std::invalid_argument("grads must have one row per id");
        DeviceScope scope(t.device());
        DevArg d_ids = device_arg(ids, nb::dtype<int64_t>(), n, t.device(), "ids");
        DevArg d_g = device_arg(grads, nb::dtype<float>(), n * t.dim(), t.device(), "grads");
        nb::gil_scoped_release rel;
        t.apply_gradients(static_cast<const int64_t*>(d_ids.ptr),
                          static_cast<const float*>(d_g.ptr), n, global_step, dedup, req_time,
                          lrs.data(), static_cast<int64_t>(lrs.shape(0)));
      }, "ids"_a, "grads"_a, "global_step"_a, "dedup"_a, "req_time"_a,
         "learning_rates"_a.noconvert())
      .def("size", &GpuTable::size)
      .def("max_update_ts", &GpuTable::max_update_ts)
      .def("memory_bytes", &GpuTable::memory_bytes)
      .def("lookup_entry", [](GpuTable& t, HostIds ids) {
        std::vector<std::string> dumps;
        {
          nb::gil_scoped_release rel;
          std::vector<float> recs;
          std::vector<uint8_t> found;
          t.export_ids(ids.data(), static_cast<int64_t>(ids.shape(0)), &recs, &found);
          const hashlab::TableConfig& cfg = t.config();
          const int64_t stride = cfg.record_words();
          dumps.resize(found.size());
          for (size_t i = 0; i < found.size(); ++i) {
            if (!found[i]) continue;
            const float* rec = recs.data() + i * stride;
            dumps[i].resize(hashlab::entry_dump_size(cfg, rec, false));
            hashlab::encode_entry_dump(cfg, rec, false, 0,
                                       reinterpret_cast<uint8_t*>(dumps[i].data()));
          }
        }
        return bytes_list(dumps);
      }, "ids"_a.noconvert())
      .def("save", [](GpuTable& t, const std::string& basename, int64_t nshards) {
        hashlab::SaveResult result;
        {
          nb::gil_scoped_release rel;
          const HostEntries entries(t);
          result = hashlab::ShardCodec(t.config(), codec_pool())
                       .save(entries, t.max_update_ts(), basename, nshards);
        }
        return hashlab::binding::saved_paths(std::move(result));
      }, "basename"_a, "nshards"_a)
      .def("save_as_tensor", [](GpuTable& t, int64_t shard_idx, int64_t num_shards,
                                int64_t limit, int64_t offset) {
        hashlab::Blobs dumps;
        int64_t new_offset = 0;
        {
          nb::gil_scoped_release rel;
          const HostEntries entries(t);
          dumps = hashlab::ShardCodec(t.config(), codec_pool())
                      .slice(entries, shard_idx, num_shards, limit, offset, &new_offset);
        }
        nb::list out;
        for (int64_t i = 0; i < dumps.count(); ++i)
          out.append(nb::bytes(reinterpret_cast<const char*>(dumps.data.data()) +
                                   dumps.offsets[i],
                               static_cast<size_t>(dumps.offsets[i + 1] - dumps.offsets[i])));
        return nb::make_tuple(new_offset, out);
      }, "shard_idx"_a, "num_shards"_a, "limit"_a, "offset"_a)
      // Every file is read, CRC-checked and parsed before the device table changes.
      .def("stage_restore", [](GpuTable& t, const std::string& basename) {
        auto staged = std::make_unique<StagedRestore>();
        nb::gil_scoped_release rel;
        const hashlab::TableConfig& cfg = t.config();
        const hashlab::Staged st = hashlab::ShardCodec(cfg, codec_pool()).read(basename);
        const int64_t stride = cfg.dim + cfg.state_words;
        for (int64_t i = 0; i < st.size(); ++i) {  // ids are unique (the codec checks)
          staged->ids.push_back(st.ids[i]);
          staged->ts.push_back(st.ts[i]);
          staged->num_count.push_back(static_cast<int32_t>(st.num_count[i]));
          const float* r = st.row(i, stride);
          staged->rows.insert(staged->rows.end(), r, r + stride);
        }
        staged->dim = t.dim();
        return staged;
      }, "basename"_a)
      .def("commit_restore", [](GpuTable& t, StagedRestore& staged) {
        if (staged.used) throw std::invalid_argument("staged: this restore was committed already");
        if (staged.dim != t.dim()) throw std::invalid_argument("staged: staged for another table");
        nb::gil_scoped_release rel;
        t.load(staged.ids, staged.ts, staged.num_count, staged.rows);
        staged.used = true;
      }, "staged"_a);
}
