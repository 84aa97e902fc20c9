r"""Sharded training objectives: :class:`ShardedNetworkObjective`, :class:`ShardedVarProObjective` and :func:`shard`."""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..core.validation import check_option
from ..normalization import BatchNorm
from ..normalization.mode import named_elements
from ..objectives import NetworkObjective, VarProObjective
from ..objectives import _classifier
from ..objectives._base import ObjectiveBase, check_state_type, same_point
from ..objectives._inner_newton import InnerResult, trust_region_newton
from ..optimizers.problem import WorkCounter
from ._cluster import ShardFailure, ShardSet, shard_bounds
from ._shard import labelled_counts

__all__ = ["shard", "ShardedNetworkObjective", "ShardedVarProObjective", "ShardedState"]

_ON_FAILURE = ("raise", "nan")


@dataclass
class ShardedState:
    """An evaluation at ``x`` of a sharded objective (the network outputs and caches stay on the workers).

    Attributes
    ----------
    x : array
        The point (not copied).
    key : tuple
        ``(version, hash of x)``: names the caches on the workers.
    value : float
    parts : dict
        Terms of ``f`` (``loss``, ``regularizer``, ``classifier_regularizer``).
    w : array or None
        VarPro: ``w(θ)`` in the objective's dtype.
    w64 : array or None
        VarPro: ``w(θ)`` in float64.
    inner : InnerResult or None
        VarPro: the inner solve (``loss_eval`` is None: the evaluations live on the shards).
    grad : array or None
    curvature : dict or None
        The curvature sample prepared on the shards (indices per shard, solver of the classifier block).
    """

    x: Any
    key: tuple
    value: float
    parts: dict
    finite: bool = True
    w: Any = None
    w64: Any = None
    inner: Optional[InnerResult] = None
    grad: Any = None
    curvature: Optional[dict] = None


def _check_int(name, v, minimum):
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


