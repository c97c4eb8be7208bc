"""One run over many processes (jax.distributed), and the sample-sharded global arrays the fits take.

    distributed.initialize(Cluster("10.0.0.1:12355", num_processes=2, process_id=0))  # before any JAX work
    mesh = distributed.data_mesh(explicit=True)       # ("data",): every device of every process, by process
    x_g, n = distributed.global_rows(x, mesh)         # this process's rows of x, padded, as one global array
    with distributed.using(mesh):
        res = kmeans.fit(key, x_g, 10, n_samples=n)
    labels = distributed.to_host(res.labels)[:n]      # the whole result, on every process
    if runlog.is_writer(): ...                        # process 0 writes the run's files

JAX is the engine: `jax.distributed.initialize` connects the processes (on CPU through gloo collectives),
`jax.make_array_from_callback` builds a global array from the rows each process reads for its devices, and jitted
code runs on it across processes as it does across the devices of one. JAX needs the sample count to split
evenly over the devices, so `global_rows` pads the END of the global array with zero rows; the fits that take
it (`kmeans.fit`, `gmm.fit`) ignore rows past `n_samples=n`. The row split: device i of the mesh holds rows
[i m, (i + 1) m), m = ceil(n / devices), so process p holds one contiguous range, the last one the padding.

When a process dies or stops answering, the others end within the heartbeat timeout (JAX's coordination
service aborts them, naming the task that died) rather than waiting forever in a collective.
Runbooks and what is tested: docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time

import jax
import numpy as np
from absl import logging as absl_logging

AUTO = "auto"  # coordinator_address: let JAX read the cluster's environment (SLURM, Open MPI, Cloud TPU)
AXIS = "data"
# The flags that say where a run runs, not what it computes: a run resumes under other values of them.
PLACEMENT_FLAGS = frozenset(
    {"num_devices", "coordinator_address", "num_processes", "process_id", "distributed_timeout"}
)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where a run's processes meet: process 0's host:port (or AUTO), how many processes, this one's index.

    timeout: seconds to wait for every process to join, and after which a silent process counts as dead.
    """

    coordinator_address: str
    num_processes: int | None = None
    process_id: int | None = None
    timeout: int = 120

    def __post_init__(self):
        auto = self.coordinator_address == AUTO
        given = (self.num_processes is not None, self.process_id is not None)
        if auto and any(given):
            raise ValueError(
                "coordinator_address 'auto' reads the process count and index from the cluster's environment "
                "(SLURM, Open MPI, Cloud TPU); leave num_processes and process_id unset with it."
            )
        if not auto:
            if ":" not in self.coordinator_address:
                raise ValueError(
                    f"coordinator_address must be host:port of process 0 (e.g. 127.0.0.1:12355), or 'auto'; "
                    f"got {self.coordinator_address!r}."
                )
            if not all(given):
                raise ValueError(
                    "with a coordinator_address, give num_processes (how many processes run) and process_id (this "
                    "one's index, 0 for the process at the coordinator's address) too."
                )
            if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
                raise ValueError(
                    f"process_id must be in [0, num_processes) = [0, {self.num_processes}); got {self.process_id}."
                )
        if self.timeout < 1:
            raise ValueError(f"the timeout must be at least 1 second, got {self.timeout}.")


def initialize(cluster: Cluster) -> None:
    """Joins this process to the run's others (jax.distributed.initialize); call before any JAX computation.

    A process other than 0 first waits (up to cluster.timeout) for the coordinator's port to answer, and
    raises ValueError, in words (the binaries' one `error:` line), when it never does. Past that point JAX
    itself ends every process, naming the failure, when one of them dies or does not join in time.
    """
    # CPU devices talk through gloo (GPUs and TPUs use their own collectives; the setting touches CPUs only).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    auto = cluster.coordinator_address == AUTO
    if not auto and cluster.process_id != 0:
        _wait_for_coordinator(cluster)
    if not auto:
        absl_logging.warning(
            "process %d of %d: joining the run at %s (waiting up to %d s for the others)",
            cluster.process_id,
            cluster.num_processes,
            cluster.coordinator_address,
            cluster.timeout,
        )
    jax.distributed.initialize(
        None if auto else cluster.coordinator_address,
        cluster.num_processes,
        cluster.process_id,
        initialization_timeout=cluster.timeout,
        heartbeat_timeout_seconds=cluster.timeout,
        shutdown_timeout_seconds=cluster.timeout,
    )


