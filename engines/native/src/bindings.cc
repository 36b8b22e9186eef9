// Python bindings of the CPU engine. Every entry point re-checks dtypes, shapes and sizes
// (engines/api.py validates first, but these functions can be called directly), allocates
// outputs before releasing the GIL, and converts C++ errors to Python exceptions:
// invalid_argument -> ValueError, bad_alloc -> MemoryError, system_error -> OSError,
// CheckpointFailure -> engines.errors.CheckpointError (binding_common.h).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <limits>
#include <system_error>

#include "big_alloc.h"
#include "binding_common.h"
#include "crc32c.h"
#include "filters.h"
#include "table.h"

namespace nb = nanobind;
using namespace nb::literals;
using hashlab::Table;

namespace {

using IdArray = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using FloatArray = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
using I32Array = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using I64Array = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using U16Array = nb::ndarray<const uint16_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

struct Pool {
  std::shared_ptr<hashlab::ThreadPool> pool;
  explicit Pool(int threads) {
    if (threads < 1 || threads > 1024)
      throw std::invalid_argument("threads must be in [1, 1024], got " + std::to_string(threads));
    pool = std::make_shared<hashlab::ThreadPool>(threads);
  }
  int size() const { return pool->size(); }
};

struct Filter {
  std::shared_ptr<hashlab::HashFilter> f;
  hashlab::SlidingHashFilter* sliding() const {
    auto* s = dynamic_cast<hashlab::SlidingHashFilter*>(f.get());
    if (!s) throw std::invalid_argument("not a sliding hash filter");
    return s;
  }
};

std::vector<int32_t> thresholds_of(const I32Array& t) {
  if (t.shape(0) != (1 << 15))
    throw std::invalid_argument("thresholds must have 32768 entries, got " +
                                std::to_string(t.shape(0)));
  return std::vector<int32_t>(t.data(), t.data() + t.shape(0));
}

// Rows of a [n, dim] (or flat [n*dim]) float32 array, checked against the table.
const float* rows_of(const FloatArray& a, int64_t n, int64_t dim, const char* name) {
  const size_t nd = a.ndim();
  bool ok = false;
  if (nd == 2)
    ok = static_cast<int64_t>(a.shape(0)) == n && static_cast<int64_t>(a.shape(1)) == dim;
  else if (nd == 1)
    ok = static_cast<int64_t>(a.shape(0)) == n * dim;
  if (!ok)
    throw std::invalid_argument(std::string(name) + " must have shape [" + std::to_string(n) +
                                ", " + std::to_string(dim) + "] (one row per id)");
  return a.data();
}

// A numpy array that owns `count` fresh elements (huge-page backed when large).
template <typename T>
nb::ndarray<nb::numpy, T> new_array(std::initializer_list<size_t> shape, T** data) {
  size_t count = 1;
  for (size_t s : shape) count *= s;
  *data = static_cast<T*>(hashlab::alloc_big(count * sizeof(T)));
  nb::capsule owner(*data, [](void* p) noexcept { hashlab::free_big(p); });
  return nb::ndarray<nb::numpy, T>(*data, shape, owner);
}

nb::list to_bytes_list(const std::vector<hashlab::Blobs>& parts) {
  nb::list out;
  for (const auto& b : parts)
    for (int64_t i = 0; i < b.count(); ++i)
      out.append(nb::bytes(reinterpret_cast<const char*>(b.data.data()) + b.offsets[i],
                           static_cast<size_t>(b.offsets[i + 1] - b.offsets[i])));
  return out;
}

int64_t checked_count(int64_t n, int64_t dim) {
  if (dim > 0 && n > std::numeric_limits<int64_t>::max() / 4 / dim)
    throw std::invalid_argument("batch too large: ids x dim overflows");
  return n * dim;
}

}  // namespace

// A parsed checkpoint waiting for Table.commit_restore (opaque to Python).
struct StagedRestore {
  std::unique_ptr<Table::Restored> content;
  const Table* table = nullptr;  // only the table that staged it may commit it
};