class _ShardedBase:
    """Shared driver side: shards, keys, counted calls, index maps, metrics."""

    hessian = "gauss_newton"

    def __init__(self, serial, client, *, n_shards, shard_sizes, max_retries, timeout, on_failure):
        if getattr(serial, "output_regularizer", None) is not None:
            raise NotImplementedError("meganet.distributed does not shard objectives with an output_regularizer "
                                      "(its smoothness couples the pixels of one example, not the examples, but is "
                                      "not implemented shard-wise); pass output_regularizer=None")
        coupled = [path or "network" for path, el in named_elements(serial.network)
                   if isinstance(el, BatchNorm) and el.training]
        if coupled:
            raise ValueError(f"the network has training-mode BatchNorm ({', '.join(coupled[:3])}"
                             f"{', ...' if len(coupled) > 3 else ''}): its statistics couple the examples, so shards "
                             "would compute another function than the serial objective; use per-example "
                             "normalizations (normalization='tv' or 'instance') or meganet.normalization.set_training"
                             "(network, False) (running statistics)")
        if serial.xp is not np:
            raise NotImplementedError("meganet.distributed shards numpy data only (each worker may still use its "
                                      f"own engine); the objective's data are {serial.xp.__name__} arrays")
        self.serial = serial
        self.network, self.loss = serial.network, serial.loss
        self.regularizer = serial.regularizer
        self.classifier_regularizer = serial.classifier_regularizer
        self.n_examples, self.dtype, self.xp = serial.n_examples, serial.dtype, np
        self.hessian_fraction = serial.hessian_fraction
        self.rng = serial.rng
        self.preconditioner_kind = serial.preconditioner_kind
        self.counter = WorkCounter()
        self.on_failure = check_option("on_failure", on_failure, _ON_FAILURE)
        max_retries = _check_int("max_retries", max_retries, 0)
        if timeout is not None and (not isinstance(timeout, numbers.Real) or isinstance(timeout, bool)
                                    or not timeout > 0):
            raise ValueError(f"timeout must be None or a positive number of seconds, got {timeout!r}")
        bounds = shard_bounds(self.n_examples, n_shards, shard_sizes)
        counts = labelled_counts(self.loss, serial.mask, self.n_examples)
        for i, (a, b) in enumerate(bounds):
            if counts[a:b].sum() == 0:
                raise ValueError(f"shard {i} (examples {a}..{b - 1}) holds no labelled sample; choose other "
                                 "shard_sizes (every shard needs at least one labelled example)")
        self._counts = counts
        self._m_total = int(counts.sum())
        self.shards = ShardSet(client, self.network, self.loss, serial.Y, serial.C, serial.mask, bounds,
                               chunk_size=serial.chunk_size, max_retries=max_retries, timeout=timeout)
        self._starts = np.array([a for a, _ in bounds])
        self._version = 0
        self._last_good_x = None
        self._datasets = {}

    # ------------------------------------------------------------ bookkeeping
    @property
    def n_shards(self):
        return self.shards.n_shards

    @property
    def comm(self):
        """:class:`~meganet.distributed.CommStats`: calls, bytes sent and reduced, retries, fault events."""
        return self.shards.comm

    def shard_sizes(self):
        """Examples per shard (list of int)."""
        return [b - a for a, b in self.shards.bounds]

    def _new_key(self, x):
        self._version += 1
        return (self._version, hashlib.blake2b(np.ascontiguousarray(x).view(np.uint8), digest_size=8).hexdigest())

    def _call(self, method, args):
        """A counted shard call; worker loss past the retries: ShardFailure, or None under on_failure='nan'."""
        try:
            res = self.shards.call(method, args, last_good_x=self._last_good_x)
        except ShardFailure:
            if self.on_failure == "raise":
                raise
            return None
        self.counter.add(forward=res["work"][0], adjoint=res["work"][1])
        return res

    def _all(self, *args):
        return [args] * self.n_shards

    def _split_indices(self, idx):
        """Global sorted example indices → list (per shard) of local index arrays, or None where empty."""
        idx = np.asarray(idx)
        out = []
        for a, b in self.shards.bounds:
            loc = idx[(idx >= a) & (idx < b)] - a
            out.append(loc if loc.size else None)
        return out

    def _draw_hessian_sample(self):
        """The serial objective's draw (same generator, same indices), or None for all examples."""
        if self.hessian_fraction is None:
            return None
        pool = self.serial._eligible
        k = max(1, int(round(self.hessian_fraction * pool.size)))
        if k >= pool.size:
            return None
        return np.sort(self.rng.choice(pool, size=k, replace=False))

    def _nan(self, n):
        return np.full(n, np.nan, dtype=self.dtype)

    def _check_vec(self, name, v, n):
        return self.serial._check_vec(name, v, n)

    # the serial objectives' regularizer pieces (they use no state of the objective)
    _reg_value = ObjectiveBase._reg_value
    _add_reg_grad = ObjectiveBase._add_reg_grad
    _add_reg_hess = ObjectiveBase._add_reg_hess

    # ------------------------------------------------------------ metrics
    def scatter_dataset(self, name, Y, C, *, mask=None, n_shards=None, shard_sizes=None):
        """Scatter another data set (e.g. validation) once, in shards, for :meth:`metrics` ``(x, dataset=name)``.

        Parameters
        ----------
        name : str
            Its name (not ``'train'``, the training set).
        Y : array, shape (n, *network.shape_in)
            In the objective's dtype.
        C : array
            Labels of ``Y``.
        mask : array, optional
        n_shards, shard_sizes : as in :func:`shard` (default: as many shards as the training set)
        """
        if not isinstance(name, str) or not name or name == "train":
            raise ValueError(f"name must be a non-empty str other than 'train' (the training set), got {name!r}")
        if not isinstance(Y, np.ndarray) or Y.dtype != self.dtype:
            raise TypeError(f"Y must be a numpy array of dtype {np.dtype(self.dtype)} (the objective's), got "
                            f"{type(Y).__name__}{'' if not hasattr(Y, 'dtype') else ' of dtype ' + str(Y.dtype)}")
        shape_in = tuple(self.network.shape_in)
        if Y.ndim != 1 + len(shape_in) or tuple(Y.shape[1:]) != shape_in or Y.shape[0] == 0:
            raise ValueError(f"Y must have shape (n_examples >= 1, {', '.join(map(str, shape_in))}) for this "
                             f"network, got {tuple(Y.shape)}")
        self.serial._check_labels("C", C, "Y", Y.shape[0])
        if n_shards is None and shard_sizes is None:
            n_shards = min(self.n_shards, Y.shape[0])
        bounds = shard_bounds(int(Y.shape[0]), n_shards, shard_sizes)
        if name in self._datasets:
            self._datasets.pop(name).close()
        old = self.shards
        self._datasets[name] = ShardSet(old.client, self.network, self.loss, Y, C, mask, bounds,
                                        chunk_size=old.chunk_size, max_retries=old.max_retries, timeout=old.timeout)

    def _sharded_metrics(self, theta, w, dataset):
        if dataset == "train":
            shards = self.shards
        elif dataset in self._datasets:
            shards = self._datasets[dataset]
        else:
            raise ValueError(f"dataset must be 'train' or a name given to scatter_dataset "
                             f"({sorted(self._datasets)}), got {dataset!r}")
        res = shards.call("metrics", [(theta, w)] * shards.n_shards)
        m = res["m"]
        if m == 0:
            raise ValueError(f"the data set {dataset!r} has no labelled sample: the metrics are means over them")
        out = dict(loss=res["loss"] / m, accuracy=res["correct"] / m, n_examples=int(res["n"]))
        from ..losses.least_squares import LeastSquares
        if isinstance(self.loss, LeastSquares):
            out["relative_error"] = math.sqrt(res["res2"]) / max(math.sqrt(res["tgt2"]), 1e-300)
            if res["one_hot"] != shards.n_shards:
                out["accuracy"] = None
        return out

    def close(self):
        """Release the shards (training and scattered data sets) on the workers (the objective is unusable
        afterwards)."""
        self.shards.close()
        for d in self._datasets.values():
            d.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ShardedNetworkObjective(_ShardedBase):
    r""":class:`~meganet.objectives.NetworkObjective` evaluated data-parallel on a Dask cluster.

    The same function ``f(θ, w) = L(W F(θ, Y) + μ, C) + R(θ) + S(w)`` and the
    same protocol (``value``, ``gradient``, ``value_and_gradient``,
    ``hessian_matvec`` (Gauss-Newton), ``preconditioner``,
    ``stochastic_gradient``, ``metrics``, ``counter``), so every solver of
    :mod:`meganet.optimizers` runs on it unchanged.  The training examples are
    split into contiguous shards scattered once to the workers; a call sends
    ``x`` (and the direction ``v``) to every shard, each shard computes its part
    of the sum over labelled samples (weighted by ``m_s/m``, so the sum is the
    serial mean), and the parts are summed by a tree on the workers (fan-in 8, the last
    level on the driver, in shard order).  The regularizers are added once on the driver.  Equal to the serial values
    up to the order of the sums (1e-16 to 1e-14 relative in float64 in the tests).

    Build it with :func:`shard` from a serial objective.

    Work units: the passes the shards ran, each scaled by ``n_s / n`` — a pass
    over all shards counts 1, as a serial pass over the training set.

    Faults: see :func:`shard` (``max_retries``, ``on_failure``).
    """

    def __init__(self, serial, client, *, n_shards=None, shard_sizes=None, max_retries=2, timeout=None,
                 on_failure="raise"):
        if not isinstance(serial, NetworkObjective):
            raise TypeError(f"serial must be a NetworkObjective, got {type(serial).__name__}")
        super().__init__(serial, client, n_shards=n_shards, shard_sizes=shard_sizes, max_retries=max_retries,
                         timeout=timeout, on_failure=on_failure)
        self.batch_size = serial.batch_size

    # ------------------------------------------------------------ layout (the serial objective's)
    @property
    def n(self) -> int:
        return self.serial.n

    @property
    def n_theta(self) -> int:
        return self.serial.n_theta

    @property
    def n_w(self) -> int:
        return self.serial.n_w

    def split(self, x):
        return self.serial.split(x)

    def join(self, theta, w):
        return self.serial.join(theta, w)

    def init_x(self, *, rng=None, dtype=None):
        return self.serial.init_x(rng=rng, dtype=dtype)

    # ------------------------------------------------------------ protocol
    def _failed_state(self, x, key):
        return math.nan, ShardedState(x=x, key=key, value=math.nan, parts=dict(loss=math.nan), finite=False)

    def value(self, x):
        """``(f(x), state)``: one forward pass on every shard (the caches stay there)."""
        theta, w = self.serial._check_x(x)
        key = self._new_key(x)
        res = self._call("net_value", self._all(key, theta, w, self._m_total))
        if res is None or res["finite"] != self.n_shards:
            return self._failed_state(x, key)
        parts = dict(loss=float(res["value"]), regularizer=self._reg_value(self.regularizer, theta),
                     classifier_regularizer=self._reg_value(self.classifier_regularizer, w))
        f = float(sum(parts.values()))
        self._last_good_x = x
        return f, ShardedState(x=x, key=key, value=f, parts=parts)

    def _state_at(self, x, state):
        if state is None:
            return self.value(x)[1]
        check_state_type(state, ShardedState, "ShardedNetworkObjective")
        if not same_point(state.x, x):
            raise ValueError("state was computed at another point than x; pass the state returned by value(x)")
        return state

    def gradient(self, x, state=None):
        """``∇f(x)``: one adjoint pass on every shard, reusing its forward cache."""
        state = self._state_at(x, state)
        if state.grad is None:
            if not state.finite:
                state.grad = self._nan(self.n)
            else:
                theta, w = self.split(x)
                res = self._call("net_gradient", self._all(state.key, theta, w, self._m_total))
                if res is None:
                    return self._nan(self.n)
                g_theta, g_w = self.split(res["grad"].astype(self.dtype, copy=False))
                state.grad = np.concatenate([self._add_reg_grad(g_theta, self.regularizer, theta),
                                             self._add_reg_grad(g_w, self.classifier_regularizer, w)])
        return state.grad

    def value_and_gradient(self, x):
        f, state = self.value(x)
        return f, self.gradient(x, state), state

    def _curvature(self, x, state):
        """Prepare the Gauss-Newton products at ``x`` on the shards (the subsample drawn once per state)."""
        if state.curvature is not None:
            return state.curvature
        theta, w = self.split(x)
        idx = self._draw_hessian_sample()
        if idx is None:
            args = self._all(state.key, theta, w, None, self._m_total, False)
        else:
            m_sample = int(self._counts[idx].sum())
            args = [None if loc is None else (state.key, theta, w, loc, m_sample, False)
                    for loc in self._split_indices(idx)]
        res = self._call("net_curvature", args)
        if res is None:
            return None
        n_tasks = sum(a is not None for a in args)
        state.curvature = dict(idx=idx, active=[a is not None for a in args], finite=res["finite"] == n_tasks,
                               m_sample=self._m_total if idx is None else m_sample)
        return state.curvature

    def _curvature_args(self, state, cs, x, *extra):
        theta, w = self.split(x)
        locs = [None] * self.n_shards if cs["idx"] is None else self._split_indices(cs["idx"])
        return [(state.key, theta, w) + extra + (locs[i], cs["m_sample"]) if a else None
                for i, a in enumerate(cs["active"])]

    def hessian_matvec(self, x, v, state=None):
        """Gauss-Newton product ``(Jᵀ H_z J + blkdiag(∇²R, ∇²S)) v``: one linearized and one adjoint pass
        per shard (on the Hessian subsample where ``hessian_fraction < 1``).

        Parameters
        ----------
        x, v : arrays, shape (n,)
        state : ShardedState from :meth:`value` at ``x``

        Returns
        -------
        array, shape (n,)
        """
        self._check_vec("v", v, self.n)
        state = self._state_at(x, state)
        if not state.finite:
            return self._nan(self.n)
        cs = self._curvature(x, state)
        if cs is None or not cs["finite"]:
            return self._nan(self.n)
        theta, w = self.split(x)
        v_theta, v_w = self.split(v)
        res = self._call("net_gn", self._curvature_args(state, cs, x, v_theta, v_w))
        if res is None:
            return self._nan(self.n)
        H_theta, H_w = self.split(res["Hv"].astype(self.dtype, copy=False))
        return np.concatenate([self._add_reg_hess(H_theta, self.regularizer, v_theta, theta),
                               self._add_reg_hess(H_w, self.classifier_regularizer, v_w, w)])

    def preconditioner(self, x, state=None):
        """As :meth:`NetworkObjective.preconditioner` (the classifier block's diagonal summed over shards)."""
        if self.preconditioner_kind is None:
            return None
        state = self._state_at(x, state)
        if not state.finite:
            return None
        cs = self._curvature(x, state)
        if cs is None or not cs["finite"]:
            return None
        if "diag_w" not in cs:
            res = self._call("net_diag", self._curvature_args(state, cs, x))
            if res is None:
                return None
            cs["diag_w"] = res["diag_w"]
        theta, w = self.split(x)
        d_theta = self.serial._reg_diag(self.regularizer, theta)
        d_w = cs["diag_w"].astype(self.dtype, copy=False) + self.serial._reg_diag(self.classifier_regularizer, w)
        if not (np.isfinite(d_theta).all() and np.isfinite(d_w).all()):
            return None
        return self.serial._diagonal_preconditioner([d_theta, d_w])

    # ------------------------------------------------------------ mini-batches
    @property
    def n_batches(self) -> int:
        return self.serial.n_batches

    def shuffle(self, rng):
        """Draw a new partition into mini-batches (the serial objective's permutation)."""
        self.serial.shuffle(rng)

    def batch_indices(self, batch_index):
        return self.serial.batch_indices(batch_index)

    def stochastic_gradient(self, x, batch_index, rng=None):
        """Mini-batch ``(f_B, ∇f_B)`` as :meth:`NetworkObjective.stochastic_gradient`: the batch's examples are
        evaluated on the shards that hold them (a batch's pass counts ``|B|/n``)."""
        theta, w = self.serial._check_x(x)
        idx = self.batch_indices(batch_index)
        m_batch = int(self._counts[idx].sum())
        regs = self._reg_value(self.regularizer, theta) + self._reg_value(self.classifier_regularizer, w)
        if m_batch == 0:
            g = np.concatenate([self._add_reg_grad(np.zeros_like(theta), self.regularizer, theta),
                                self._add_reg_grad(np.zeros_like(w), self.classifier_regularizer, w)])
            return float(regs), g
        args = [None if loc is None else (theta, w, loc, m_batch) for loc in self._split_indices(idx)]
        res = self._call("net_batch", args)
        if res is None:
            return math.nan, self._nan(self.n)
        g_theta, g_w = self.split(res["grad"].astype(self.dtype, copy=False))
        g = np.concatenate([self._add_reg_grad(g_theta, self.regularizer, theta),
                            self._add_reg_grad(g_w, self.classifier_regularizer, w)])
        return float(res["value"]) + regs, g

    # ------------------------------------------------------------ reporting
    def metrics(self, x, Y=None, C=None, *, mask=None, dataset="train"):
        """Data loss and accuracy (no work counted), as :meth:`NetworkObjective.metrics`: on ``(Y, C)``
        (computed on the driver), or, with ``Y = C = None``, shard-wise on the workers on the training set
        (``dataset='train'``) or on a data set scattered by :meth:`scatter_dataset`."""
        theta, w = self.serial._check_x(x)
        if Y is None and C is None:
            return self._sharded_metrics(theta, w, dataset)
        return self.serial.metrics(x, Y, C, mask=mask)

    def __repr__(self):
        return (f"ShardedNetworkObjective(n={self.n}, n_examples={self.n_examples}, "
                f"shards={self.shard_sizes()}, loss={self.loss!r})")


