"""Where engines come from: the built-ins, installed plug-ins, run-time registrations and
`module:Factory` targets, behind one `get()` / `available()`.

A plug-in is an installed package that declares an entry point in the group
`hashtable_lab.engines`, as `name = "module:Factory"`. `Factory` is an Engine subclass or a
callable that returns an Engine; like a built-in class it may have a `probe()` that raises
EngineUnavailable(reason) when the engine cannot run here. Discovery reads package metadata
only: no plug-in module is imported until `available()` or `get()` asks for that engine.

A plug-in never breaks the lab for the other engines. Whatever goes wrong inside it (an import
error, `probe()` raising something other than EngineUnavailable, a factory that raises or
returns a non-Engine) becomes BrokenPlugin(reason), a kind of EngineUnavailable, so every caller
that skips unavailable engines skips it too, and `available()` marks it broken. Entry points
that cannot become engines at all (a name that shadows a built-in, a name two packages claim, a
name that is not a valid engine name) are listed by `rejected()`.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import re
from typing import Callable

from engines.api import Capabilities, Engine, EngineInfo, EngineUnavailable

ENTRY_POINT_GROUP = "hashtable_lab.engines"
BUILT_IN = "built-in"

# name -> "module:attribute" of an Engine subclass.
_BUILTIN = {
    "numpy": "engines.reference.numpy_engine:NumpyEngine",
    "native-cpu": "engines.native.cpu:NativeCpuEngine",
    "native-gpu": "engines.native.gpu:NativeGpuEngine",
    "tensorflow": "engines.reference.tf_engine:TensorFlowEngine",
    "tfra": "engines.tfra.engine:TfraEngine",
    "tf-native": "engines.tfops.engine:TfNativeEngine",
    "torchrec": "engines.torchrec.engine:TorchrecEngine",
}
# `:` separates a target's module from its attribute and a name from its options, `,` separates
# engines on the command line, `=` options: an engine name has none of them.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


class BrokenPlugin(EngineUnavailable):
    """A plug-in (or `module:Factory` target) that fails to load; `reason` says how."""


@dataclasses.dataclass(frozen=True)
class Rejected:
    """An entry point that did not become an engine."""
    name: str
    origin: str
    reason: str


@dataclasses.dataclass(frozen=True)
class _Source:
    origin: str                                  # what `hashlab engines` shows
    target: str = ""                             # "module:attribute" to import
    factory: Callable[..., Engine] | None = None  # a register()ed factory
    guarded: bool = True                         # any failure -> BrokenPlugin


_registered: dict[str, _Source] = {}
_plugins: tuple[dict[str, _Source], list[Rejected]] | None = None


# ---- discovery -----------------------------------------------------------------------------
def _discover() -> tuple[dict[str, _Source], list[Rejected]]:
    claims: dict[str, list[_Source]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        package = f"{dist.name} {dist.version}" if dist is not None else "an unknown package"
        claims.setdefault(ep.name, []).append(_Source(f"plug-in from {package} ({ep.value})",
                                                      target=ep.value))
    plugins, rejected = {}, []
    for name, sources in sorted(claims.items()):
        origins = sorted({s.origin for s in sources})
        reason = ""
        if name in _BUILTIN:
            reason = f"shadows the built-in engine {name!r}; rename the entry point"
        elif len(origins) > 1:
            reason = f"{len(origins)} packages claim this name: {'; '.join(origins)}"
        elif not _NAME.fullmatch(name):
            reason = ("not a valid engine name (letters, digits, '.', '_', '+', '-'; "
                      "no ':', ',' or '=')")
        elif not _TARGET.fullmatch(sources[0].target):
            reason = f"entry point value {sources[0].target!r} is not 'module:Factory'"
        if reason:
            rejected.extend(Rejected(name, origin, reason) for origin in origins)
        else:
            plugins[name] = sources[0]
    return plugins, rejected


def _plugin_table() -> tuple[dict[str, _Source], list[Rejected]]:
    global _plugins
    if _plugins is None:
        _plugins = _discover()
    return _plugins


def rediscover() -> None:
    """Forget the installed plug-ins, so the next call reads package metadata again (after a
    `pip install` in a running process, or in tests)."""
    global _plugins
    _plugins = None


def rejected() -> list[Rejected]:
    """Entry points in the plug-in group that were not registered as engines, with why."""
    return list(_plugin_table()[1])


# ---- run-time registration -----------------------------------------------------------------
def register(name: str, factory: Callable[..., Engine]) -> None:
    """Add an engine for this process (e.g. a test-only one). `factory(**options)` returns an
    Engine."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name: {name!r} is not a valid engine name")
    if name in _BUILTIN:
        raise ValueError(f"name: {name!r} is a built-in engine")
    plugin = _plugin_table()[0].get(name)
    if plugin is not None:
        raise ValueError(f"name: {name!r} is the {plugin.origin}")
    if not callable(factory):
        raise TypeError(f"factory: expected a callable returning an Engine, got "
                        f"{type(factory).__name__}")
    _registered[name] = _Source("registered in this process", factory=factory)


def unregister(name: str) -> None:
    _registered.pop(name, None)


def names(registered: bool = True) -> list[str]:
    """Built-ins first, then plug-ins, then (unless `registered` is False) engines registered
    in this process."""
    installed = list(_BUILTIN) + list(_plugin_table()[0])
    return installed + list(_registered) if registered else installed


def is_target(name: str) -> bool:
    """Whether `name` is a `module:Factory` target rather than an engine name."""
    return ":" in name