NB_MODULE(_native_cpu, m) {
  m.doc() = "hashtable-lab native CPU engine (C++ core; see engines/native/README.md)";
  hashlab::binding::register_errors();
  hashlab::binding::bind_vocabulary(m);
  hashlab::binding::bind_constants(m);

  m.def("crc32c", [](nb::bytes data) {
    return hashlab::crc32c(reinterpret_cast<const uint8_t*>(data.c_str()), data.size());
  });
  m.def("crc32c_portable", [](nb::bytes data) {
    return hashlab::crc32c_portable(0, reinterpret_cast<const uint8_t*>(data.c_str()),
                                    data.size());
  });
  m.def("crc32c_has_hw", &hashlab::crc32c_has_hw);
  m.def("mix64", [](int64_t x) { return hashlab::mix64(static_cast<uint64_t>(x)); });
  m.def("filter_hash", [](int64_t x) { return hashlab::filter_hash(x); });

  nb::class_<StagedRestore>(m, "StagedRestore");

  nb::class_<Pool>(m, "Pool")
      .def(nb::init<int>(), "threads"_a)
      .def_prop_ro("size", &Pool::size);

  nb::class_<Filter>(m, "Filter")
      .def_static("sliding", [](int64_t capacity, int64_t split_num, I32Array thr) {
        if (capacity < 1 || split_num < 1 || split_num > 99999)
          throw std::invalid_argument("capacity must be >= 1 and split_num in [1, 99999]");
        const int64_t n = std::max<int64_t>(split_num, 5);
        const int64_t cap = std::max<int64_t>(capacity, 300);
        if (static_cast<int64_t>(static_cast<double>(cap / (n - 1)) * 1.2) < 1)
          throw std::invalid_argument("capacity is too small for split_num");
        if (cap / (n - 1) > hashlab::kMaxSplitCapacity)
          throw std::invalid_argument("capacity is too large");
        Filter f{std::make_shared<hashlab::SlidingHashFilter>(capacity, split_num)};
        f.f->set_thresholds(thresholds_of(thr));
        return f;
      }, "capacity"_a, "split_num"_a, "thresholds"_a.noconvert())
      .def_static("probabilistic", [](uint64_t seed, bool equal, I32Array thr) {
        Filter f{std::make_shared<hashlab::ProbabilisticFilter>(seed, equal)};
        f.f->set_thresholds(thresholds_of(thr));
        return f;
      }, "seed"_a, "equal_probability"_a, "thresholds"_a.noconvert())
      .def_static("dummy", [](I32Array thr) {
        Filter f{std::make_shared<hashlab::DummyHashFilter>()};
        f.f->set_thresholds(thresholds_of(thr));
        return f;
      }, "thresholds"_a.noconvert())
      .def("should_be_filtered", [](Filter& self, int64_t fid, int64_t count, int in_table) {
        std::lock_guard<std::mutex> lk(self.f->mutex());
        return self.f->should_be_filtered(fid, count, in_table < 0 ? -1 : (in_table ? 1 : 0));
      }, "fid"_a, "count"_a = 1, "in_table"_a = -1)
      .def("add", [](Filter& self, int64_t fid, int64_t count) {
        std::lock_guard<std::mutex> lk(self.f->mutex());
        return self.f->add(fid, count);
      })
      .def("get", [](Filter& self, int64_t fid) {
        std::lock_guard<std::mutex> lk(self.f->mutex());
        return self.f->get(fid);
      })
      .def("estimated_total_element", [](Filter& self) {
        std::lock_guard<std::mutex> lk(self.f->mutex());
        return self.f->estimated_total_element();
      })
      .def("failure_count", [](Filter& self) {
        std::lock_guard<std::mutex> lk(self.f->mutex());
        return self.f->failure_count();
      })
      // Admission of ids a table lacks, in order (count: occurrences in the batch, or 1):
      // uint8 mask, 1 = admit. One call per batch (the GPU table's filter pass).
      .def("admit", [](Filter& self, IdArray ids, I64Array counts) {
        const int64_t n = static_cast<int64_t>(ids.shape(0));
        if (static_cast<int64_t>(counts.shape(0)) != n)
          throw std::invalid_argument("counts must have one value per id");
        uint8_t* out;
        auto arr = new_array<uint8_t>({static_cast<size_t>(n)}, &out);
        {
          nb::gil_scoped_release rel;
          std::lock_guard<std::mutex> lk(self.f->mutex());
          for (int64_t i = 0; i < n; ++i)
            out[i] = !self.f->should_be_filtered(ids.data()[i], counts.data()[i], 0);
        }
        return arr;
      }, "ids"_a.noconvert(), "counts"_a.noconvert())
      // Mask of the positions intercept_gradient zeroes (in order; duplicates see earlier adds).
      .def("intercept_mask", [](Filter& self, IdArray ids) {
        const int64_t n = static_cast<int64_t>(ids.shape(0));
        uint8_t* out;
        auto arr = new_array<uint8_t>({static_cast<size_t>(n)}, &out);
        {
          nb::gil_scoped_release rel;
          std::lock_guard<std::mutex> lk(self.f->mutex());
          for (int64_t i = 0; i < n; ++i) out[i] = self.f->should_be_filtered(ids.data()[i], 1, -1);
        }
        return arr;
      }, "ids"_a.noconvert())
      .def("sliding_state", [](Filter& self) {
        auto* s = self.sliding();
        std::lock_guard<std::mutex> lk(self.f->mutex());
        nb::dict d;
        d["head"] = s->head;
        d["head_increment"] = s->head_increment;
        d["failure_count"] = s->failure_count_;
        d["split_num"] = s->split_num();
        d["max_backward_step"] = s->max_backward_step();
        nb::list splits;
        for (const auto& sp : s->splits) {
          nb::dict e;
          e["capacity"] = sp.capacity;
          e["fill_rate"] = sp.fill_rate;
          e["total_size"] = sp.total_size;
          e["num_elements"] = sp.num_elements;
          e["failure_count"] = sp.failure_count;
          uint16_t* cells;
          e["cells"] = new_array<uint16_t>({sp.cells.size()}, &cells);
          memcpy(cells, sp.cells.data(), sp.cells.size() * 2);
          splits.append(e);
        }
        d["splits"] = splits;
        return d;
      })
      // Replace the ring and the first len(splits) splits at once (a validated restore).
      .def("sliding_set_state", [](Filter& self, int64_t head, int64_t head_increment,
                                   int64_t failures, nb::list splits) {
        auto* s = self.sliding();
        std::vector<hashlab::SplitArray> fresh;
        if (static_cast<size_t>(splits.size()) > s->splits.size())
          throw std::invalid_argument("more split states than splits");
        if (head < 0 || head >= static_cast<int64_t>(s->splits.size()))
          throw std::invalid_argument("head is not a split index");
        for (size_t i = 0; i < splits.size(); ++i) {
          nb::tuple t = nb::cast<nb::tuple>(splits[i]);
          if (t.size() != 5) throw std::invalid_argument("split state must be a 5-tuple");
          const int64_t total = nb::cast<int64_t>(t[0]);
          U16Array cells = nb::cast<U16Array>(t[4], false);
          if (total < 1 || static_cast<int64_t>(cells.shape(0)) != total + 64)
            throw std::invalid_argument("split cells must hold total_size + 64 values");
          hashlab::SplitArray sp = s->splits[i];
          sp.total_size = total;
          sp.num_elements = nb::cast<int64_t>(t[1]);
          sp.fill_rate = nb::cast<double>(t[2]);
          sp.failure_count = nb::cast<int64_t>(t[3]);
          sp.cells.assign(cells.data(), cells.data() + cells.shape(0));
          fresh.push_back(std::move(sp));
        }
        std::lock_guard<std::mutex> lk(self.f->mutex());
        for (size_t i = 0; i < fresh.size(); ++i) s->splits[i] = std::move(fresh[i]);
        s->head = head;
        s->head_increment = head_increment;
        s->failure_count_ = failures;
      });

  nb::class_<Table>(m, "Table")
      // config: the marshalled table config (table_config.h; engines/native/common.py).
      .def("__init__", [](Table* self, Pool& pool, std::shared_ptr<Filter> filter,
                          const std::string& config) {
        new (self) Table(hashlab::TableConfig::parse(config), pool.pool,
                         filter ? filter->f : nullptr);
      }, "pool"_a, "filter"_a.none(), "config"_a)
      .def_prop_ro("dim", &Table::dim)
      .def("assign", [](Table& t, IdArray ids, FloatArray values, int64_t req_time, bool add) {
        const int64_t n = static_cast<int64_t>(ids.shape(0));
        checked_count(n, t.dim());
        const float* v = rows_of(values, n, t.dim(), "values");
        nb::gil_scoped_release rel;
        t.write(ids.data(), v, n, req_time, add);
      }, "ids"_a.noconvert(), "values"_a.noconvert(), "req_time"_a, "add"_a)
      .def("lookup", [](Table& t, IdArray ids) {
        const int64_t n = static_cast<int64_t>(ids.shape(0));
        checked_count(n, t.dim());
        float* out;
        auto arr = new_array<float>({static_cast<size_t>(n), static_cast<size_t>(t.dim())}, &out);
        {
          nb::gil_scoped_release rel;
          t.lookup(ids.data(), n, out);
        }
        return arr;
      }, "ids"_a.noconvert())
      .def("lookup_entry", [](Table& t, IdArray ids) {
        std::vector<hashlab::Blobs> parts;
        {
          nb::gil_scoped_release rel;
          parts = t.lookup_entry(ids.data(), static_cast<int64_t>(ids.shape(0)));
        }
        return to_bytes_list(parts);
      }, "ids"_a.noconvert())
      .def("apply_gradients", [](Table& t, IdArray ids, FloatArray grads, int64_t global_step,
                                 bool dedup, int64_t req_time,
                                 nb::ndarray<const float, nb::ndim<1>, nb::c_contig,
                                             nb::device::cpu> lrs) {
        const int64_t n = static_cast<int64_t>(ids.shape(0));
        checked_count(n, t.dim());
        const float* g = rows_of(grads, n, t.dim(), "grads");
        nb::gil_scoped_release rel;
        t.apply_gradients(ids.data(), g, n, global_step, dedup, req_time, lrs.data(),
                          static_cast<int64_t>(lrs.shape(0)));
      }, "ids"_a.noconvert(), "grads"_a.noconvert(), "global_step"_a, "dedup"_a, "req_time"_a,
         "learning_rates"_a.noconvert())
      .def("size", [](Table& t) { return t.size(); })
      .def("max_update_ts", [](Table& t) { return t.max_update_ts(); })
      .def("memory_bytes", [](Table& t) { return t.memory_bytes(); })
      .def("save", [](Table& t, const std::string& basename, int64_t nshards) {
        hashlab::SaveResult result;
        {
          nb::gil_scoped_release rel;
          result = t.save(basename, nshards);
        }
        return hashlab::binding::saved_paths(std::move(result));
      }, "basename"_a, "nshards"_a)
      .def("stage_restore", [](Table& t, const std::string& basename) {
        auto staged = std::make_unique<StagedRestore>();
        {
          nb::gil_scoped_release rel;
          staged->content = t.stage_restore(basename);
        }
        staged->table = &t;
        return staged;
      }, "basename"_a)
      .def("commit_restore", [](Table& t, StagedRestore& staged) {
        if (!staged.content) throw std::invalid_argument("staged: already committed");
        if (staged.table != &t) throw std::invalid_argument("staged: staged by another table");
        nb::gil_scoped_release rel;
        t.commit_restore(std::move(staged.content));
      }, "staged"_a)
      .def("restore", [](Table& t, const std::string& basename) {
        nb::gil_scoped_release rel;
        t.commit_restore(t.stage_restore(basename));
      }, "basename"_a)
      .def("save_as_tensor", [](Table& t, int64_t shard_idx, int64_t num_shards, int64_t limit,
                                int64_t offset) {
        int64_t new_offset = 0;
        std::vector<hashlab::Blobs> parts(1);
        {
          nb::gil_scoped_release rel;
          parts[0] = t.save_as_tensor(shard_idx, num_shards, limit, offset, &new_offset);
        }
        return nb::make_tuple(new_offset, to_bytes_list(parts));
      }, "shard_idx"_a, "num_shards"_a, "limit"_a, "offset"_a);
}