def _svd_solver(loss, reg, Rs, TDA, n_rows):
    """:class:`~meganet.objectives._classifier.SVDLeastSquares` from the shards' R factors (TSQR) and ``TᵀDA``."""
    svd = _classifier.SVDLeastSquares.__new__(_classifier.SVDLeastSquares)
    svd.loss, svd.xp = loss, np
    svd.perm = np.asarray(_classifier.w_to_X(loss))
    R = np.linalg.qr(Rs, mode="r")
    _, s, Vt = np.linalg.svd(R, full_matrices=False)
    smax = float(s.max()) if s.size else 0.0
    keep = s > max(n_rows, R.shape[1]) * np.finfo(np.float64).eps * smax
    svd.s, svd.V = s[keep], Vt[keep].T
    svd.alpha = 0.0 if reg is None else float(reg.alpha)
    svd.w_ref = None if reg is None or reg.theta_ref is None else np.asarray(reg.theta_ref)
    svd.F = R.shape[1]
    svd._TDA = TDA
    return svd


class ShardedVarProObjective(_ShardedBase):
    r""":class:`~meganet.objectives.VarProObjective` evaluated data-parallel on a Dask cluster.

    The reduced objective ``Φ_red(θ) = Φ(θ, w(θ))`` over θ with the same
    protocol (GNvpro and every other solver run on it unchanged).  The network
    passes run on the shards, the small inner problem on the driver from
    quantities summed over the shards:

    * least squares (SVD closed form): each shard returns the ``R`` factor of
      its weighted, bias-augmented features ``D^{1/2}[F, 1]`` and ``TᵀD[F, 1]``;
      the driver's QR of the stacked ``R`` (TSQR) gives the singular values and
      right singular vectors of the serial SVD;
    * cross-entropy / logistic regression (``inner_solver='trust_region'`` with
      the dense method, i.e. ``n_w ≤ inner_dense_max``): the serial
      trust-region Newton iteration, each loss value, gradient and dense
      Hessian ``∇²_ww Φ`` a sum over shards (one round trip per evaluation).

    The reduced gradient is one adjoint pass per shard; a reduced Gauss-Newton
    product is three round trips (``J_θF v`` and ``∇²_wF L dF`` → driver solve
    → ``∇²L(dF, dw)`` → driver solve → ``J_θFᵀ`` …) with the same passes as the
    serial product.  Not sharded: ``inner_solver='krylov'`` and the CG inner
    method (``NotImplementedError``).

    Build it with :func:`shard` from a serial :class:`~meganet.objectives.VarProObjective`.
    """

    def __init__(self, serial, client, *, n_shards=None, shard_sizes=None, max_retries=2, timeout=None,
                 on_failure="raise"):
        if not isinstance(serial, VarProObjective):
            raise TypeError(f"serial must be a VarProObjective, got {type(serial).__name__}")
        if not serial.use_svd:
            if serial.inner_solver != "trust_region":
                raise NotImplementedError(f"meganet.distributed shards the VarPro inner solver 'trust_region' "
                                          f"only, got inner_solver={serial.inner_solver!r}")
            if serial.inner_method == "cg" or (serial.inner_method == "auto" and
                                               serial.loss.n_w > serial.inner_dense_max):
                raise NotImplementedError(
                    f"meganet.distributed shards the dense inner method only (n_w = {serial.loss.n_w} with "
                    f"inner_method={serial.inner_method!r}, inner_dense_max={serial.inner_dense_max}); use "
                    "inner_method='dense' or raise inner_dense_max")
        super().__init__(serial, client, n_shards=n_shards, shard_sizes=shard_sizes, max_retries=max_retries,
                         timeout=timeout, on_failure=on_failure)
        self.use_svd = serial.use_svd
        self._reg64 = serial._reg64
        self.inner_tol, self.inner_max_iter = serial.inner_tol, serial.inner_max_iter
        self._w_last = serial._w_last
        self._radius_last = serial._radius_last
        self.inner_stats = dict(solves=0, newton_iterations=0, cg_iterations=0, max_grad_norm=0.0,
                                not_converged=0)
        self._last_state = None

    @property
    def n(self) -> int:
        return self.network.n_theta

    @property
    def n_theta(self) -> int:
        return self.network.n_theta

    @property
    def n_w(self) -> int:
        return self.loss.n_w

    def init_x(self, *, rng=None, dtype=None):
        return self.serial.init_x(rng=rng, dtype=dtype)

    def split(self, theta):
        return theta, self.classifier(theta)

    def warm_start_classifier(self, w):
        """Use ``w`` as the starting guess of the next inner solve."""
        self._check_vec("w", w, self.loss.n_w)
        self._w_last = w.astype(np.float64)

    # ------------------------------------------------------------ inner solve (driver, shard sums)
    def _inner_eval(self, key, theta, w, need=()):
        res = self._call("vp_inner", self._all(key, theta, w, self._m_total, tuple(need)))
        if res is None:
            raise ShardFailure("the inner solve lost its shards", last_good_x=self._last_good_x)
        f, g = float(res["value"]), res["grad"]
        if self._reg64 is not None:
            rv, rg = self._reg64.value_and_gradient(w)
            f, g = f + float(rv), g + rg
        return f, g, res.get("hess")

    def _solve_inner(self, key, theta):
        """``w(θ)`` from the shard sums (the serial algorithms, see the class docstring)."""
        if self.use_svd:
            res = self._call("vp_tsqr", self._all(key, theta, self._m_total))
            if res is None:
                raise ShardFailure("the inner solve lost its shards", last_good_x=self._last_good_x)
            svd = _svd_solver(self.loss, self._reg64, res["R"], res["TDA"], self.n_examples * self.loss.n_pixels)
            w = svd.minimizer()
            return InnerResult(w=w, loss_eval=None, value=math.nan, grad_norm=math.nan, n_iter=0, n_cg=0,
                               status="closed_form", solver=svd)
        return self._trust_region(key, theta, self._w_last, self._radius_last)

    def _trust_region(self, key, theta, w0, radius0):
        """:func:`meganet.objectives._inner_newton.trust_region_newton` (dense) on shard sums; same iterates as
        the serial solve (the Hessian summed over the shards only when a step needs it)."""
        def make_solver(w, _):
            _, _, H = self._inner_eval(key, theta, w, need=("hess",))
            return _classifier.DenseSolver.from_hessian(H, self._reg64, w)

        return trust_region_newton(lambda w: self._inner_eval(key, theta, w), make_solver, w0,
                                   tol=self.inner_tol, max_iter=self.inner_max_iter, radius0=radius0)

    def _record_inner(self, res):
        st = self.inner_stats
        st["solves"] += 1
        st["newton_iterations"] += res.n_iter
        st["max_grad_norm"] = max(st["max_grad_norm"], res.grad_norm)
        if res.status not in ("converged", "closed_form"):
            st["not_converged"] += 1

    # ------------------------------------------------------------ protocol
    def value(self, theta):
        """``(Φ_red(θ), state)``: one forward pass per shard and the inner solve for ``w(θ)``."""
        self._check_vec("theta", theta, self.n)
        key = self._new_key(theta)
        res = self._call("vp_forward", self._all(key, theta))
        if res is None or res["finite"] != self.n_shards:
            return self._nan_state(theta, key)
        try:
            inner = self._solve_inner(key, theta)
        except ShardFailure:
            if self.on_failure == "raise":
                raise
            return self._nan_state(theta, key)
        w64 = inner.w
        w = w64 if self.dtype == np.float64 else w64.astype(self.dtype)
        fin = self._call("vp_finalize", self._all(key, theta, w, w64, self._m_total))
        if fin is None:
            return self._nan_state(theta, key)
        if inner.status == "closed_form":  # value and ∇_w at the closed-form w (as the serial SVD branch)
            g = fin["grad64"]
            f_in = fin["value64"]
            if self._reg64 is not None:
                rv, rg = self._reg64.value_and_gradient(w64)
                f_in, g = f_in + float(rv), g + rg
            inner.value, inner.grad_norm = f_in, _classifier.norm(g)
        self._record_inner(inner)
        if math.isfinite(inner.grad_norm):
            self._w_last = w64
            if inner.n_iter > 0:
                self._radius_last = max(inner.radius, 1e-3)
        parts = dict(loss=float(fin["value"]), regularizer=self._reg_value(self.regularizer, theta),
                     classifier_regularizer=self._reg_value(self.classifier_regularizer, w))
        f = float(sum(parts.values()))
        state = ShardedState(x=theta, key=key, value=f, parts=parts, w=w, w64=w64, inner=inner)
        self._last_state = state
        self._last_good_x = theta
        return f, state

    def _nan_state(self, theta, key):
        """The state of a failed evaluation (network overflow, or shards lost under on_failure='nan')."""
        w64 = np.full(self.n_w, np.nan)
        state = ShardedState(x=theta, key=key, value=math.nan, parts=dict(loss=math.nan), finite=False,
                             w=self._nan(self.n_w), w64=w64,
                             inner=InnerResult(w=w64, loss_eval=None, value=math.nan, grad_norm=math.nan,
                                               n_iter=0, n_cg=0, status="non_finite"))
        self._last_state = state
        return math.nan, state

    def _state_at(self, theta, state):
        if state is None:
            return self.value(theta)[1]
        check_state_type(state, ShardedState, "ShardedVarProObjective")
        if not same_point(state.x, theta):
            raise ValueError("state was computed at another θ; pass the state returned by value(theta)")
        return state

    def gradient(self, theta, state=None):
        """``∇Φ_red(θ) = J_θᵀ ∇_F L + ∇R``: one adjoint pass per shard."""
        state = self._state_at(theta, state)
        if not state.finite:
            return self._nan(self.n)
        if state.grad is None:
            res = self._call("vp_gradient", self._all(state.key, theta, state.w, state.w64, self._m_total))
            if res is None:
                return self._nan(self.n)
            state.grad = self._add_reg_grad(res["grad"].astype(self.dtype, copy=False), self.regularizer, theta)
        return state.grad

    def value_and_gradient(self, theta):
        f, state = self.value(theta)
        return f, self.gradient(theta, state), state

    def _curvature(self, theta, state):
        if state.curvature is not None:
            return state.curvature
        idx = self._draw_hessian_sample()
        kind = "tsqr" if self.use_svd else "dense"
        if idx is None:
            if self.use_svd:  # the inner solve's SVD is the full-data solver
                state.curvature = dict(idx=None, active=[True] * self.n_shards, solver=state.inner.solver,
                                       m_sample=self._m_total)
                return state.curvature
            args = self._all(state.key, theta, state.w, state.w64, None, self._m_total, kind)
            m_sample = self._m_total
        else:
            m_sample = int(self._counts[idx].sum())
            args = [None if loc is None else (state.key, theta, state.w, state.w64, loc, m_sample, kind)
                    for loc in self._split_indices(idx)]
        res = self._call("vp_curvature", args)
        if res is None or res["finite"] != sum(a is not None for a in args):
            return None
        if self.use_svd:
            n_rows = (self.n_examples if idx is None else len(idx)) * self.loss.n_pixels
            solver = _svd_solver(self.loss, self._reg64, res["R"], res["TDA"], n_rows)
        else:
            solver = _classifier.DenseSolver.from_hessian(res["hess"], self._reg64, state.w64)
        state.curvature = dict(idx=idx, active=[a is not None for a in args], solver=solver, m_sample=m_sample)
        return state.curvature

    def _solve64(self, solver, b):
        out = solver.solve(b if b.dtype == np.float64 else b.astype(np.float64))
        return out if self.dtype == np.float64 else out.astype(self.dtype)

    def _gn_args(self, state, cs):
        locs = [None] * self.n_shards if cs["idx"] is None else self._split_indices(cs["idx"])
        return [(state.w, state.w64, locs[i], cs["m_sample"]) for i in range(self.n_shards)]

    def implicit_derivative(self, theta, v, state=None):
        """``J_θ w(θ) v = −(∇²_ww Φ + ∇²S)⁻¹ ∇²_wF L · J_θF v`` (one linearized forward pass per shard)."""
        self._check_vec("v", v, self.n)
        state = self._state_at(theta, state)
        cs = self._curvature(theta, state) if state.finite else None
        if cs is None:
            return self._nan(self.n_w)
        common = self._gn_args(state, cs)
        r1 = self._call("vp_gn1", [(state.key, theta, v) + common[i] if a else None
                                   for i, a in enumerate(cs["active"])])
        if r1 is None:
            return self._nan(self.n_w)
        return -self._solve64(cs["solver"], r1["b"].astype(self.dtype, copy=False))

    def hessian_matvec(self, theta, v, state=None):
        """Reduced Gauss-Newton product ``J_redᵀ H_z J_red v + (J_θw)ᵀ∇²S J_θw v + ∇²R v`` (three round trips).

        Parameters
        ----------
        theta, v : arrays, shape (n_theta,)
        state : ShardedState from :meth:`value` at θ

        Returns
        -------
        array, shape (n_theta,)
        """
        self._check_vec("v", v, self.n)
        state = self._state_at(theta, state)
        if not state.finite:
            return self._nan(self.n)
        cs = self._curvature(theta, state)
        if cs is None:
            return self._nan(self.n)
        act, common = cs["active"], self._gn_args(state, cs)
        # three round trips; the shards keep dF and HF between them, and recompute them (counted) if a shard
        # was re-created in between
        r1 = self._call("vp_gn1", [(state.key, theta, v) + common[i] if a else None for i, a in enumerate(act)])
        if r1 is None:
            return self._nan(self.n)
        dw = -self._solve64(cs["solver"], r1["b"].astype(self.dtype, copy=False))
        r2 = self._call("vp_gn2", [(state.key, theta, v, dw) + common[i] if a else None for i, a in enumerate(act)])
        if r2 is None:
            return self._nan(self.n)
        Hw = r2["Hw"].astype(self.dtype, copy=False)
        if self.classifier_regularizer is not None:
            Hw = Hw + self.classifier_regularizer.hess_mv(dw, state.w)
        s = -self._solve64(cs["solver"], Hw)
        r3 = self._call("vp_gn3", [(state.key, theta, v, dw, s) + common[i] if a else None
                                   for i, a in enumerate(act)])
        if r3 is None:
            return self._nan(self.n)
        return self._add_reg_hess(r3["Hv"].astype(self.dtype, copy=False), self.regularizer, v, theta)

    def preconditioner(self, theta, state=None):
        """As :meth:`VarProObjective.preconditioner` (the regularizer's diagonal; no shard call)."""
        return self.serial.preconditioner(theta, state)

    # ------------------------------------------------------------ classifier and reporting
    def classifier(self, theta):
        """``w(θ)`` (the last state's when θ was just evaluated; otherwise an evaluation, not counted)."""
        self._check_vec("theta", theta, self.n)
        st = self._last_state
        if st is not None and same_point(st.x, theta):
            return st.w
        # as the serial classifier(): not counted, no warm start or last state changed (the shards' caches of
        # the last point are replaced, and recomputed, counted, if its gradient or GN products follow)
        saved = (self.counter.forward, self.counter.adjoint, self._w_last, self._radius_last, self._last_state)
        _, st = self.value(theta)
        self.counter.forward, self.counter.adjoint, self._w_last, self._radius_last, self._last_state = saved
        return st.w

    def full_x(self, theta):
        return np.concatenate([theta, self.classifier(theta)])

    def metrics(self, theta, Y=None, C=None, *, mask=None, dataset="train"):
        """Data loss and accuracy of ``(θ, w(θ))``: on ``(Y, C)`` (driver), or with ``Y = C = None``
        shard-wise on the training set or a data set scattered by :meth:`scatter_dataset`; counts no work."""
        w = self.classifier(theta)
        if Y is None and C is None:
            return self._sharded_metrics(theta, w, dataset)
        return self.serial._metrics(theta, w, Y, C, mask)

    def __repr__(self):
        return (f"ShardedVarProObjective(n_theta={self.n}, n_w={self.n_w}, n_examples={self.n_examples}, "
                f"shards={self.shard_sizes()}, loss={self.loss!r}, inner={'svd' if self.use_svd else 'dense'})")


