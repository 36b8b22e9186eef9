import dataclasses
import json

import numpy as np
import pytest

import engines
from lab import scenarios as S
from lab.scenarios import ids as gen
from lab.scenarios.execute import ScenarioExecution


def test_catalog_covers_the_required_workloads():
    cat = {s.name: s for s in S.catalog()}
    look = cat["monolith_lookup"]
    assert look.batch_size == 10_000 and look.tables[0].dim() == 32
    opt = cat["monolith_optimize"]
    assert opt.batch_size == 1_000_000 and opt.ids.kind == "monolith_dup"
    assert opt.ids.repeat == 4 and opt.tables[0].optimizers() == ("adagrad",)
    names = [v.name for v in opt.variants()]
    assert any("threads=2" in n for n in names) and any("dedup=True" in n for n in names)
    sweep = cat["lookup_sweep"].sweep
    assert set(sweep["dim"]) == {8, 32, 64, 128} and len(sweep["batch_size"]) >= 3
    assert set(cat["optimizer_sweep"].sweep["optimizer"]) == set(engines.api.OPTIMIZERS)
    assert cat["checkpoint_1m"].prefill == 1_000_000
    assert cat["checkpoint_4m"].prefill == 4_000_000
    assert cat["hash_filter_admission"].tables[0].hash_filter["occurrence_threshold"] == 3
    assert cat["ttl_eviction"].tables[0].config["expire_days"] == 1
    fused = cat["fused_multi_table"]
    assert len(fused.tables) >= 2 and {o.op for o in fused.ops} == {"fused_lookup",
                                                                      "fused_apply"}
    assert cat["zipf_training"].ids.kind == "zipf"


def test_quick_shrinks_every_scenario():
    for s in S.catalog():
        q = s.quick_version()
        assert q.quick == {}
        assert q.prefill <= 20_000 and q.batch_size <= 20_000, s.name
        assert q.prefill <= s.prefill and q.batch_size <= s.batch_size


