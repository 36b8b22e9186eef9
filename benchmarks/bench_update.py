"""Writes: insert (assign of new ids), assign_add on existing ids, apply_gradients with
sgd / adagrad / adam / ftrl with dedup on and off, Adagrad at one and two threads, and one id
repeated many times in a batch."""
import numpy as np

import engines
from benchmarks.common import (ENGINES, DenseTake, make_engine, median_seconds,
                               prefilled_table, probe_engines, rows, zipf_ids)

DIM, BATCH, TABLE_ROWS = 32, 20_000, 50_000


def training_ids() -> np.ndarray:
    """Monolith's benchmark shape (every id 4 times, `x // 4`) plus zipf-hot ids."""
    return np.concatenate([np.arange(BATCH // 2, dtype=np.int64) // 4,
                           zipf_ids(BATCH - BATCH // 2, TABLE_ROWS)])


class Insert:
    params = [ENGINES]
    param_names = ["engine"]
    number = 1            # every sample inserts into a fresh, empty table (setup runs first)
    repeat = (3, 10, 20.0)
    timeout = 300

    def setup_cache(self):
        return probe_engines()

    def setup(self, probe, engine):
        self.engine = make_engine(probe, engine, op="assign")
        self.table = self.engine.create_table(engines.table_config(dim=DIM))
        self.ids = np.arange(BATCH, dtype=np.int64)
        self.values = rows(BATCH, DIM)

    def time_insert_new_ids(self, probe, engine):
        self.table.assign(self.ids, self.values)

    def peakmem_insert_new_ids(self, probe, engine):
        self.table.assign(self.ids, self.values)


class AssignAdd:
    params = [ENGINES]
    param_names = ["engine"]
    timeout = 300

    def setup_cache(self):
        return probe_engines()

    def setup(self, probe, engine):
        self.engine = make_engine(probe, engine, op="assign_add")
        self.table = prefilled_table(self.engine, TABLE_ROWS, DIM)
        self.ids = zipf_ids(BATCH, TABLE_ROWS)
        self.values = rows(BATCH, DIM, key=1)
        self.baseline = DenseTake(TABLE_ROWS, DIM, BATCH)

    def _add(self):
        self.table.assign_add(self.ids, self.values)

    def time_assign_add(self, probe, engine):
        self._add()

    def peakmem_assign_add(self, probe, engine):
        self._add()

    def track_assign_add_ids_per_s(self, probe, engine):
        return BATCH / median_seconds(self._add)
    track_assign_add_ids_per_s.unit = "ids/s"

    def track_assign_add_ratio_to_dense_take(self, probe, engine):
        return median_seconds(self._add) / median_seconds(self.baseline)
    track_assign_add_ratio_to_dense_take.unit = "ratio"


class _ApplyBase:
    timeout = 300

    def setup_cache(self):
        return probe_engines()

    def _setup(self, probe, engine, optimizer, dedup, threads):
        self.engine = make_engine(probe, engine, threads, op="apply_gradients",
                                  optimizer=optimizer, dedup=dedup)
        self.table = prefilled_table(self.engine, TABLE_ROWS, DIM, optimizer=optimizer)
        self.ids = training_ids()
        self.grads = rows(BATCH, DIM, key=2)
        self.dedup = dedup
        self.baseline = DenseTake(TABLE_ROWS, DIM, BATCH)

    def _apply(self):
        self.table.apply_gradients(self.ids, self.grads, enable_dedup=self.dedup)


class ApplyGradients(_ApplyBase):
    params = [ENGINES, ["sgd", "adagrad", "adam", "ftrl"], [False, True]]
    param_names = ["engine", "optimizer", "dedup"]

    def setup(self, probe, engine, optimizer, dedup):
        self._setup(probe, engine, optimizer, dedup, 1)

    def time_apply_gradients(self, probe, engine, optimizer, dedup):
        self._apply()

    def peakmem_apply_gradients(self, probe, engine, optimizer, dedup):
        self._apply()

    def track_apply_gradients_ids_per_s(self, probe, engine, optimizer, dedup):
        return BATCH / median_seconds(self._apply)
    track_apply_gradients_ids_per_s.unit = "ids/s"

    def track_apply_gradients_ratio_to_dense_take(self, probe, engine, optimizer, dedup):
        return median_seconds(self._apply) / median_seconds(self.baseline)
    track_apply_gradients_ratio_to_dense_take.unit = "ratio"


class ApplyGradientsThreads(_ApplyBase):
    """Adagrad (Monolith's optimize benchmark) at one and two threads, dedup on and off."""
    params = [ENGINES, [1, 2], [False, True]]
    param_names = ["engine", "threads", "dedup"]

    def setup(self, probe, engine, threads, dedup):
        self._setup(probe, engine, "adagrad", dedup, threads)

    def time_apply_gradients_adagrad(self, probe, engine, threads, dedup):
        self._apply()

    def track_apply_gradients_adagrad_ids_per_s(self, probe, engine, threads, dedup):
        return BATCH / median_seconds(self._apply)
    track_apply_gradients_adagrad_ids_per_s.unit = "ids/s"


class RepeatedId:
    """One id 10000 times in one batch: every occurrence is its own write or optimizer step,
    in order (docs/semantics.md §3). Guards against work that grows with the square of the
    repeat count (the numpy reference was quadratic here)."""
    params = [ENGINES, ["assign_add", "apply_gradients"]]
    param_names = ["engine", "op"]
    number = 1
    repeat = (2, 5, 30.0)
    timeout = 300
    REPEATS = 10_000

    def setup_cache(self):
        return probe_engines()

    def setup(self, probe, engine, op):
        self.engine = make_engine(probe, engine, op=op, optimizer="adagrad")
        self.table = self.engine.create_table(engines.table_config(dim=8, optimizer="adagrad"))
        self.ids = np.full(self.REPEATS, 12345, np.int64)
        self.values = rows(self.REPEATS, 8, key=3)
        self.op = op

    def time_repeated_id(self, probe, engine, op):
        getattr(self.table, self.op)(self.ids, self.values)
