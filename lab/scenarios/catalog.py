"""The built-in scenario catalog.

Monolith's own benchmark workloads (core §7.1 bottom,
`hash_table_ops_benchmark.py`; docs/perf_anchors.md §5) come first, then sweeps and feature
scenarios. Every scenario carries its `quick` overrides: the `--quick` versions keep the numpy
reference engine to seconds per scenario on a 2-core machine.
"""
from __future__ import annotations

from engines import vocabulary
from lab.scenarios.model import IdSpec, OpSpec, Scenario, TableDef

ALL_OPTIMIZERS = tuple(vocabulary.OPTIMIZERS)


def _op(name, **args):
    table = args.pop("table", None)
    tables = args.pop("tables", None)
    return OpSpec(name, table=table, tables=tuple(tables) if tables else None, args=args)


def _table(name="t0", lrs=(0.1,), **config):
    return TableDef(name=name, config=config, learning_rates=tuple(lrs))


CATALOG = (
    Scenario(
        name="monolith_lookup",
        description="Monolith's hash_table_ops_benchmark test_lookup: assign_add ones to "
                    "10,000 ids at dim 32, then look the same 10,000 ids up (each Monolith "
                    "run re-executes the assign_add); single- and multi-threaded.",
        tables=(_table(dim=32, optimizer="sgd"),),
        ops=(_op("assign_add", values="ones"), _op("lookup")),
        batch_size=10_000, ids=IdSpec(kind="monolith_dup", repeat=1), steps=10,
        sweep={"threads": (1, 2)},
        quick={"steps": 3}, tags=("monolith",)),
    Scenario(
        name="monolith_optimize",
        description="Monolith's *_optimize benchmarks: Adagrad (lr 0.001) on 1,000,000 ids "
                    "`x // 4` (250,000 distinct ids, each 4 times) at dim 32; one and two "
                    "threads, with and without dedup.",
        tables=(_table(dim=32, optimizer="adagrad", lrs=(0.001,)),),
        ops=(_op("apply_gradients"),),
        batch_size=1_000_000, ids=IdSpec(kind="monolith_dup", repeat=4), steps=3,
        sweep={"threads": (1, 2), "dedup": (False, True)},
        quick={"batch_size": 20_000, "steps": 2}, tags=("monolith",)),
    Scenario(
        name="storage_ops",
        description="Every storage op on one prefilled table (100,000 ids at dim 32): assign "
                    "new values to a batch of 10,000 ids uniform over twice the prefill "
                    "(about half of them new), assign_add to it, look it up, read 1,000 "
                    "entries and the size.",
        tables=(_table(dim=32, optimizer="sgd"),),
        ops=(_op("assign"), _op("assign_add", values="ones"), _op("lookup"),
             _op("lookup_entry", batch=1_000), _op("size")),
        prefill=100_000, batch_size=10_000, ids=IdSpec(kind="uniform", vocab=200_000),
        steps=5, quick={"prefill": 10_000, "batch_size": 1_000, "ids": {"vocab": 20_000},
                        "steps": 3},
        tags=("storage",)),
    Scenario(
        name="large_table",
        description="A table far beyond any last-level cache: 4,000,000 ids at dim 32 with "
                    "Adagrad state (about 1.1 GB of rows); each step looks up, assigns and "
                    "updates 100,000 ids drawn uniformly from it (all present). Every row "
                    "touched is a DRAM access, so the memory access pattern decides the "
                    "speed.",
        tables=(_table(dim=32, optimizer="adagrad", lrs=(0.05,)),),
        ops=(_op("lookup"), _op("assign"), _op("apply_gradients")),
        prefill=4_000_000, batch_size=100_000, ids=IdSpec(kind="uniform", vocab=4_000_000),
        steps=3, quick={"prefill": 20_000, "batch_size": 5_000, "ids": {"vocab": 20_000},
                        "steps": 2},
        tags=("memory",)),
    Scenario(
        name="lookup_sweep",
        description="Lookup throughput over batch size and dim: a table of 100,000 ids, ids "
                    "uniform over twice that range (about 50% hits, as Monolith's BM_Find).",
        tables=(_table(dim=32, optimizer="sgd"),),
        ops=(_op("lookup"),),
        prefill=100_000, ids=IdSpec(kind="uniform", vocab=200_000), steps=5,
        sweep={"batch_size": (1_000, 10_000, 100_000), "dim": (8, 32, 64, 128)},
        quick={"prefill": 10_000, "ids": {"vocab": 20_000}, "steps": 3,
               "sweep": {"batch_size": (256, 4_096), "dim": (8, 32, 64, 128)}},
        tags=("sweep",)),
    Scenario(
        name="optimizer_sweep",
        description="Every optimizer: apply_gradients on zipf ids (new and existing), then "
                    "lookup and lookup_entry (embedding and optimizer state).",
        tables=(_table(dim=16, optimizer="sgd"),),
        ops=(_op("apply_gradients"), _op("lookup"), _op("lookup_entry", batch=512)),
        prefill=10_000, batch_size=10_000, ids=IdSpec(kind="zipf", a=1.2, vocab=100_000),
        steps=3, sweep={"optimizer": ALL_OPTIMIZERS},
        quick={"prefill": 1_000, "batch_size": 1_000, "steps": 2}, tags=("sweep",)),
    Scenario(
        name="checkpoint_1m",
        description="Save 1,000,000 entries (Monolith's sharded TFRecord layout, Adagrad "
                    "state included) and restore them into a fresh table.",
        tables=(_table(dim=8, optimizer="adagrad"),),
        ops=(_op("save"), _op("restore", fresh=True), _op("size")),
        prefill=1_000_000, steps=1, warmup=0,
        quick={"prefill": 10_000}, tags=("checkpoint",)),
    Scenario(
        name="checkpoint_4m",
        description="Save and restore 4,000,000 entries (4 shards by the automatic rule).",
        tables=(_table(dim=8, optimizer="adagrad"),),
        ops=(_op("save"), _op("restore", fresh=True), _op("size")),
        prefill=4_000_000, steps=1, warmup=0,
        quick={"prefill": 20_000, "ops": ({"op": "save", "nshards": 4},
                                          {"op": "restore", "fresh": True}, {"op": "size"})},
        tags=("checkpoint",)),
    Scenario(
        name="hash_filter_admission",
        description="Sliding hash filter with occurrence threshold 3: ids enter the table "
                    "only from their 4th occurrence; intercept_gradient, apply_gradients, "
                    "lookup and size per step.",
        tables=(TableDef(name="t0", config={"dim": 8, "optimizer": "sgd"},
                         hash_filter={"kind": "sliding", "capacity": 1_000_000, "split_num": 7,
                                      "occurrence_threshold": 3}),),
        ops=(_op("filter"), _op("apply_gradients"), _op("lookup"), _op("size")),
        batch_size=4_096, ids=IdSpec(kind="zipf", a=1.3, vocab=50_000), steps=5,
        quick={"batch_size": 512, "steps": 4}, tags=("filter",)),
    Scenario(
        name="ttl_eviction",
        description="TTL: expire_days=1 and a clock of 50,000 s per step; each step writes a "
                    "batch, saves (entries 86,400 s older than the newest write are dropped), "
                    "restores into a fresh table and looks the batch up.",
        tables=(_table(dim=8, optimizer="sgd", expire_days=1),),
        ops=(_op("assign_add"), _op("save"), _op("restore", fresh=True), _op("lookup"),
             _op("size")),
        batch_size=5_000, ids=IdSpec(kind="uniform", vocab=1_000_000), steps=4,
        seconds_per_step=50_000, warmup=0,
        quick={"batch_size": 500}, tags=("ttl",)),
    Scenario(
        name="fused_multi_table",
        description="Fused lookup and optimize over 3 tables (dims 8/16/32; adagrad, sgd, "
                    "ftrl) and 4 shards, shard-major blocks as Monolith's fused ops.",
        tables=(_table("emb8", dim=8, optimizer="adagrad"),
                _table("emb16", dim=16, optimizer="sgd"),
                _table("emb32", dim=32, optimizer="ftrl")),
        ops=(_op("fused_lookup", num_shards=4), _op("fused_apply", num_shards=4),
             _op("fused_lookup", num_shards=4)),
        prefill=10_000, batch_size=12_000, ids=IdSpec(kind="zipf", a=1.2, vocab=100_000),
        steps=3, quick={"prefill": 1_000, "batch_size": 1_200, "steps": 2},
        tags=("fused",)),
    Scenario(
        name="zipf_training",
        description="A training loop on zipf(1.1) ids: lookup, gradients of 0.5*||e-0.25||^2 "
                    "from the looked-up rows, Adagrad apply with dedup; repeated over steps.",
        tables=(_table(dim=32, optimizer="adagrad", lrs=(0.05,)),),
        ops=(_op("lookup"), _op("apply_gradients", grads="from_lookup", enable_dedup=True)),
        batch_size=20_000, ids=IdSpec(kind="zipf", a=1.1, vocab=1_000_000), steps=20,
        quick={"batch_size": 2_000, "steps": 4}, tags=("training",)),
)