def _wait_for_coordinator(cluster: Cluster) -> None:
    """Returns once process 0's coordinator accepts connections; ValueError after cluster.timeout seconds."""
    host, _, port = cluster.coordinator_address.rpartition(":")
    deadline = time.monotonic() + cluster.timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return
        except (OSError, ValueError) as e:
            if time.monotonic() >= deadline:
                raise ValueError(
                    f"process {cluster.process_id}: no coordinator answered at {cluster.coordinator_address} within "
                    f"{cluster.timeout} s ({e}). Start process 0 (--process_id=0) on that host with the same "
                    "--coordinator_address and --num_processes, check the address and that the port is open, or "
                    "raise --distributed_timeout."
                ) from None
            time.sleep(0.2)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on now: a coordinator's, for runs on one machine."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def barrier(name: str) -> None:
    """Waits until every process gets here (nothing to wait for in a one-process run)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def devices() -> list:
    """Every device of the run, those of process 0 first (so each process's devices sit side by side)."""
    return sorted(jax.devices(), key=lambda d: (d.process_index, d.id))


def data_mesh(count: int | None = None, *, explicit: bool = False):
    """The 1-D mesh ("data",) over the first `count` devices of `devices()` (default: all); None for one device
    (nothing to split). Several processes always use all devices (each holds its rows).

    explicit: JAX's explicit axis type, for the fits (run them under `using(mesh)`): the library then says
    where every gather and sum over the rows lives. Under the automatic type XLA's partitioner may gather the
    whole of x onto every device for k-means' seeding and the mixture's blocks: 2M x 64 rows on 2 CPU devices
    took 87 s (k-means) and 90 s (GMM, 5.7 GB) against 3.7 s and 5.9 s (1.7 GB) explicit (docs/scaling.md).
    Training's step is a plain data-parallel sum, for which the automatic type is the simple choice."""
    available = devices()
    n = len(available) if count is None else count
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(available):
        raise ValueError(
            f"devices (--num_devices in the binaries) must be a whole number in [1, {len(available)}], the visible "
            f"devices; got {count!r}."
        )
    if jax.process_count() > 1 and n != len(available):
        raise ValueError(
            f"a run of {jax.process_count()} processes uses all {len(available)} devices; leave --num_devices "
            f"unset (got {n})."
        )
    if n == 1:
        return None
    axis_type = jax.sharding.AxisType.Explicit if explicit else jax.sharding.AxisType.Auto
    return jax.make_mesh((n,), (AXIS,), (axis_type,), devices=available[:n])


def using(mesh):
    """`jax.set_mesh(mesh)`, or nothing without a mesh: the context the fits on `global_rows` run in."""
    return contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)


def padded_rows(n: int, mesh) -> int:
    """n rounded up to a multiple of the mesh's devices (n itself without a mesh)."""
    return n if mesh is None else -(-n // mesh.size) * mesh.size


def global_rows(x, mesh) -> tuple[jax.Array | np.ndarray, int]:
    """(x_g, n): x [n, ...] as one float32 array sharded along its rows over `mesh`, zero rows padding its end to
    a multiple of the devices; x unchanged without a mesh. Every process passes the same x (or the same
    memory-mapped file): each device's rows are read from it straight into the device's buffer, so a process
    reads only its own rows and holds them once."""
    n = int(x.shape[0])
    if mesh is None:
        return x, n
    n_pad = padded_rows(n, mesh)

    def shard(index):  # the rows [start, stop) of the padded array that one of this process's devices holds
        start, stop, _ = index[0].indices(n_pad)
        rows = np.asarray(x[min(start, n) : min(stop, n)], np.float32)  # a view of a memory-mapped float32 x
        if stop <= n:
            return rows
        return np.concatenate([rows, np.zeros((stop - max(start, n), *x.shape[1:]), np.float32)])

    spec = jax.sharding.NamedSharding(mesh, jax.P(AXIS, *[None] * (x.ndim - 1)))
    return jax.make_array_from_callback((n_pad, *x.shape[1:]), spec, shard), n


def put(tree, sharding):
    """jax.device_put(tree, sharding), also onto the devices of several processes: there every process holds
    the whole of each leaf (the same values), and a leaf already laid out so stays where it is."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(a):
        if isinstance(a, jax.Array) and a.sharding == sharding:
            return a
        if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):  # keys: their bits
            bits = jax.device_put(np.asarray(jax.random.key_data(a)), sharding)
            return jax.random.wrap_key_data(bits, impl=jax.random.key_impl(a))
        return jax.device_put(np.asarray(a) if isinstance(a, jax.Array) else a, sharding)

    return jax.tree.map(one, tree)


def to_host(tree):
    """Every array of `tree` as NumPy, whole, on every process (a process's missing rows fetched from the
    others); other leaves unchanged."""

    def fetch(a):
        if not isinstance(a, jax.Array):
            return a
        if a.is_fully_addressable or a.is_fully_replicated:
            return np.asarray(a)
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    return jax.tree.map(fetch, tree)


def describe() -> dict:
    """{"n_devices", "n_processes"}: what results.json records about where a run ran."""
    return {"n_devices": jax.device_count(), "n_processes": jax.process_count()}
