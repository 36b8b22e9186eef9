"""Lookup: 10,000 ids (about 50% hits) from a table of 100,000 entries at dim 32, and fused
lookup over 3 tables and 4 shards."""
import numpy as np

from benchmarks.common import (ENGINES, DenseTake, make_engine, median_seconds,
                               prefilled_table, probe_engines, uniform_ids)

TABLE_ROWS, BATCH, DIM = 100_000, 10_000, 32


class Lookup:
    params = [ENGINES, [1, 2]]
    param_names = ["engine", "threads"]
    timeout = 300

    def setup_cache(self):
        return probe_engines()

    def setup(self, probe, engine, threads):
        self.engine = make_engine(probe, engine, threads, op="lookup")
        self.table = prefilled_table(self.engine, TABLE_ROWS, DIM)
        self.ids = uniform_ids(BATCH, 2 * TABLE_ROWS)
        self.baseline = DenseTake(TABLE_ROWS, DIM, BATCH)

    def time_lookup(self, probe, engine, threads):
        self.table.lookup(self.ids)

    def peakmem_lookup(self, probe, engine, threads):
        self.table.lookup(self.ids)

    def track_lookup_ids_per_s(self, probe, engine, threads):
        return BATCH / median_seconds(lambda: self.table.lookup(self.ids))
    track_lookup_ids_per_s.unit = "ids/s"

    def track_lookup_ratio_to_dense_take(self, probe, engine, threads):
        return (median_seconds(lambda: self.table.lookup(self.ids))
                / median_seconds(self.baseline))
    track_lookup_ratio_to_dense_take.unit = "ratio"


class FusedLookup:
    """Fused lookup over 3 tables (dims 8/16/32) and 4 shards, 12,000 ids."""
    params = [ENGINES]
    param_names = ["engine"]
    timeout = 300
    ROWS, N, SHARDS = 20_000, 12_000, 4

    def setup_cache(self):
        return probe_engines()

    def setup(self, probe, engine):
        self.engine = make_engine(probe, engine, fused=True)
        self.tables = [prefilled_table(self.engine, self.ROWS, d) for d in (8, 16, 32)]
        self.ids = uniform_ids(self.N, 2 * self.ROWS, key=7)
        self.sizes = np.full(3 * self.SHARDS, self.N // (3 * self.SHARDS), np.int32)
        # mean row width (8+16+32)/3 floats per id
        self.baseline = DenseTake(self.ROWS, 56 // 3, self.N)

    def _lookup(self):
        return self.engine.fused_lookup(self.tables, self.ids, self.sizes, self.SHARDS)

    def time_fused_lookup(self, probe, engine):
        self._lookup()

    def peakmem_fused_lookup(self, probe, engine):
        self._lookup()

    def track_fused_lookup_ids_per_s(self, probe, engine):
        return self.N / median_seconds(self._lookup)
    track_fused_lookup_ids_per_s.unit = "ids/s"

    def track_fused_lookup_ratio_to_dense_take(self, probe, engine):
        return median_seconds(self._lookup) / median_seconds(self.baseline)
    track_fused_lookup_ratio_to_dense_take.unit = "ratio"


def peakmem_reference():
    """Baseline memory: the dense float32 array of the Lookup table's shape plus one dense take
    of a batch (what the same data costs without a hash table)."""
    DenseTake(TABLE_ROWS, DIM, BATCH)()
