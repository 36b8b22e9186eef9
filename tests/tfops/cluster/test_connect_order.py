"""Connecting the eager context to a cluster resets it, which would silently drop every eager
table's resource: connect() refuses while tables are alive and names them. Run by
test_cluster.py in its own process (the context connects once per process)."""
from __future__ import annotations

import gc

import pytest

import engines

tf = pytest.importorskip("tensorflow")

from engines.tfops import HashTable, cluster  # noqa: E402


def test_connect_refuses_while_eager_tables_live_then_connects():
    table = HashTable(engines.table_config(dim=2), name="early_table")
    with pytest.raises(cluster.ClusterError, match="before creating tables.*early_table"):
        cluster.local_cluster(1).connect(1)
    assert int(table.size()) == 0                    # the table still works
    del table
    gc.collect()
    (device,) = cluster.local_cluster(1).connect(1)
    remote = HashTable(engines.table_config(dim=2), device=device)
    remote = remote.assign([4], [[1.0, 2.0]])
    assert remote.lookup([4]).numpy().tolist() == [[1.0, 2.0]]