def _source(name: str) -> _Source:
    if not isinstance(name, str):
        raise TypeError(f"name: expected an engine name, got {type(name).__name__}")
    if name in _BUILTIN:
        return _Source(BUILT_IN, target=_BUILTIN[name], guarded=False)
    if name in _registered:
        return _registered[name]
    plugin = _plugin_table()[0].get(name)
    if plugin is not None:
        return plugin
    if is_target(name):
        if not _TARGET.fullmatch(name):
            raise ValueError(f"name: {name!r} is not a 'module:Factory' target")
        return _Source(f"{name} (not installed)", target=name)
    raise ValueError(f"name: unknown engine {name!r}; known: {names()}")


# ---- loading -------------------------------------------------------------------------------
def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _import(target: str):
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _load(source: _Source):
    """The factory behind a source, imported and probed."""
    if source.factory is not None:
        return source.factory
    try:
        factory = _import(source.target)
    except EngineUnavailable:
        raise
    except ImportError as exc:
        if not source.guarded:
            raise EngineUnavailable(f"cannot import {source.target.partition(':')[0]}: "
                                    f"{exc}") from exc
        raise BrokenPlugin(f"cannot import {source.target}: {_what(exc)}") from exc
    except Exception as exc:
        if not source.guarded:
            raise
        raise BrokenPlugin(f"cannot import {source.target}: {_what(exc)}") from exc
    if source.guarded:
        _check_factory(factory, source.target)
    probe = getattr(factory, "probe", None)
    if probe is not None:
        try:
            probe()
        except EngineUnavailable:
            raise
        except Exception as exc:
            if not source.guarded:
                raise
            raise BrokenPlugin(f"probe() raised {_what(exc)}") from exc
    return factory


def _check_factory(factory, target: str) -> None:
    if isinstance(factory, type):
        if not issubclass(factory, Engine):
            raise BrokenPlugin(f"{target} is a class but not an engines.Engine subclass")
        _check_capabilities(factory.capabilities, target)
    elif not callable(factory):
        raise BrokenPlugin(f"{target} is a {type(factory).__name__}, not an Engine class "
                           f"or factory")


def _check_capabilities(caps, what: str) -> None:
    if not isinstance(caps, Capabilities):
        raise BrokenPlugin(f"{what}: capabilities must be an engines.Capabilities, got "
                           f"{type(caps).__name__}")


def _instantiate(source: _Source, factory, options: dict) -> Engine:
    try:
        engine = factory(**options)
    except EngineUnavailable:
        raise
    except (TypeError, ValueError) as exc:
        if options or not source.guarded:
            raise      # bad options are the caller's mistake, as for built-ins
        raise BrokenPlugin(f"the factory raised {_what(exc)}") from exc
    except Exception as exc:
        if not source.guarded:
            raise
        raise BrokenPlugin(f"the factory raised {_what(exc)}") from exc
    if not isinstance(engine, Engine):
        raise BrokenPlugin(f"the factory returned a {type(engine).__name__}, not an "
                           f"engines.Engine")
    _check_capabilities(engine.capabilities, "the engine")
    return engine


def get(name: str, **options) -> Engine:
    """An engine instance: a registered name or a `module:Factory` target. Unknown names raise
    ValueError; engines that cannot run here EngineUnavailable (BrokenPlugin for a broken
    plug-in)."""
    source = _source(name)
    return _instantiate(source, _load(source), options)


def info(name: str) -> EngineInfo:
    """Whether one engine (name or target) can run here, or why not, and what it declares.
    Engine classes are not instantiated; other factories are called without options."""
    source = _source(name)
    try:
        factory = _load(source)
        if isinstance(factory, type) and issubclass(factory, Engine):
            caps = factory.capabilities
        else:
            caps = _instantiate(source, factory, {}).capabilities
    except BrokenPlugin as exc:
        return EngineInfo(name, False, exc.reason, None, origin=source.origin, broken=True)
    except EngineUnavailable as exc:
        return EngineInfo(name, False, exc.reason, None, origin=source.origin)
    return EngineInfo(name, True, "", caps, origin=source.origin)


def available() -> list[EngineInfo]:
    """Every engine, whether it can run here (or why not) and what it declares."""
    return [info(name) for name in names()]


# ---- engine specs (`--engines` in the lab, `--hashlab-engine` in the conformance plugin) ----
@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """`NAME[:key=value,...]` or `module:Factory[:key=value,...]`."""
    text: str
    name: str              # an engine name or a module:Factory target
    options: dict

    def make(self, **extra) -> Engine:
        return get(self.name, **{**self.options, **extra})


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_spec(text: str, what: str = "--engines") -> EngineSpec:
    """Split an engine spec; the part after the first ':' is a target's attribute when it has
    no '=', else the options. Raises ValueError naming `what` on a malformed spec."""
    parts = text.split(":")
    if len(parts) > 1 and parts[1] and "=" not in parts[1]:
        name, rest = f"{parts[0]}:{parts[1]}", ":".join(parts[2:])
        if not _TARGET.fullmatch(name):
            raise ValueError(f"{what}: {name!r} is not a 'module:Factory' target")
    else:
        name, rest = parts[0], ":".join(parts[1:])
    if not name:
        raise ValueError(f"{what}: empty engine name in {text!r}")
    options = {}
    for part in filter(None, rest.split(",")):
        key, eq, val = part.partition("=")
        if not eq or not key:
            raise ValueError(f"{what}: bad option {part!r} in {text!r} (use key=value)")
        options[key] = _value(val)
    return EngineSpec(text, name, options)
