"""Training/evaluation mode and running statistics of the normalizations in a network.

Elements are nested as attributes: a :class:`~meganet.networks.Meganet` (a
:class:`~meganet.core.chain.Chain`) holds its blocks in ``elements``, a
time-stepping block its ``layer`` (``layer1``/``layer2`` for the Hamiltonian
CNN), a :class:`~meganet.layers.SingleLayer`, ``SymmetricLayer`` or
``Connector`` its ``normalization`` (also one of its ``elements``).  The walker
:func:`named_elements` therefore visits, depth first, every attribute that is
an :class:`~meganet.core.element.Element` or a list/tuple of Elements, each
element once (shared elements, e.g. a layer used by all time steps, are
visited at their first path).  Everything here is built on it:

* :func:`normalizations` — every :class:`~meganet.normalization.Normalization`;
* :func:`set_training` — training (batch statistics) or evaluation (running
  statistics) mode; only :class:`~meganet.normalization.BatchNorm` maps
  differently, the others record the flag;
* :func:`track_running_statistics` — a context inside which every
  training-mode BatchNorm evaluation updates its running statistics (outside
  it ``forward`` is pure);
* :func:`estimate_running_statistics` — exact pooled statistics of a data set,
  evaluated in chunks;
* :func:`reset_running_statistics`, :func:`running_statistics_state`,
  :func:`load_running_statistics` — reset, checkpoint, restore.

Typical use::

    with track_running_statistics(net):          # during training
        Z = net.apply(theta, Y_batch)
    estimate_running_statistics(net, theta, Y_train, batch_size=256)   # or: exact, after training
    set_training(net, False)                     # inference: no coupling of examples
    state = running_statistics_state(net)        # np.savez(path, **state)
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core.element import Element
from ..core.validation import check_bool, check_int
from .base import Normalization
from .batch_norm import BatchNorm

__all__ = ["named_elements", "normalizations", "set_training", "track_running_statistics",
           "reset_running_statistics", "estimate_running_statistics", "running_statistics_state",
           "load_running_statistics"]

_STATE_FIELDS = ("running_mean", "running_var", "num_batches_tracked")


def _check_element(element):
    if not isinstance(element, Element):
        raise TypeError(f"element must be a meganet Element (a network, block, layer or normalization), "
                        f"got {type(element).__name__}")


def named_elements(element):
    """``(path, element)`` for ``element`` and every Element nested in it, depth first, each once.

    ``path`` joins attribute names and list indices with dots (``''`` for
    ``element`` itself, e.g. ``'elements.0.elements.2'`` for the normalization
    of the first block's layer).  Attributes that are Elements, or lists or
    tuples holding Elements, are followed, in the order they were set.
    """
    _check_element(element)
    seen = set()

    def visit(path, el):
        if id(el) in seen:
            return
        seen.add(id(el))
        yield path, el
        for name, value in vars(el).items():
            sub = f"{path}.{name}" if path else name
            if isinstance(value, Element):
                yield from visit(sub, value)
            elif isinstance(value, (list, tuple)):
                for k, v in enumerate(value):
                    if isinstance(v, Element):
                        yield from visit(f"{sub}.{k}", v)

    yield from visit("", element)


def normalizations(element):
    """Every :class:`~meganet.normalization.Normalization` in ``element`` (itself included), walker order."""
    for _, el in named_elements(element):
        if isinstance(el, Normalization):
            yield el


def _named_batch_norms(element):
    return [(path, el) for path, el in named_elements(element) if isinstance(el, BatchNorm)]


def set_training(element, flag):
    """Set every normalization in ``element`` to training (``True``) or evaluation (``False``) mode.

    Returns ``element``.  In evaluation mode a :class:`BatchNorm` uses its
    running statistics (no coupling of the examples); the other normalizations
    use per-example statistics in both modes.
    """
    flag = check_bool("flag", flag)
    for el in normalizations(element):
        el.training = flag
    return element


@contextlib.contextmanager
def track_running_statistics(network):
    """Context inside which every training-mode :class:`BatchNorm` evaluation in ``network``
    updates the running statistics (momentum formula of :meth:`BatchNorm.update_running_statistics`).

    Every evaluation counts: ``forward``, ``apply``, and recomputations such as
    ``Jmv(..., cache=None)``; a BatchNorm applied at several time steps is
    updated at each.  Evaluation-mode BatchNorms are not updated.  The
    previous tracking flags are restored on exit (also on an exception).
    Yields ``network``.
    """
    bns = [bn for _, bn in _named_batch_norms(network)]
    previous = [bn._tracking for bn in bns]
    try:
        for bn in bns:
            bn._tracking = True
        yield network
    finally:
        for bn, was in zip(bns, previous):
            bn._tracking = was


def reset_running_statistics(network):
    """``running_mean = 0``, ``running_var = 1``, ``num_batches_tracked = 0`` for every BatchNorm.

    Returns ``network``.
    """
    for _, bn in _named_batch_norms(network):
        bn.reset_running_statistics()
    return network


class _PooledStatistics:
    """Mean and sum of squared deviations of all values seen, merged batch by batch
    (Chan, Golub & LeVeque's pairwise update), float64 on the data's backend."""

    def __init__(self):
        self.count = 0
        self.n_batches = 0
        self.mean = self.m2 = None

    def add(self, mean, var, count):
        """One batch of ``count`` values per channel with mean ``mean`` and biased variance ``var``."""
        self.n_batches += 1
        if self.count == 0:
            self.mean, self.m2 = mean, var * count
        else:
            total = self.count + count
            delta = mean - self.mean
            self.mean = self.mean + delta * (count / total)
            self.m2 = self.m2 + var * count + delta * delta * (self.count * count / total)
        self.count += count


def estimate_running_statistics(network, theta, Y, batch_size):
    """Set the running statistics of every BatchNorm in ``network`` to the exact statistics of its
    training-mode inputs over the data set ``Y``, evaluated in chunks of ``batch_size`` examples.

    The network is run in training mode (every normalization; the previous
    modes are restored afterwards), and each BatchNorm pools the per-channel
    values it sees over all chunks: ``running_mean`` is their mean and
    ``running_var`` their unbiased variance (the batch mean and unbiased
    variance when ``batch_size ≥ n_examples``; for equal chunks the mean is
    the mean of the chunk means, PyTorch's ``momentum=None``, and the
    variance adds the spread of the chunk means to the mean chunk variance).
    The inputs of a BatchNorm after another one depend on the chunk's batch
    statistics, as during training.  ``num_batches_tracked`` becomes the
    number of evaluations pooled.  The running statistics change only when
    every chunk went through.

    Parameters
    ----------
    network : Element
    theta : array, shape (network.n_theta,)
    Y : array, shape (n_examples, *network.shape_in)
    batch_size : int ≥ 1

    Returns
    -------
    network
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    _check_element(network)
    bns = [bn for _, bn in _named_batch_norms(network)]
    if not bns:
        return network
    n = int(Y.shape[0]) if getattr(Y, "ndim", 0) >= 1 else 0
    if n == 0:
        raise ValueError(f"Y must hold at least one example to estimate running statistics, "
                         f"got shape {tuple(getattr(Y, 'shape', ()))}")
    norms = list(normalizations(network))
    modes = [el.training for el in norms]
    tracking = [bn._tracking for bn in bns]
    accumulators = [_PooledStatistics() for _ in bns]
    try:
        for el in norms:
            el.training = True
        for bn, acc in zip(bns, accumulators):
            bn._tracking, bn._accumulator = True, acc
        for start in range(0, n, batch_size):
            network.apply(theta, Y[start:start + batch_size])
    finally:
        for el, mode in zip(norms, modes):
            el.training = mode
        for bn, was in zip(bns, tracking):
            bn._tracking, bn._accumulator = was, None
    results = []
    for bn, acc in zip(bns, accumulators):
        if acc.count < 2:
            raise ValueError(f"{bn!r} saw {acc.count} value(s) per channel; an unbiased running variance "
                             "needs at least 2 (use more examples)")
        results.append((acc.mean, acc.m2 / (acc.count - 1), acc.n_batches))
    for bn, (mean, var, k) in zip(bns, results):
        bn.running_mean, bn.running_var = mean, get_array_module(var).maximum(var, 0.0)
        bn.num_batches_tracked = k
    return network


def running_statistics_state(network):
    """The running statistics of every BatchNorm in ``network``, as host numpy arrays.

    Returns
    -------
    dict[str, numpy.ndarray]
        ``'<path>.running_mean'``, ``'<path>.running_var'`` (float64, shape
        (C,)) and ``'<path>.num_batches_tracked'`` (0-d int64) for each
        BatchNorm, in walker order, ``<path>`` as in :func:`named_elements`
        (no prefix for a lone BatchNorm).  Suitable for ``numpy.savez``.
    """
    state = {}
    for path, bn in _named_batch_norms(network):
        prefix = f"{path}." if path else ""
        state[prefix + "running_mean"] = np.array(to_numpy(bn.running_mean), dtype=np.float64)
        state[prefix + "running_var"] = np.array(to_numpy(bn.running_var), dtype=np.float64)
        state[prefix + "num_batches_tracked"] = np.array(bn.num_batches_tracked, dtype=np.int64)
    return state


def load_running_statistics(network, state):
    """Set the running statistics of ``network``'s BatchNorms from :func:`running_statistics_state`.

    ``state`` (a dict or an ``numpy.load`` archive) must hold exactly the keys
    of ``running_statistics_state(network)``; every value is checked (shape
    (C,), finite, variance ≥ 0) before any BatchNorm changes.  Returns
    ``network``.
    """
    named = _named_batch_norms(network)
    expected = []
    for path, _ in named:
        prefix = f"{path}." if path else ""
        expected += [prefix + f for f in _STATE_FIELDS]
    keys = list(state.keys())
    missing = [k for k in expected if k not in keys]
    unexpected = [k for k in keys if k not in expected]
    if missing or unexpected:
        raise ValueError(f"running statistics state does not match the network: missing keys {missing}, "
                         f"unexpected keys {unexpected}")
    checked = []
    for path, bn in named:
        prefix = f"{path}." if path else ""
        where = f" (state key prefix {path!r})" if path else ""
        try:
            mean = bn._check_running("running_mean", state[prefix + "running_mean"])
            var = bn._check_running("running_var", state[prefix + "running_var"], nonnegative=True)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{err}{where}") from None
        k = np.asarray(state[prefix + "num_batches_tracked"])
        if k.shape != () or k.dtype.kind not in "iu" or int(k) < 0:
            raise ValueError(f"num_batches_tracked must be a non-negative integer scalar{where}, got {k!r}")
        checked.append((bn, mean, var, int(k)))
    for bn, mean, var, k in checked:
        bn._running_mean, bn._running_var, bn.num_batches_tracked = mean, var, k
    return network
