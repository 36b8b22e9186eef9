"""An in-process parameter-server cluster on loopback, for tests, the lab and examples.

This is Monolith's `create_test_ps_cluster` pattern: N `tf.distribute.Server`s started in this
process with `create_local_server()` (each binds a free port itself, so nothing is reserved in
advance and nothing races), a `ClusterDef` with one `ps` job listing them, and TF1 sessions on
the first server. TF2 code instead connects the eager context to the same servers
(`connect()`), after which `/job:ps/task:i` devices are usable eagerly and in tf.function.

TensorFlow cannot shut a server down, so the servers live as long as the process: there is one
cluster per process, created on first use and grown when more tasks are asked for. Every call
that waits on the runtime has a timeout and fails with ClusterError naming the task, never
hangs (docs/tfops.md explains the choice and its limits).
"""
from __future__ import annotations

import threading

DEFAULT_TIMEOUT_S = 120.0


class ClusterError(RuntimeError):
    """The distributed runtime cannot do what was asked (names the task or the limit)."""


class LocalCluster:
    def __init__(self):
        self.servers = []
        self._lock = threading.Lock()
        self._connected = 0          # ps tasks the eager context is connected to (0: none)

    @property
    def addresses(self) -> list[str]:
        return [s.target[len("grpc://"):] for s in self.servers]

    def grow(self, num_ps: int) -> None:
        import tensorflow as tf
        with self._lock:
            while len(self.servers) < num_ps:
                self.servers.append(tf.distribute.Server.create_local_server())

    def cluster_spec(self, num_ps: int):
        import tensorflow as tf
        self._check(num_ps)
        return tf.train.ClusterSpec({"ps": self.addresses[:num_ps]})

    def session_config(self, num_ps: int, timeout_s: float = DEFAULT_TIMEOUT_S):
        import tensorflow as tf
        return tf.compat.v1.ConfigProto(
            cluster_def=self.cluster_spec(num_ps).as_cluster_def(),
            operation_timeout_in_ms=int(timeout_s * 1000))

    def session(self, num_ps: int, graph=None, timeout_s: float = DEFAULT_TIMEOUT_S):
        """A TF1 session on the first server that sees ps tasks 0..num_ps-1."""
        import tensorflow as tf
        return tf.compat.v1.Session(self.servers[0].target, graph=graph,
                                    config=self.session_config(num_ps, timeout_s))

    def ping(self, num_ps: int, timeout_s: float = 30.0) -> None:
        """Run a trivial op on every task; ClusterError naming the first that does not answer."""
        import tensorflow as tf
        g = tf.Graph()
        with g.as_default():
            probes = []
            for i in range(num_ps):
                with tf.device(f"/job:ps/task:{i}"):
                    probes.append(tf.constant(i) + 0)
        with self.session(num_ps, g, timeout_s) as sess:
            for i, p in enumerate(probes):
                try:
                    sess.run(p, options=tf.compat.v1.RunOptions(
                        timeout_in_ms=int(timeout_s * 1000)))
                except tf.errors.OpError as exc:
                    raise ClusterError(f"ps task {i} at {self.addresses[i]} did not answer "
                                       f"within {timeout_s:g} s: {exc.message}") from None

    def connect(self, num_ps: int) -> list[str]:
        """Connect this process's eager context to ps tasks 0..num_ps-1 (once per process);
        returns their device names."""
        import tensorflow as tf
        self.grow(num_ps)
        with self._lock:
            if self._connected and self._connected != num_ps:
                raise ClusterError(
                    f"the eager context is already connected to {self._connected} ps tasks; "
                    f"TensorFlow cannot reconnect it to {num_ps} reliably (one cluster per "
                    f"process: run this in a new process)")
            if not self._connected:
                tf.config.experimental_connect_to_cluster(self.cluster_spec(num_ps))
                self._connected = num_ps
        return ps_devices(num_ps)

    def _check(self, num_ps: int) -> None:
        if num_ps < 1:
            raise ValueError(f"num_ps must be >= 1, got {num_ps}")
        if num_ps > len(self.servers):
            raise ClusterError(f"the cluster has {len(self.servers)} ps tasks, {num_ps} asked "
                               f"for (grow it first)")


def ps_devices(num_ps: int) -> list[str]:
    return [f"/job:ps/task:{i}" for i in range(num_ps)]


_cluster: LocalCluster | None = None
_cluster_lock = threading.Lock()


def local_cluster(num_ps: int) -> LocalCluster:
    """This process's in-process cluster, with at least num_ps ps tasks."""
    global _cluster
    if num_ps < 1:
        raise ValueError(f"num_ps must be >= 1, got {num_ps}")
    with _cluster_lock:
        if _cluster is None:
            _cluster = LocalCluster()
    _cluster.grow(num_ps)
    return _cluster
