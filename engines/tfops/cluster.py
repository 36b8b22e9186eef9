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

import socket
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
        """Run a trivial op on ps tasks 0..num_ps-1; ClusterError naming the first that does
        not answer."""
        ping(self.servers[0].target, self.cluster_spec(num_ps), timeout_s)

    def connect(self, num_ps: int) -> list[str]:
        """Connect this process's eager context to ps tasks 0..num_ps-1 (once per process,
        before any eager table exists: connecting resets the context); returns the devices."""
        import tensorflow as tf
        self.grow(num_ps)
        with self._lock:
            if self._connected and self._connected != num_ps:
                raise ClusterError(
                    f"the eager context is already connected to {self._connected} ps tasks; "
                    f"TensorFlow cannot reconnect it to {num_ps} reliably (one cluster per "
                    f"process: run this in a new process)")
            if not self._connected:
                from engines.tfops.hash_table import live_eager_tables
                live = live_eager_tables()
                if live:
                    raise ClusterError(
                        f"connect to the cluster before creating tables: connecting resets "
                        f"the eager context, which would drop the resources of "
                        f"{len(live)} live table(s) ({', '.join(sorted(live)[:3])})")
                tf.config.experimental_connect_to_cluster(self.cluster_spec(num_ps))
                self._connected = num_ps
        return ps_devices(num_ps)

    def _check(self, num_ps: int) -> None:
        if num_ps < 1:
            raise ValueError(f"num_ps must be >= 1, got {num_ps}")
        if num_ps > len(self.servers):
            raise ClusterError(f"the cluster has {len(self.servers)} ps tasks, {num_ps} asked "
                               f"for (grow it first)")


def _unreachable(address: str, timeout_s: float) -> str | None:
    """Why nothing accepts a TCP connection at host:port, or None when something does."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def ping(target: str, cluster_spec, timeout_s: float = 30.0) -> None:
    """Run a trivial op on every ps task of cluster_spec through the session target (any
    cluster: this one or a real one); ClusterError naming the first task that does not answer
    within timeout_s. TensorFlow's session setup waits without limit for a task it cannot
    reach, so every address is first checked with a plain TCP connect, and the probes run in a
    daemon thread that is abandoned when late."""
    import tensorflow as tf
    addresses = cluster_spec.job_tasks("ps")
    for i, address in enumerate(addresses):
        reason = _unreachable(address, timeout_s)
        if reason:
            raise ClusterError(f"ps task {i} at {address} did not answer within {timeout_s:g} s:"
                               f" {reason} (is its server running, and reachable from here?)")
    progress = {"done": 0}

    def probe():
        try:
            g = tf.Graph()
            with g.as_default():
                probes = []
                for i in range(len(addresses)):
                    with tf.device(f"/job:ps/task:{i}"):
                        probes.append(tf.constant(i) + 0)
            config = tf.compat.v1.ConfigProto(cluster_def=cluster_spec.as_cluster_def(),
                                              operation_timeout_in_ms=int(timeout_s * 1000))
            with tf.compat.v1.Session(target, graph=g, config=config) as sess:
                for p in probes:
                    sess.run(p)
                    progress["done"] += 1
        except Exception as exc:  # noqa: BLE001 - reported below, with the task
            progress["error"] = exc

    thread = threading.Thread(target=probe, name="ping-ps", daemon=True)
    thread.start()
    thread.join(timeout_s)
    i = progress["done"]
    if thread.is_alive():
        raise ClusterError(f"ps task {i} at {addresses[i]} did not answer within {timeout_s:g} "
                           f"s (its port accepts connections, but not as a TensorFlow server "
                           f"of this cluster?)")
    if "error" in progress:
        raise ClusterError(f"ps task {i} at {addresses[i]} failed a trivial op: "
                           f"{progress['error']}")


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
