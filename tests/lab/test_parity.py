import dataclasses

import pandas as pd

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
    rows = _rows([storage_scenario, training_scenario], ["numpy", *broken_engines])
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


def test_known_divergence_from_registry_and_engine_attribute(broken_engines,
                                                             training_scenario):
    divergences.register("test-skipping-apply", "adagrad", "drops every second step")
    try:
        rows = _rows([training_scenario], ["test-skipping-apply"])
    finally:
        divergences.unregister("test-skipping-apply")
    s = _status(rows, "test-skipping-apply", "tiny_training")
    assert s.status == "known_divergence" and "drops every second step" in s.note
    assert not (rows.status == "fail").any()

    class Attr:
        known_divergences = {"apply_gradients:adagrad": "rounds differently"}
    known = divergences.known_for(Attr(), "x")
    assert divergences.match(known, "apply_gradients", ["adagrad"]).endswith(
        "rounds differently")
    assert divergences.match(known, "apply_gradients", ["sgd"]) is None


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
             status="pass", max_abs_err=0.0, max_rel_err=0.0, max_ulp=0.0, note=""),
        dict(scenario="s", engine="e", threads=1, step=0, op_index=1, op="lookup_entry",
             status="skipped", max_abs_err=None, max_rel_err=None, max_ulp=None, note="x"),
        dict(scenario="s", engine="f", threads=1, step=0, op_index=0, op="lookup",
             status="known_divergence", max_abs_err=1e-7, max_rel_err=1e-7, max_ulp=9.0,
             note="why"),
        dict(scenario="s", engine="f", threads=1, step=1, op_index=0, op="lookup",
             status="fail", max_abs_err=1.0, max_rel_err=1.0, max_ulp=1e9, note="bad"),
    ])
    s = summarize(rows)
    assert s.set_index("engine").status.to_dict() == {"e": "pass", "f": "fail"}
    assert s.set_index("engine").note["f"] == "bad"
