"""Which engines a lab command runs: `--engines numpy native-cpu tensorflow:kernels=tf`.

A spec is an engine name, optionally with `:key=value,...` options passed to
`engines.get`. Unavailable engines are reported with the registry's reason and skipped, never
replaced by another engine.
"""
from __future__ import annotations

import dataclasses

import engines


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    label: str                 # the spec as given (what reports show)
    name: str
    options: dict
    capabilities: object
    known_divergences: dict

    def make(self, threads: int = 1):
        """A fresh engine instance; `threads` is passed only to engines that declare it."""
        opts = dict(self.options)
        if self.capabilities.threads:
            opts["threads"] = threads
        return engines.get(self.name, **opts)


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_spec(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    options = {}
    for part in filter(None, rest.split(",")):
        key, eq, val = part.partition("=")
        if not eq or not key:
            raise ValueError(f"--engines: bad option {part!r} in {spec!r} (use key=value)")
        options[key] = _value(val)
    return name, options


def resolve(specs=None) -> tuple[list[EngineChoice], list[tuple[str, str]]]:
    """(usable engines, [(label, reason)] for the unusable ones). Unknown names raise
    ValueError. Default: every registered engine."""
    from lab.parity.divergences import known_for
    labels = list(specs) if specs else engines.names()
    usable, unusable = [], []
    for label in labels:
        name, options = parse_spec(label)
        if name not in engines.names():
            raise ValueError(f"--engines: unknown engine {name!r}; known: {engines.names()}")
        try:
            eng = engines.get(name, **options)
        except engines.EngineUnavailable as exc:
            unusable.append((label, exc.reason))
            continue
        except TypeError as exc:
            raise ValueError(f"--engines: bad options for {name!r}: {exc}") from exc
        usable.append(EngineChoice(label, name, options, eng.capabilities,
                                   known_for(eng, name)))
    return usable, unusable
