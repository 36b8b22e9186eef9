// _toggle: callgrind client requests around one Python call, so that `hashlab bench
// --measure simulated` counts the measured op alone, not the interpreter, the set-up or the
// rest of the process. Outside valgrind every request is a few no-op instructions.
//
// measured_call(fn, label): switch instrumentation on, zero the counters, call fn(), dump the
// counters under `label` (one callgrind.out file per call), switch instrumentation off.
// Instrumentation is global to the process, so worker threads the call starts are counted too.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <valgrind/callgrind.h>

static PyObject* on_valgrind(PyObject*, PyObject*) {
  return PyBool_FromLong(RUNNING_ON_VALGRIND ? 1 : 0);
}

static PyObject* measured_call(PyObject*, PyObject* args) {
  PyObject* fn = nullptr;
  const char* label = nullptr;
  if (!PyArg_ParseTuple(args, "Os:measured_call", &fn, &label)) return nullptr;
  if (!PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "fn: must be callable");
    return nullptr;
  }
  CALLGRIND_START_INSTRUMENTATION;
  CALLGRIND_ZERO_STATS;
  PyObject* result = PyObject_CallNoArgs(fn);
  CALLGRIND_DUMP_STATS_AT(label);
  CALLGRIND_STOP_INSTRUMENTATION;
  return result;
}

static PyMethodDef kMethods[] = {
    {"on_valgrind", on_valgrind, METH_NOARGS, "True when this process runs under valgrind."},
    {"measured_call", measured_call, METH_VARARGS,
     "measured_call(fn, label): fn() with callgrind counting it alone; dumps under label."},
    {nullptr, nullptr, 0, nullptr}};

static PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_toggle", nullptr, -1, kMethods,
                              nullptr, nullptr, nullptr, nullptr};

PyMODINIT_FUNC PyInit__toggle(void) { return PyModule_Create(&kModule); }
