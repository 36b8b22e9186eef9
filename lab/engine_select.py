"""Which engines a lab command runs: `--engines numpy native-cpu tensorflow:kernels=tf`.

A spec is an engine name (built-in or plug-in) or a `module:Factory` target (an engine that is
not installed), optionally with `:key=value,...` options passed to `engines.get`; see
`engines.registry.parse_spec`. Unavailable and broken engines are reported with the registry's
reason and skipped, never replaced by another engine.
"""
from __future__ import annotations

import dataclasses

import engines
from engines.registry import is_target, parse_spec

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


def resolve(specs=None) -> tuple[list[EngineChoice], list[tuple[str, str]]]:
    """(usable engines, [(label, reason)] for the unusable ones). Unknown names raise
    ValueError. Default: every registered engine."""
    from lab.parity.divergences import known_for
    labels = list(specs) if specs else engines.names()
    usable, unusable = [], []
    for label in labels:
        spec = parse_spec(label)
        name, options = spec.name, spec.options
        if not is_target(name) and name not in engines.names():
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
