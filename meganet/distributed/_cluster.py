"""The shards on a Dask cluster (private): scattering, calls with tree reduction, faults, communication counts."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

try:
    from distributed import Client, wait
    from concurrent.futures import CancelledError as _FuturesCancelled  # dask's Future(s)CancelledError
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker
except ImportError as err:  # pragma: no cover - exercised where dask is absent
    raise ImportError("meganet.distributed needs Dask distributed: pip install 'meganet[distributed]' "
                      "(or pip install 'dask[distributed]')") from err

from ._shard import Shard, add_many

__all__ = ["ShardFailure", "CommStats", "ShardSet", "shard_bounds"]

try:  # pragma: no cover - the name moved between releases
    from asyncio import CancelledError as _AsyncCancelled
except ImportError:  # pragma: no cover
    _AsyncCancelled = ()

#: partial results summed by one node of the reduction tree (the driver sums the last <= FAN_IN of them): on a
#: loaded 2-core machine a scheduler hop costs ~10 ms, so a flat top level beats a deep binary tree
FAN_IN = 8

_WORKER_LOSS = (KilledWorker, _FuturesCancelled, CommClosedError, _AsyncCancelled, OSError, TimeoutError)


class ShardFailure(RuntimeError):
    """A shard-wise evaluation failed after the retries (no partial sum is ever returned).

    Attributes
    ----------
    last_good_x : array or None
        The last point whose value was evaluated on all shards.
    """

    def __init__(self, message, last_good_x=None):
        super().__init__(message)
        self.last_good_x = last_good_x


@dataclass
class CommStats:
    """Communication and fault counts of a sharded objective.

    ``bytes_sent`` counts the arrays sent to the shards (θ, directions, classifiers: one copy per shard task),
    ``bytes_reduced`` the partial results moved by the reductions (one per shard task: an upper bound, a
    partial result that is reduced on the worker that made it does not move), ``bytes_scattered`` the training
    data scattered (once, plus re-scatters after faults).
    """

    calls: int = 0
    tasks: int = 0
    bytes_sent: int = 0
    bytes_reduced: int = 0
    bytes_scattered: int = 0
    retries: int = 0
    rebuilt_shards: int = 0
    events: list = field(default_factory=list)

    def reset(self):
        self.calls = self.tasks = self.bytes_sent = self.bytes_reduced = 0
        self.retries = self.rebuilt_shards = 0
        self.events = []


def _nbytes(obj):
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(v) for v in obj)
    if isinstance(obj, (numbers.Number, np.generic)):
        return 8
    return 0


def shard_bounds(n, n_shards=None, shard_sizes=None):
    """Contiguous shards ``[(start, stop), ...]`` of ``n`` examples: ``n_shards`` of (nearly) equal size, or the
    given ``shard_sizes`` (positive ints summing to ``n``)."""
    if shard_sizes is not None:
        if n_shards is not None:
            raise ValueError(f"pass n_shards or shard_sizes, not both (got n_shards={n_shards!r} and "
                             f"shard_sizes={shard_sizes!r})")
        sizes = list(shard_sizes)
        if not sizes or any(not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1 for s in sizes):
            raise ValueError(f"shard_sizes must be a non-empty list of positive ints, got {shard_sizes!r}")
        if sum(sizes) != n:
            raise ValueError(f"shard_sizes must sum to the number of examples {n}, got {shard_sizes!r} "
                             f"(sum {sum(sizes)})")
    else:
        if n_shards is None:
            raise ValueError("pass n_shards (an int >= 1) or shard_sizes (a list of ints)")
        if not isinstance(n_shards, numbers.Integral) or isinstance(n_shards, bool) or not 1 <= n_shards <= n:
            raise ValueError(f"n_shards must be an int in [1, n_examples] = [1, {n}], got {n_shards!r}")
        q, r = divmod(n, int(n_shards))
        sizes = [q + (1 if i < r else 0) for i in range(int(n_shards))]
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _call(shard, method, args):
    return getattr(shard, method)(*args)


class ShardSet:
    """Training data split into contiguous shards, each scattered once to one worker.

    Parameters
    ----------
    client : distributed.Client
    network, loss : Element, Loss
    Y, C, mask : the training data (kept by reference on the driver only to re-create a lost shard)
    bounds : list of (start, stop)
    chunk_size : int or None
    max_retries : int
        Re-creations and retries of one call after a worker is lost.
    timeout : float or None
        Seconds to wait for one call before it counts as failed.
    """

    def __init__(self, client, network, loss, Y, C, mask, bounds, *, chunk_size, max_retries, timeout):
        if not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client (Client(LocalCluster(...)) or "
                            f"Client('tcp://scheduler:8786')), got {type(client).__name__}")
        self.client, self.network, self.loss = client, network, loss
        self.Y, self.C, self.mask = Y, C, mask
        self.bounds = bounds
        self.n_total = int(Y.shape[0])
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.timeout = timeout
        self.comm = CommStats()
        self.wait_workers = 60.0  # seconds to wait for a worker when none is left (a nanny restarting it)
        self.generation = 0  # shard (re)builds so far
        self.futures = [None] * len(bounds)
        self.workers = [None] * len(bounds)
        for i in range(len(bounds)):
            self._build(i)

    @property
    def n_shards(self):
        return len(self.bounds)

    def _make(self, i):
        a, b = self.bounds[i]
        mask = None if self.mask is None else self.mask[a:b]
        return Shard(i, self.network, self.loss, self.Y[a:b], self.C[a:b], mask, self.chunk_size,
                     n_total=self.n_total)

    def _build(self, i):
        """Scatter shard ``i`` to a worker: round robin over the live workers, preferring those that hold the
        fewest shards (a re-created shard goes to the least loaded live worker)."""
        workers = self._workers()
        if not workers:  # e.g. the nanny of the only worker is restarting it
            self.client.wait_for_workers(1, timeout=self.wait_workers)
            workers = self._workers()
        load = {w: sum(1 for j, o in enumerate(self.workers) if o == w and j != i and self.futures[j] is not None)
                for w in workers}
        target = min(workers, key=lambda w: (load[w], workers.index(w)))
        shard = self._make(i)
        [fut] = self.client.scatter([shard], workers=[target], hash=False)
        self.futures[i], self.workers[i] = fut, target
        a, b = self.bounds[i]
        self.comm.bytes_scattered += _nbytes([self.Y[a:b], self.C[a:b]]) + (
            0 if self.mask is None else _nbytes(self.mask[a:b]))
        self.generation += 1

    def _lost(self):
        """Shards whose data are gone (their worker died: the future is cancelled) or whose worker left."""
        workers = set(self._workers())
        alive = [i for i, f in enumerate(self.futures) if f is not None and f.status == "finished"]
        who = self.client.who_has([self.futures[i] for i in alive]) if alive else {}
        lost = []
        for i, f in enumerate(self.futures):
            holders = who.get(f.key, ()) if i in alive else ()
            if not set(holders) & workers:
                lost.append(i)
        return lost

    def _workers(self):
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def call(self, method, args, *, last_good_x=None):
        """Run ``Shard.<method>(*args[i])`` on every shard ``i`` whose ``args[i]`` is not None and return the
        sum of the results (tree reduction on the workers).  Worker loss: lost shards re-created from the
        driver's data and the whole call retried, at most ``max_retries`` times; then :class:`ShardFailure`."""
        sent = sum(_nbytes(a) for a in args if a is not None)
        attempt = 0
        while True:
            try:
                res = self._once(method, args)
                self.comm.calls += 1
                self.comm.bytes_sent += sent
                self.comm.tasks += sum(a is not None for a in args)
                self.comm.bytes_reduced += _nbytes(res) * sum(a is not None for a in args)
                return res
            except _WORKER_LOSS + (ShardFailure,) as err:
                err_text = f"{type(err).__name__}: {err}"
            attempt += 1
            lost = self._safe_lost()
            self.comm.events.append(dict(method=method, attempt=attempt, error=err_text, lost_shards=lost))
            for i in lost:  # re-created also when giving up, so that the objective stays usable
                self.futures[i] = None
            for i in lost:
                try:
                    self._build(i)
                    self.comm.rebuilt_shards += 1
                except Exception as err:  # no worker came back in time: the next attempt reports it
                    self.comm.events.append(dict(method="rebuild", shard=i, error=f"{type(err).__name__}: {err}"))
            if attempt > self.max_retries:
                raise ShardFailure(
                    f"the shard-wise {method} failed {attempt} times (last error: {err_text}; lost shards: "
                    f"{lost}); no partial sum is returned", last_good_x=last_good_x)
            self.comm.retries += 1

    def _safe_lost(self):
        try:
            return self._lost()
        except Exception:  # the scheduler is unreachable: treat every shard as lost
            return list(range(self.n_shards))

    def _once(self, method, args):
        parts = []
        for i, a in enumerate(args):
            if a is None:
                continue
            if self.futures[i] is None:
                raise ShardFailure(f"shard {i} could not be re-created (no worker)")
            parts.append(self.client.submit(_call, self.futures[i], method, a, workers=[self.workers[i]],
                                            allow_other_workers=True, pure=False))
        if not parts:
            raise ValueError(f"{method}: no shard has work to do")
        while len(parts) > FAN_IN:  # tree reduction on the workers, FAN_IN partial results per node
            parts = [self.client.submit(add_many, *parts[k:k + FAN_IN], pure=False)
                     for k in range(0, len(parts), FAN_IN)]
        # the last level on the driver (one scheduler hop less; at most FAN_IN results), in shard order
        wait(parts, timeout=self.timeout)
        out = add_many(*self.client.gather(parts, errors="raise"))
        if not isinstance(out, dict):  # pragma: no cover - defensive
            raise ShardFailure(f"{method}: unexpected result {type(out).__name__}")
        return out

    def close(self):
        """Release the shards on the workers."""
        for f in self.futures:
            if f is not None:
                f.release()
        self.futures = [None] * self.n_shards
