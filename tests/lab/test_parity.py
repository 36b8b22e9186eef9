import dataclasses

import pandas as pd
import pytest

from engines.api import Divergence
from lab.engine_select import resolve
from lab.parity import COLUMNS, divergences, run_parity, summarize


def _rows(scenarios, names):
    choices, unusable = resolve(names)
    return run_parity(scenarios, choices, unusable)


def _status(rows, engine, scenario):
    s = summarize(rows)
    return s[(s.engine == engine) & (s.scenario == scenario)].iloc[0]


def test_numpy_passes_and_broken_engines_are_caught(broken_engines, storage_scenario,
                                                    training_scenario):
    rows = _rows([storage_scenario, training_scenario],
                 ["numpy", "test-one-ulp-lookup", "test-skipping-apply"])
    assert list(rows.columns) == COLUMNS
    numpy_rows = rows[rows.engine == "numpy"]
    assert (numpy_rows.status == "pass").all() and numpy_rows.max_ulp.max() == 0

    one_ulp = rows[(rows.engine == "test-one-ulp-lookup") & (rows.scenario == "tiny_storage")]
    lookups = one_ulp[one_ulp.op == "lookup"]
    assert (lookups.status == "fail").all()
    assert lookups.max_ulp.max() == 1 and "bit-exact" in lookups.note.iloc[0]
    # what does not go through lookup still matches
    assert (one_ulp[one_ulp.op.isin(["assign_add", "size", "lookup_entry"])].status
            == "pass").all()

    skipping = _status(rows, "test-skipping-apply", "tiny_training")
    assert skipping.status == "fail" and skipping.max_ulp > 4
    first_fail = rows[(rows.engine == "test-skipping-apply") & (rows.status == "fail")].iloc[0]
    assert first_fail.step == 1            # step 1's update was dropped: new ids missing
    assert first_fail.op == "apply_gradients" and "size[t0]" in first_fail.note


def test_one_ulp_after_optimizer_math_is_within_tolerance(broken_engines, training_scenario):
    """Once a table went through optimizer math, lookups are compared within 4 ulp."""
    scenario = dataclasses.replace(training_scenario, name="tiny_training_lookup_only",
                                   ops=training_scenario.ops[:2])
    rows = _rows([scenario], ["test-one-ulp-lookup"])
    assert (rows.status == "pass").all()
    assert rows[rows.op == "lookup"].max_ulp.max() == 1
    assert rows[rows.op == "lookup"].note.str.startswith("[ulp]").all()


def _with_divergence(engine, key, declared, scenario):
    divergences.register(engine, key, declared)
    try:
        return _rows([scenario], [engine])
    finally:
        divergences.unregister(engine)


NUDGE = Divergence("rounds 10 ulp up", max_ulp=12, abs_floor=6e-7, per_step=True)


def test_known_divergence_within_its_declared_bound(broken_engines, training_scenario):
    """The nudging engine is 10 ulp off per optimizer step (6e-7 absolute for weights below
    1, which is what an ulp count misses where a weight passes next to zero): that bound, per
    step, covers every op of the run, the lookups and checkpoints after the updates
    included (issue 20, row 8)."""
    rows = _with_divergence("test-nudging", "adagrad", NUDGE, training_scenario)
    s = _status(rows, "test-nudging", "tiny_training")
    assert s.status == "known_divergence" and "rounds 10 ulp up" in s.note
    assert s.max_ulp > 12 and s.bound == ("12 ulp or 6e-07 absolute per step (36 ulp or "
                                          "1.8e-06 absolute after 3)")
    assert not (rows.status == "fail").any()
    known = rows[rows.status == "known_divergence"]
    assert set(known.op) >= {"save", "lookup"}
    assert (known.bound != "").all() and (known.max_abs_err <= 6e-7 * 3).all()


