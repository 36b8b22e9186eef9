"""Every name engines, configs, checkpoints and scenarios share, listed once.

Each other list derives from this module: `engines.config` (the config builder/parser),
`engines.api.Capabilities` (what an engine may declare), `engines.formats.entry_codec`
(how optimizer state words map onto an EntryDump), the scenario catalog, and the native
modules, whose C++ enums (engines/native/src/table_config.h) are checked against these names
when they load.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

TABLE_OPS = ("assign", "assign_add", "lookup", "lookup_entry", "apply_gradients", "size",
             "save", "restore", "save_as_tensor")
FILTERS = ("sliding", "probabilistic", "dummy")

# A word kind of an optimizer's state: "vec" = D float32 words, "f32" = one float32 word,
# "i64" = one int64 held in two words.
_WORDS = {"vec": None, "f32": 1, "i64": 2}


@dataclasses.dataclass(frozen=True)
class OptimizerInfo:
    """An optimizer's per-entry state, in the order its words are stored, and where the
    checkpoint keeps it: `dump` is the SingleOptimizerDump member (None: no dump at all),
    `fields` are (proto field, word kind) pairs of that member in state order."""
    dump: str | None
    fields: tuple[tuple[str, str], ...] = ()

    def state_words(self, dim: int) -> int:
        return sum(dim if kind == "vec" else _WORDS[kind] for _, kind in self.fields)


OPTIMIZERS: dict[str, OptimizerInfo] = {
    "sgd": OptimizerInfo("sgd"),
    "adagrad": OptimizerInfo("adagrad", (("norm", "vec"),)),
    "ftrl": OptimizerInfo("ftrl", (("norm", "vec"), ("zero", "vec"))),
    "adadelta": OptimizerInfo("adadelta", (("accum", "vec"), ("accum_update", "vec"))),
    "adam": OptimizerInfo("adam", (("m", "vec"), ("v", "vec"), ("beta1_power", "f32"),
                                   ("beta2_power", "f32"))),
    "amsgrad": OptimizerInfo("amsgrad", (("m", "vec"), ("v", "vec"), ("vhat", "vec"),
                                         ("beta1_power", "f32"), ("beta2_power", "f32"))),
    "momentum": OptimizerInfo("momentum", (("n", "vec"),)),
    "rmsprop": OptimizerInfo("rmsprop", (("n", "vec"),)),
    "rmspropv2": OptimizerInfo("rmspropv2", (("n", "vec"),)),
    "batch_softmax": OptimizerInfo("batch_softmax", (("global_step", "i64"),)),
    "moving_average": OptimizerInfo(None),
    "group_adagrad": OptimizerInfo("group_adagrad", (("grad_square_sum", "f32"),)),
}
# In Monolith's config proto but not constructible there either (its factory throws).
UNCONSTRUCTIBLE_OPTIMIZERS = ("dynamic_wd_adagrad", "group_ftrl", "dc")

# Initializer / compressor name -> the config fields its math reads.
INITIALIZERS: dict[str, tuple[str, ...]] = {
    "zeros": (), "ones": (), "constants": ("constant",), "random_uniform": ("minval", "maxval"),
}
COMPRESSORS: dict[str, tuple[str, ...]] = {
    "fp32": (), "fp16": (), "fixed_r8": ("r",),
    "one_bit": ("step_size", "init_scale", "max_scale", "amplitude"),
}
NO_COMPRESSOR = "none"   # how the native config text names a segment without comp_config


def check_native_names(module) -> None:
    """Raise ImportError when a native module's enums name other values than these lists
    (a name added on one side only must fail at load, not as a silent mismatch)."""
    pairs: tuple[tuple[str, Callable[[], object], tuple], ...] = (
        ("Optimizer", lambda: module.Optimizer, tuple(OPTIMIZERS)),
        ("Initializer", lambda: module.Initializer, tuple(INITIALIZERS)),
        ("Compressor", lambda: module.Compressor, (NO_COMPRESSOR, *COMPRESSORS)),
    )
    for enum_name, get, expected in pairs:
        got = tuple(member.name for member in sorted(get(), key=lambda m: m.value))
        if got != expected:
            raise ImportError(f"{module.__name__}.{enum_name} names {got}, engines.vocabulary "
                              f"has {expected}: rebuild the native modules")
