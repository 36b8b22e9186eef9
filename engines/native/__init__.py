"""The bundled native engine (C++ core bound with nanobind; see README.md).

Importing this package loads nothing compiled: `engines.native.cpu` imports the `_native_cpu`
extension when an engine is created or probed, and nothing here ever touches CUDA.
"""