def test_json_and_toml_round_trip(tmp_path):
    again = S.parse_text(S.dump_json(S.catalog()), "json")
    assert [s.to_dict() for s in again] == [s.to_dict() for s in S.catalog()]
    toml = tmp_path / "mine.toml"
    toml.write_text('''
name = "mine"
batch_size = 64
steps = 2
[ids]
kind = "zipf"
a = 1.5
vocab = 1000
[[tables]]
name = "t0"
learning_rates = [0.05]
config = { dim = 8, optimizer = "adagrad" }
[[ops]]
op = "apply_gradients"
enable_dedup = true
[[ops]]
op = "lookup"
''')
    (s,) = S.load_file(str(toml))
    assert s.ids.a == 1.5 and s.tables[0].learning_rates == (0.05,)
    assert s.ops[0].args == {"enable_dedup": True}
    assert S.Scenario.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize("text,fragment", [
    ('name = "x"\nbatch_sise = 3', "batch_sise"),
    ('name = "x"\n[[ops]]\nop = "lookkup"', "lookkup"),
    ('name = "x"\n[[ops]]\nop = "lookup"\nnshards = 2', "nshards"),
    ('name = "x"\n[ids]\nkind = "gauss"', "ids.kind"),
    ('name = "x"\nsweep = { color = [1] }', "color"),
    ('name = "x" = 1', "not valid TOML"),
    # numbers no float can hold: one line naming the field, never an OverflowError
    ('name = "x"\nsteps = 1' + "0" * 400, "steps must be <= 10000 .limit., got an integer "
                                          "of 401 digits"),
    ('name = "x"\n[[tables]]\nname = "t0"\nlearning_rates = [1' + "0" * 400 + "]\n"
     'config = { dim = 8 }', "learning_rates.. must be a finite number, got an integer of "
                             "401 digits"),
])
def test_bad_files_name_the_problem(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(S.ScenarioError, match=fragment):
        S.load_file(str(path))


def test_sweep_variants_override_config():
    s = S.Scenario(name="sw", sweep={"dim": (4, 8), "batch_size": (10, 20)})
    variants = s.variants()
    assert [v.name for v in variants] == ["sw[dim=4,batch_size=10]", "sw[dim=4,batch_size=20]",
                                          "sw[dim=8,batch_size=10]", "sw[dim=8,batch_size=20]"]
    assert variants[3].tables[0].dim() == 8 and variants[3].batch_size == 20
    assert variants[3].params == {"dim": 8, "batch_size": 20}


def test_id_distributions_are_seeded_and_shaped():
    dup = gen.draw_ids(S.IdSpec(kind="monolith_dup", repeat=4), 12, 0, 0)
    assert dup.tolist() == [x // 4 for x in range(12)]
    z1 = gen.draw_ids(S.IdSpec(kind="zipf", a=1.2, vocab=100), 1000, 7, 3)
    z2 = gen.draw_ids(S.IdSpec(kind="zipf", a=1.2, vocab=100), 1000, 7, 3)
    assert np.array_equal(z1, z2) and z1.dtype == np.int64 and z1.max() < 100
    # zipf: the hottest id dominates; uniform: no id does
    assert np.bincount(z1).max() > 100
    u = gen.draw_ids(S.IdSpec(kind="uniform", vocab=1000), 1000, 7, 3)
    assert np.bincount(u).max() < 20
    assert not np.array_equal(u, gen.draw_ids(S.IdSpec(kind="uniform", vocab=1000), 1000, 7, 4))


def test_execution_runs_every_op_of_every_step(tmp_path, training_scenario):
    ex = ScenarioExecution(training_scenario, engines.get("numpy"), str(tmp_path), capture=True)
    ex.setup()
    outs = list(ex.run())
    assert [(o.step, o.op) for o in outs][:5] == [(0, op.op) for op in training_scenario.ops]
    assert len(outs) == training_scenario.steps * len(training_scenario.ops)
    save = next(o for o in outs if o.op == "save")
    assert save.nbytes > 0 and len(save.output["files"]) == 1
    lookups = [o for o in outs if o.op == "lookup"]
    assert lookups[0].output["embeddings"].shape == (48, 4)
    # restore(fresh) brought back exactly what was saved
    assert np.array_equal(lookups[0].output["embeddings"], lookups[1].output["embeddings"])


def test_ttl_scenario_evicts_old_entries(tmp_path):
    (ttl,) = S.select(["ttl_eviction"], quick=True)
    ttl = dataclasses.replace(ttl, steps=3)
    ex = ScenarioExecution(ttl, engines.get("numpy"), str(tmp_path), capture=True)
    ex.setup()
    sizes = [o.output["size[t0]"] for o in ex.run() if o.op == "size"]
    # step 1 keeps steps 0 and 1 (50,000 s apart < 1 day); step 2 drops step 0's batch
    assert sizes[1] > sizes[0] and sizes[2] < sizes[1] + sizes[0]


def test_gate_profile_covers_every_op_family_on_native_cpu():
    from lab.scenarios.model import OPS
    from lab.scenarios.profiles import profile_scenarios, rules
    assert rules("gate")["engines"] == ("native-cpu",)
    scenarios = profile_scenarios("gate")
    assert {o.op for s in scenarios for o in s.ops} == OPS
    assert all(s.threads == 1 for s in scenarios)
    by_name = {s.name: s for s in scenarios}
    assert by_name["checkpoint_1m"].prefill == 100_000            # resized by the profile
    # one row-op family on a table far beyond the last-level cache (1 M rows x 67 words)
    large = by_name["large_table"]
    assert large.prefill == large.ids.vocab == 1_000_000
    assert {o.op for o in large.ops} == {"lookup", "assign", "apply_gradients"}
    with pytest.raises(S.ScenarioError, match="unknown profile"):
        profile_scenarios("nope")


def test_profiles_set_their_sampling_and_time_cap_comes_last():
    from lab.suite import sampling_for
    from lab.timing import QUICK_SAMPLING, Sampling
    gate = sampling_for("gate")
    assert gate.rounds == 10 and gate.cap_s == 0.4 and gate.min_samples == 5
    assert sampling_for("gate", time_cap=2.0).cap_s == 2.0
    assert sampling_for("gate", time_cap=2.0).rounds == 10
    assert sampling_for("default") == Sampling() and sampling_for(None) == Sampling()
    assert sampling_for(None, quick=True) == QUICK_SAMPLING


def test_overrides_use_the_quick_form():
    (s,) = S.select(["lookup_sweep[batch_size=1000,dim=8]"])
    small = s.with_overrides({"ids": {"vocab": 5}, "steps": 2})
    assert small.ids.vocab == 5 and small.ids.kind == "uniform" and small.steps == 2
    with pytest.raises(S.ScenarioError, match="unknown field"):
        s.with_overrides({"stepz": 2})
    with pytest.raises(S.ScenarioError, match="limit"):
        s.with_overrides({"steps": 10 ** 9})


def test_cycle_repeats_the_inputs_but_not_the_clock(tmp_path, storage_scenario):
    ex = ScenarioExecution(storage_scenario, engines.get("numpy"), str(tmp_path), cycle=2)
    assert [ex._inputs(s) for s in range(5)] == [0, 1, 0, 1, 0]
    ex.setup()
    sizes = []
    for step in range(6):
        outs = list(ex.run(steps=1, first_step=step))
        sizes.append(ex.tables["t0"].size())
        assert outs[0].op == "assign_add"
    assert sizes[1] == sizes[3] == sizes[5]          # after one cycle the table stops growing
