// What both nanobind modules (_native_cpu, _native_cuda) share: the exception mapping and the
// vocabulary enums. Included by each module's bindings.cc, so each module registers them in its
// own nanobind domain, but the Python types they raise are the same objects.
#pragma once

#include <nanobind/nanobind.h>

#include <iterator>
#include <system_error>

#include "checkpoint_files.h"
#include "entry_dump.h"
#include "filters.h"
#include "table_config.h"

namespace hashlab::binding {

namespace nb = nanobind;

// C++ errors -> Python: CheckpointFailure -> engines.errors.CheckpointError (one type for
// every module), system_error -> OSError(errno, message). nanobind's own translations
// cover the rest: invalid_argument -> ValueError, bad_alloc -> MemoryError.
inline void register_errors() {
  // Imported once at module init and kept for the process lifetime (never decref'd, so no
  // destruction-order question at interpreter exit).
  static PyObject* checkpoint_error =
      nb::module_::import_("engines.errors").attr("CheckpointError").inc_ref().ptr();
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const CheckpointFailure& e) {
      PyErr_SetString(checkpoint_error, e.what());
    } catch (const std::system_error& e) {
      PyErr_SetObject(PyExc_OSError, Py_BuildValue("(is)", e.code().value(), e.what()));
    }
  });
}

// The paths of a save; a failure after its commit point (the save succeeded) becomes an
// engines.errors.CheckpointWarning. Call with the GIL held.
inline std::vector<std::string> saved_paths(SaveResult result) {
  if (!result.warning.empty()) {
    static PyObject* warning =
        nb::module_::import_("engines.errors").attr("CheckpointWarning").inc_ref().ptr();
    if (PyErr_WarnEx(warning, result.warning.c_str(), 1) != 0) throw nb::python_error();
  }
  return std::move(result.paths);
}

// The vocabulary as Python enums (Optimizer, Initializer, Compressor): engines/vocabulary.py
// checks its names against these at import, so a name added on one side only fails loudly.
template <typename E, size_t N>
void bind_enum(nb::module_& m, const char* name, const char* const (&names)[N]) {
  nb::enum_<E> e(m, name);
  for (size_t i = 0; i < N; ++i) e.value(names[i], static_cast<E>(i));
}

inline void bind_vocabulary(nb::module_& m) {
  bind_enum<OptKind>(m, "Optimizer", kOptimizerNames);
  bind_enum<InitKind>(m, "Initializer", kInitializerNames);
  bind_enum<CompKind>(m, "Compressor", kCompressorNames);
}

// The constants Python has too, defined here once: engines/native/common.py checks them against
// Python's when a module loads (a stale build fails loudly, not as a silent mismatch).
inline void bind_constants(nb::module_& m) {
  m.attr("MAX_SHARDS") = kMaxShards;
  m.attr("OPEN_BATCH") = kOpenBatch;
  m.attr("READ_ATTEMPTS") = kReadAttempts;
  m.attr("CANONICAL_NAN") = kCanonicalNaN;
  m.attr("MAX_SPLIT_CAPACITY") = kMaxSplitCapacity;
}

}  // namespace hashlab::binding
