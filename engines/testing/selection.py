"""Which engines the conformance suite runs on: `--hashlab-engine` specs, else
$HASHLAB_ENGINES, else every installed engine (built-in or plug-in; one registered at run time
with engines.register runs when named). Engines that declare threads run twice, with
threads=1 and threads=2 (results must be identical), unless the spec sets `threads`."""
from __future__ import annotations

import dataclasses
import os

import pytest

import engines
from engines.registry import EngineSpec, parse_spec


@dataclasses.dataclass(frozen=True)
class EngineParam:
    label: str            # the test id: the spec, plus -t1 / -t2 for the thread counts
    spec: EngineSpec
    extra: dict           # options the suite adds (threads)

    @property
    def options(self) -> dict:
        return {**self.spec.options, **self.extra}

    def make(self, **overrides) -> engines.Engine:
        return self.spec.make(**{**self.extra, **overrides})


def requested(option_values, env_value: str | None) -> tuple[list[str], bool]:
    """(spec texts, whether the user named them)."""
    if option_values:
        return list(option_values), True
    if env_value:
        return [s for s in env_value.split(",") if s], True
    # The installed engines only: one that a module registers for this process (a test double)
    # runs when named, and what a test module imports must not change the suite's engines.
    return engines.names(registered=False), False


def engine_params(texts, explicit: bool) -> list:
    """pytest params of EngineParam. An engine that cannot run here is skipped with the
    registry's reason; a broken plug-in is a usage error when the user named it (they want to
    know), and skipped otherwise (it must not stop the run for every other engine)."""
    params = []
    for text in texts:
        try:
            spec = parse_spec(text, "--hashlab-engine")
            info = engines.info(spec.name)
        except (ValueError, TypeError) as exc:
            raise pytest.UsageError(str(exc)) from exc
        if info.broken and explicit:
            raise pytest.UsageError(f"--hashlab-engine: engine {text} is broken: {info.reason}")
        if not info.available:
            kind = "broken" if info.broken else "unavailable"
            skip = pytest.mark.skip(reason=f"engine {text} {kind}: {info.reason}")
            params.append(pytest.param(EngineParam(text, spec, {}), id=text, marks=skip))
        elif info.capabilities.threads and "threads" not in spec.options:
            params += [pytest.param(EngineParam(f"{text}-t{n}", spec, {"threads": n}),
                                    id=f"{text}-t{n}") for n in (1, 2)]
        else:
            params.append(pytest.param(EngineParam(text, spec, {}), id=text))
    return params


_PARAMS = pytest.StashKey[list]()


def params_for(config) -> list:
    """The session's engine params (computed once: probing engines can be slow)."""
    if _PARAMS not in config.stash:
        texts, explicit = requested(config.getoption("hashlab_engine", default=None),
                                    os.environ.get("HASHLAB_ENGINES"))
        config.stash[_PARAMS] = engine_params(texts, explicit)
    return config.stash[_PARAMS]
