"""The table config as the create op's `config` attr: a canonical text form of a `TableSpec`.

Adapter until the core's own config marshaller lands: it writes exactly the fields the native
binding (engines/native/cpu.py) passes to the C++ core, so both build the same
`hashlab::TableConfig`; floats are written as the hex form of their f32 value, so nothing is
rounded on the way. engines/tfops/src/config_text.cc parses it strictly.
"""
from __future__ import annotations

import numpy as np

from engines.native.cpu import _segment_dict

HEADER = "hashlab-table-config 1"
_INT_KEYS = ("dim", "offset", "state_offset", "state_words", "init", "opt", "comp",
             "use_nesterov", "step_size")
_FLOAT_KEYS = ("constant", "minval", "maxval", "learning_rate", "weight_decay_factor",
               "initial_accumulator_value", "beta", "l1_regularization_strength",
               "l2_regularization_strength", "averaging_ratio", "epsilon", "beta1", "beta2",
               "momentum", "r", "init_scale", "max_scale", "amplitude")
# What the core assumes for a field the segment does not carry (bindings.cc make_config).
_DEFAULTS = {"use_nesterov": 0, "step_size": 200}


def _f32_hex(x) -> str:
    return float(np.float32(x)).hex()


def config_text(spec) -> str:
    """The canonical text of an engines.config.TableSpec."""
    lines = [HEADER, f"table dim={spec.dim} state_words={spec.state_words} "
                     f"segments={spec.num_segments}"]
    for seg in spec.segments:
        d = _segment_dict(seg)
        fields = [f"{k}={int(d.get(k, _DEFAULTS.get(k, 0)))}" for k in _INT_KEYS]
        fields += [f"{k}={_f32_hex(d.get(k, 0.0))}" for k in _FLOAT_KEYS]
        lines.append("segment " + " ".join(fields))
    overrides = " ".join(f"{slot}:{days}" for slot, days in sorted(spec.slot_expire_days.items()))
    lines.append(f"expire default={spec.default_expire_days} {overrides}".rstrip())
    return "\n".join(lines) + "\n"