@pytest.mark.parametrize("declared,why", [
    (dataclasses.replace(NUDGE, per_step=False),
     "exceeds the declared bound (12 ulp or 6e-07 absolute)"),
    (Divergence("rounds 10 ulp up", max_ulp=4, per_step=True), "exceeds the declared"),
    ("rounds 10 ulp up", "without a bound"),
])
def test_known_divergence_beyond_its_bound_fails(broken_engines, training_scenario,
                                                 declared, why):
    """The same bound in all instead of per step is exceeded after three steps, 4 ulp per step
    at once; a declaration without a bound excuses nothing. Before issue 20 every mismatch
    matching a divergence was "known", whatever its size, and so was every later op on the
    table."""
    engine = "test-nudging"
    if isinstance(declared, str):      # as an engine's attribute may still say it
        import engines
        nudging = type(engines.get(engine))
        bare = type("BareNudging", (nudging,), {"name": "test-nudging-bare",
                                                 "known_divergences": {"adagrad": declared}})
        engines.register(bare.name, lambda **o: bare(**o))
        try:
            rows = _rows([training_scenario], [bare.name])
        finally:
            engines.unregister(bare.name)
        engine = bare.name
    else:
        rows = _with_divergence(engine, "adagrad", declared, training_scenario)
    s = _status(rows, engine, "tiny_training")
    assert s.status == "fail" and why in s.note, s.note


def test_skipped_steps_are_not_excused_by_a_divergence(broken_engines, training_scenario):
    rows = _with_divergence("test-skipping-apply", "adagrad",
                            Divergence("drops every second step", max_ulp=4, per_step=True),
                            training_scenario)
    s = _status(rows, "test-skipping-apply", "tiny_training")
    assert s.status == "fail" and "exceeds the declared bound" in s.note


def test_divergence_keys_and_declarations():
    class Attr:
        known_divergences = {"apply_gradients:adagrad": Divergence("rounds differently",
                                                                   max_ulp=2)}
    known = divergences.known_for(Attr(), "x")
    [(key, declared)] = divergences.match(known, "apply_gradients", ["adagrad"])
    assert key == "apply_gradients:adagrad" and declared.why == "rounds differently"
    assert divergences.match(known, "apply_gradients", ["sgd"]) == []
    both = {"adagrad": Divergence("a", max_ulp=2), "ftrl": Divergence("f", max_rel=1e-3)}
    assert [k for k, _ in divergences.match(both, "fused_apply", ["adagrad", "sgd", "ftrl"])] \
        == ["adagrad", "ftrl"]
    with pytest.raises(ValueError, match="bound"):
        Divergence("no bound")
    with pytest.raises(TypeError, match="Divergence"):
        divergences.register("x", "adagrad", "a bare explanation")
    assert Divergence("w", max_ulp=2, per_step=True).describe(3) == \
        "2 ulp per step (6 ulp after 3)"


def test_undeclared_ops_and_unavailable_engines_are_skipped_with_reason(
        no_lookup_entry_engine, storage_scenario):
    choices, _ = resolve([no_lookup_entry_engine])
    rows = run_parity([storage_scenario], choices, [("ghost-engine", "not built here")])
    mine = rows[rows.engine == no_lookup_entry_engine]
    entry = mine[mine.op == "lookup_entry"]
    assert len(entry) == 2 and (entry.status == "skipped").all()
    assert "lookup_entry not declared" in entry.note.iloc[0]
    assert (mine[mine.op != "lookup_entry"].status == "pass").all()
    assert _status(rows, no_lookup_entry_engine, "tiny_storage").status == "pass"
    ghost = rows[rows.engine == "ghost-engine"]
    assert ghost.status.tolist() == ["skipped"] and "not built here" in ghost.note.iloc[0]


def test_threads_not_declared_skips_multithreaded_variant(storage_scenario):
    scenario = dataclasses.replace(storage_scenario, name="tiny_t2", threads=2)
    rows = _rows([scenario], ["numpy"])
    assert rows.status.tolist() == ["skipped"] and "threads" in rows.note.iloc[0]


def test_engine_crash_is_a_failure_not_an_exception(training_scenario):
    import engines
    from engines.reference.numpy_engine import NumpyEngine

    class Crashing(NumpyEngine):
        name = "test-crashing"

        def _create_table(self, *args):
            table = super()._create_table(*args)
            table._stage_restore = lambda basename: (_ for _ in ()).throw(OSError("disk gone"))
            return table
    engines.register("test-crashing", lambda **o: Crashing(**o))
    try:
        rows = _rows([training_scenario], ["test-crashing"])
    finally:
        engines.unregister("test-crashing")
    assert rows.status.iloc[-1] == "fail" and "disk gone" in rows.note.iloc[-1]
    assert rows.op.iloc[-1] == "restore"