# TensorFlow's distributed runtime: one table sharded over ps tasks of an in-process cluster.
SHARDED = (
    Scenario(
        name="sharded_lookup",
        description="Lookup of 100,000 prefilled ids (dim 32) from a table sharded over 1, 2 "
                    "and 4 parameter-server tasks of an in-process cluster (tf-native: TF "
                    "partitions the ids, sends them to the tasks over gRPC on loopback and "
                    "stitches the rows back); ps=0 is the same op library without a cluster. "
                    "Engines that cannot shard run one local table: the single-process "
                    "baseline next to it.",
        tables=(_table(dim=32, optimizer="sgd"),),
        ops=(_op("lookup"),),
        prefill=100_000, batch_size=10_000, ids=IdSpec(kind="uniform", vocab=200_000),
        steps=5, sweep={"ps": (0, 1, 2, 4)},
        quick={"prefill": 10_000, "batch_size": 2_000, "ids": {"vocab": 20_000}, "steps": 3},
        tags=("sharded",)),
    Scenario(
        name="sharded_optimize",
        description="A training step on a sharded table: Adagrad apply_gradients with dedup "
                    "on zipf(1.1) ids, then a lookup, over 1, 2 and 4 ps tasks (ps=0: no "
                    "cluster). Every task sees every step's req_time, as one table would.",
        tables=(_table(dim=32, optimizer="adagrad", lrs=(0.05,)),),
        ops=(_op("apply_gradients", enable_dedup=True), _op("lookup")),
        batch_size=10_000, ids=IdSpec(kind="zipf", a=1.1, vocab=1_000_000), steps=5,
        sweep={"ps": (0, 1, 2, 4)},
        quick={"batch_size": 2_000, "steps": 3}, tags=("sharded",)),
)
CATALOG = CATALOG + SHARDED


def catalog() -> tuple[Scenario, ...]:
    return CATALOG


def names() -> list[str]:
    return [s.name for s in CATALOG]