def shard(objective, client, *, n_shards=None, shard_sizes=None, max_retries=2, timeout=None, on_failure="raise"):
    """The data-parallel version of a serial objective: the one-line switch from serial to Dask.

    ::

        obj = NetworkObjective(net, loss, Y, C, regularizer=reg)          # serial
        obj = meganet.distributed.shard(obj, Client(LocalCluster()), n_shards=4)   # the same, on Dask

    Parameters
    ----------
    objective : NetworkObjective or VarProObjective
        Its network, loss, data, mask, regularizers and options (``hessian_fraction`` and its generator,
        ``batch_size``, ``chunk_size``, the VarPro inner options) are taken over.  Its data are scattered
        once; the driver keeps the arrays by reference only to re-create a shard after a fault.
    client : distributed.Client
        ``Client(LocalCluster(...))`` or ``Client("tcp://scheduler:8786")``.
    n_shards : int, optional
        Contiguous shards of nearly equal size (default: one per worker).
    shard_sizes : list of int, optional
        Explicit shard sizes (sum = number of examples).
    max_retries : int
        After a worker is lost during a call: re-create its shards on the live workers (re-scattered from the
        driver's data) and retry the call, at most this often (default 2).
    timeout : float, optional
        Seconds one call may take before it counts as failed (default: no limit).
    on_failure : {'raise', 'nan'}
        Past the retries: raise :class:`ShardFailure` (with ``last_good_x``), or return ``f = NaN`` and NaN
        derivatives, so that the solvers stop with status ``'non_finite'`` keeping the last good iterate.
        A partial sum is never returned.

    Returns
    -------
    ShardedNetworkObjective or ShardedVarProObjective
    """
    if n_shards is None and shard_sizes is None and hasattr(client, "scheduler_info"):
        n_shards = max(1, min(objective.n_examples, len(client.scheduler_info(n_workers=-1)["workers"])))
    kw = dict(n_shards=n_shards, shard_sizes=shard_sizes, max_retries=max_retries, timeout=timeout,
              on_failure=on_failure)
    if isinstance(objective, VarProObjective):
        return ShardedVarProObjective(objective, client, **kw)
    if isinstance(objective, NetworkObjective):
        return ShardedNetworkObjective(objective, client, **kw)
    raise TypeError(f"objective must be a NetworkObjective or VarProObjective, got {type(objective).__name__}")
