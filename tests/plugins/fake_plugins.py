"""Engine factories that the fake plug-in packages of these tests point at (module:Factory).
Importable because pytest puts tests/plugins on sys.path."""
from __future__ import annotations

import engines
from engines.reference.numpy_engine import NumpyEngine


class GoodEngine(NumpyEngine):
    """A working plug-in: the numpy engine under another name."""
    name = "test-good"


def good_factory(**options):
    return GoodEngine(**options)


class UnavailableEngine(NumpyEngine):
    name = "test-unavailable"

    @classmethod
    def probe(cls):
        raise engines.EngineUnavailable("needs a device this machine lacks")


class ProbeCrashEngine(NumpyEngine):
    name = "test-probe-crash"

    @classmethod
    def probe(cls):
        raise RuntimeError("probe blew up")


def returns_a_dict(**options):
    return {"not": "an engine"}


def factory_crashes(**options):
    raise ZeroDivisionError("factory blew up")


class NotAnEngine:
    pass


class BadCapabilities(NumpyEngine):
    capabilities = {"ops": ["lookup"]}


NOT_CALLABLE = 42