def test_summary_orders_statuses(storage_scenario):
    rows = pd.DataFrame([
        dict(scenario="s", engine="e", threads=1, step=0, op_index=0, op="lookup",
             status="pass", max_abs_err=0.0, max_rel_err=0.0, max_ulp=0.0, bound="", note=""),
        dict(scenario="s", engine="e", threads=1, step=0, op_index=1, op="lookup_entry",
             status="skipped", max_abs_err=None, max_rel_err=None, max_ulp=None, bound="",
             note="x"),
        dict(scenario="s", engine="f", threads=1, step=0, op_index=0, op="lookup",
             status="known_divergence", max_abs_err=1e-7, max_rel_err=1e-7, max_ulp=9.0,
             bound="10 ulp", note="why"),
        dict(scenario="s", engine="f", threads=1, step=1, op_index=0, op="lookup",
             status="fail", max_abs_err=1.0, max_rel_err=1.0, max_ulp=1e9, bound="", note="bad"),
    ])
    s = summarize(rows)
    assert s.set_index("engine").status.to_dict() == {"e": "pass", "f": "fail"}
    assert s.set_index("engine").note["f"] == "bad"
    assert s.set_index("engine").bound.to_dict() == {"e": "", "f": "10 ulp"}


def test_entries_whose_bytes_differ_are_compared_by_value():
    """lookup_entry outputs that differ in bytes are parsed and compared float by float (the
    path TensorFlow's optimizer state takes), on the protobuf runtime installed here."""
    import numpy as np

    from engines.protos.embedding_hash_table_pb2 import EntryDump
    from lab.parity.compare import EXACT, ULP, compare_outputs

    def dump(value):
        d = EntryDump()
        d.id = 7
        d.num.extend([np.float32(0.5), np.float32(value)])
        return d.SerializeToString()
    ref = [dump(1.0), b""]
    one_ulp = [dump(np.nextafter(np.float32(1.0), np.float32(2.0))), b""]
    near = compare_outputs({"entries": one_ulp}, {"entries": ref}, ULP)
    assert near.ok and near.stats.max_ulp == 1, near.note
    assert not compare_outputs({"entries": one_ulp}, {"entries": ref}, EXACT).ok
    far = compare_outputs({"entries": [dump(1.5), b""]}, {"entries": ref}, ULP)
    assert not far.ok and "not a valid" not in far.note


def _one_ulp_off(record: bytes) -> bytes:
    """The same EntryDump with its first float (an embedding or optimizer value) 1 ulp up."""
    import numpy as np
    from google.protobuf.descriptor import FieldDescriptor

    from engines.protos.embedding_hash_table_pb2 import EntryDump
    msg = EntryDump.FromString(record)

    def bump(m) -> bool:
        for field, value in m.ListFields():
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for sub in (value if isinstance(value, (list,)) or hasattr(value, "add")
                            else [value]):
                    if bump(sub):
                        return True
            elif field.type == FieldDescriptor.TYPE_FLOAT:
                if hasattr(value, "append"):                     # repeated float
                    value[0] = float(np.nextafter(np.float32(value[0]), np.float32(np.inf)))
                else:
                    setattr(m, field.name,
                            float(np.nextafter(np.float32(value), np.float32(np.inf))))
                return True
        return False
    assert bump(msg)
    return msg.SerializeToString()


def test_lookup_entry_within_ulps_decodes_every_field():
    """A lookup_entry that differs by an ulp is not byte-identical, so the comparison decodes
    the EntryDumps field by field (the path the full catalog reaches for adam, amsgrad and
    batch_softmax on tensorflow)."""
    import numpy as np

    import engines
    from lab.parity.compare import EXACT, ULP, compare_outputs
    for optimizer in ("adam", "amsgrad", "batch_softmax"):
        t = engines.get("numpy").create_table(engines.table_config(dim=4, optimizer=optimizer))
        ids = np.array([3, 5, 8], np.int64)
        t.apply_gradients(ids, np.full((3, 4), 0.5, np.float32), global_step=1)
        expected = t.lookup_entry(ids)
        actual = [_one_ulp_off(expected[0])] + expected[1:]
        assert actual[0] != expected[0]
        ok = compare_outputs({"entries": actual}, {"entries": expected}, ULP)
        assert ok.ok and ok.stats.max_ulp == 1, (optimizer, ok.note)
        assert "values within tolerance" in ok.note
        exact = compare_outputs({"entries": actual}, {"entries": expected}, EXACT)
        assert not exact.ok and "1 of" in exact.note and "bit-exact" in exact.note, exact.note
