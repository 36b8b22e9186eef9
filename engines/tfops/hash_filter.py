"""Hash filters as TensorFlow resources (Monolith's `hash_filter_ops.py` surface).

    f = create_hash_filter(occurrence_threshold=3)      # sliding (default), probabilistic, dummy
    table = HashTable(config, hash_filter=f)            # the table admits new ids through f
    emb = intercept_gradient(f, ids, table.lookup(ids)) # identity; the gradient of ids not yet
                                                        # admitted is zeroed

Filter checkpoints go through engines/formats/filter_dump.py (the codec every engine shares):
`save`/`restore` read and replace the sliding filter's state with two ops, eagerly.
"""
from __future__ import annotations

import contextlib
import itertools

import numpy as np
import tensorflow as tf

from engines.filters import FilterSpec
from engines.formats import filter_dump
from engines.formats.shards import find_shards
from engines.tfops.hash_table import _int64, _ResourceDeleter
from engines.tfops.ops import lib

_counter = itertools.count()


class HashFilter:
    """One filter resource built from an engines.filters.FilterSpec."""

    def __init__(self, spec: FilterSpec, name: str | None = None, device: str | None = None):
        self.spec = spec
        self.kind = spec.kind
        name = name or f"MonolithHashFilter_{next(_counter)}"
        thresholds = dict(occurrence_threshold=int(spec.occurrence_threshold),
                          slot_occurrence_thresholds=[v for pair in spec.slot_thresholds
                                                      for v in pair])
        L = lib()
        with tf.device(device) if device else contextlib.nullcontext():
            if spec.kind == "sliding":
                self.handle = L.monolith_hash_filter(capacity=spec.capacity,
                                                     split_num=spec.split_num,
                                                     shared_name=name, **thresholds)
            elif spec.kind == "probabilistic":
                self.handle = L.monolith_probabilistic_filter(
                    equal_probability=spec.equal_probability, seed=_int64(spec.seed),
                    shared_name=name, **thresholds)
            else:
                self.handle = L.monolith_dummy_hash_filter(shared_name=name)
        self._deleter = _ResourceDeleter(self.handle) if tf.executing_eagerly() else None

    def intercept_gradient(self, ids, embeddings) -> tf.Tensor:
        return intercept_gradient(self, ids, embeddings)

    def filter_gradient(self, ids, grads) -> tf.Tensor:
        """grads with the rows of not-yet-admitted ids zeroed (counts each occurrence)."""
        return lib().monolith_hash_filter_intercept_gradient_gradient(
            self.handle, tf.convert_to_tensor(ids, tf.int64),
            tf.convert_to_tensor(grads, tf.float32))

    # ---- checkpoints (eager) -----------------------------------------------------------
    def _require_eager(self, what: str) -> None:
        if not tf.executing_eagerly():
            raise RuntimeError(f"HashFilter.{what} runs eagerly (it reads the filter state "
                               f"into Python for engines/formats/filter_dump.py)")

    def save(self, basename: str) -> list[str]:
        """Sliding filters write one file per split; the others write nothing (as Monolith)."""
        self._require_eager("save")
        if self.kind != "sliding":
            return []
        meta, ints, rates, cells = (t.numpy() for t in lib().hashlab_sliding_filter_state(
            self.handle))
        head, head_increment, failures, split_num, max_backward = (int(x) for x in meta)
        splits, at = [], 0
        for (_, total, num_elements, split_failures), rate in zip(ints, rates):
            splits.append(filter_dump.SplitDump(int(split_failures), int(total),
                                                int(num_elements), float(rate),
                                                cells[at:at + total + filter_dump.CELL_PADDING]))
            at += total + filter_dump.CELL_PADDING
        return filter_dump.save_sliding(basename, filter_dump.SlidingDump(
            split_num, max_backward, head, head_increment, failures, splits))

    def restore(self, basename: str) -> None:
        self.commit_restore(self.stage_restore(basename))

    def stage_restore(self, basename: str):
        """Read and check the files against this filter; nothing changes yet."""
        self._require_eager("restore")
        if self.kind == "dummy":
            return None
        if self.kind == "probabilistic":
            find_shards(basename)       # as Monolith: the file set must exist
            return None
        meta, ints, _, cells = (t.numpy() for t in lib().hashlab_sliding_filter_state(
            self.handle))
        live, at = [], 0
        for total in ints[:, 1]:
            live.append(cells[at:at + total + filter_dump.CELL_PADDING])
            at += total + filter_dump.CELL_PADDING
        return filter_dump.load_sliding(basename, int(meta[3]), int(meta[4]), live)

    def commit_restore(self, dump) -> None:
        if dump is None:
            return
        lib().hashlab_sliding_filter_set_state(
            self.handle, dump.head, dump.head_increment, dump.failure_count,
            np.array([[s.total_size, s.num_elements, s.failure_count] for s in dump.splits],
                     np.int64).reshape(-1, 3),
            np.array([s.fill_rate for s in dump.splits], np.float64),
            np.concatenate([np.asarray(s.cells, np.uint16) for s in dump.splits])
            if dump.splits else np.zeros(0, np.uint16))


def create_hash_filter(kind: str = "sliding", capacity: int = 300_000_000, split_num: int = 7,
                       occurrence_threshold: int = 0, slot_occurrence_thresholds=None,
                       equal_probability: bool = False, seed: int = 0, name: str | None = None,
                       device: str | None = None) -> HashFilter:
    """A filter from the same arguments as Engine.create_hash_filter (validated there)."""
    spec = FilterSpec.build(kind=kind, capacity=capacity, split_num=split_num,
                            occurrence_threshold=occurrence_threshold,
                            slot_occurrence_thresholds=slot_occurrence_thresholds,
                            equal_probability=equal_probability, seed=seed)
    return HashFilter(spec, name=name, device=device)


def create_dummy_hash_filter(name: str | None = None, device: str | None = None) -> HashFilter:
    return HashFilter(FilterSpec.build(kind="dummy"), name=name, device=device)


def intercept_gradient(hash_filter: HashFilter, ids, embeddings) -> tf.Tensor:
    """Identity on embeddings; backprop zeroes the gradient rows of ids the filter has not
    admitted yet (each occurrence counts once)."""
    return lib().monolith_hash_filter_intercept_gradient(
        hash_filter.handle, tf.convert_to_tensor(ids, tf.int64),
        tf.convert_to_tensor(embeddings, tf.float32))
