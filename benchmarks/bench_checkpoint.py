"""Checkpoints: save and restore 30,000 Adagrad entries at dim 8 (Monolith's layout), against
`ndarray.tofile` / `np.fromfile` of the same number of bytes."""
import os
import shutil
import tempfile

import numpy as np

from benchmarks.common import (ENGINES, make_engine, median_seconds, prefilled_table,
                               probe_engines)

ENTRIES, DIM = 30_000, 8


class Checkpoint:
    params = [ENGINES]
    param_names = ["engine"]
    timeout = 600
    number = 1

    def setup_cache(self):
        return probe_engines()

    def setup(self, probe, engine):
        self.dir = None                      # teardown also runs after a skipped setup
        self.engine = make_engine(probe, engine, op="save")
        make_engine(probe, engine, op="restore")
        self.dir = tempfile.mkdtemp(prefix="hashlab-asv-")
        self.table = prefilled_table(self.engine, ENTRIES, DIM, optimizer="adagrad")
        self.saved = os.path.join(self.dir, "saved")
        paths = self.table.save(self.saved)
        self.nbytes = sum(os.path.getsize(p) for p in paths)
        self.payload = np.ones(self.nbytes // 4, np.float32)
        self.raw = os.path.join(self.dir, "raw.bin")
        self.payload.tofile(self.raw)
        self.target = os.path.join(self.dir, "again")

    def teardown(self, probe, engine):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _save(self):
        self.table.save(self.target)

    def _restore(self):
        self.table.restore(self.saved)

    def time_save(self, probe, engine):
        self._save()

    def time_restore(self, probe, engine):
        self._restore()

    def peakmem_save(self, probe, engine):
        self._save()

    def peakmem_restore(self, probe, engine):
        self._restore()

    def track_save_entries_per_s(self, probe, engine):
        return ENTRIES / median_seconds(self._save, repeats=3)
    track_save_entries_per_s.unit = "entries/s"

    def track_save_ratio_to_tofile(self, probe, engine):
        return (median_seconds(self._save, repeats=3)
                / median_seconds(lambda: self.payload.tofile(self.raw), repeats=3))
    track_save_ratio_to_tofile.unit = "ratio"

    def track_restore_ratio_to_fromfile(self, probe, engine):
        return (median_seconds(self._restore, repeats=3)
                / median_seconds(lambda: np.fromfile(self.raw, np.float32), repeats=3))
    track_restore_ratio_to_fromfile.unit = "ratio"
