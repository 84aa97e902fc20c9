"""Shared machinery of the training objectives (private): validation of the
network, loss, data and regularizers; data views (all examples, a mini-batch
or the random Hessian subsample); forward passes that count work; metrics.

Work units (Newman, Ruthotto, Hart & van Bloemen Waanders, "Train like a
(Var)Pro", 2020) are counted in :class:`~meganet.optimizers.WorkCounter` as
*passes over the whole training set*:

=====================================  ==========================
network forward pass ``F(θ, Y)``        ``forward += 1``
adjoint pass ``J_θᵀ W``                 ``adjoint += 1``
linearized forward ``J_θ v``            ``forward += 1``
Gauss-Newton matvec (``J v``, ``Jᵀ``)   ``forward += 1, adjoint += 1``
=====================================  ==========================

A pass over ``k`` of the ``n`` training examples (a mini-batch, the Hessian
subsample) counts ``k/n``.  Loss, regularizer and small classifier
computations (the VarPro inner solve included) touch no network and count
nothing; neither do :meth:`metrics` evaluations (validation/reporting).

Memory-bounded passes (``chunk_size``, Meganet.m ``forwardProp`` in batches,
``dnnBatchObjFctn``): the forward pass then keeps only the output ``Z`` of the
whole view (``n × n_features``), computing it chunk by chunk without caches; an
adjoint or linearized pass re-runs the forward pass of each chunk with its cache
and discards it after use.  Memory is that of one chunk's cache; the price is one
extra forward pass per adjoint or linearized pass, which is counted
(``forward += fraction``).  The results equal the unchunked ones up to
rounding for networks whose examples do not interact (everything except
training-mode :class:`~meganet.normalization.BatchNorm`, whose statistics
would be those of the chunk).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core.element import Element
from ..core.validation import check_array, check_option
from ..losses.base import Loss
from ..losses.least_squares import LeastSquares
from ..optimizers.problem import WorkCounter
from ..regularizers.base import Regularizer
from ..regularizers.feature_smoothness import FeatureSmoothness

__all__ = ["ObjectiveBase", "DataView", "ChunkedCache", "check_rng", "check_state_type", "same_point"]

_PRECONDITIONERS = (None, "regularizer")


#: The kinds of Hessian products the objectives offer.
HESSIAN_KINDS = ("gauss_newton", "exact")


def check_rng(rng, name="rng"):
    """``None``, an int seed or a ``numpy.random.Generator`` → a Generator."""
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"{name} must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


@dataclass
class ChunkedCache:
    """Stand-in for the forward cache of a chunked pass: the caches are
    recomputed chunk by chunk when an adjoint or linearized pass needs them."""

    n_examples: int  #: examples of the view the forward pass ran on
    chunk_size: int  #: examples per chunk


@dataclass
class DataView:
    """Examples an evaluation runs on.

    Attributes
    ----------
    Y : array, shape (k, *network.shape_in)
    C : array
        Labels of those examples.
    mask : array or None
    idx : array of int or None
        Indices into the training set (``None``: all examples).
    fraction : float
        ``k / n``, the work of one pass over this view in work units.
    """

    Y: Any
    C: Any
    mask: Any
    idx: Any
    fraction: float


class ObjectiveBase:
    """Validation, data views, counted network passes and metrics shared by
    :class:`~meganet.objectives.NetworkObjective` and
    :class:`~meganet.objectives.VarProObjective`."""

    #: What ``hessian_matvec`` computes when called without ``kind``: the Gauss-Newton product
    #: ``Jᵀ ∇²L J + ∇²R`` (default) or the exact Hessian product (``'exact'``, issue 15); see :attr:`hessian_kind`.
    _hessian_kind = "gauss_newton"

    @property
    def hessian_kind(self):
        """What :meth:`hessian_matvec` computes when called without ``kind`` (as the solvers call it):
        ``'gauss_newton'`` (default) or ``'exact'``."""
        return self._hessian_kind

    @hessian_kind.setter
    def hessian_kind(self, kind):
        self._hessian_kind = check_option("hessian_kind", kind, HESSIAN_KINDS)

    @property
    def hessian(self):
        """What the solvers read to name themselves and phrase their stop messages (``'gauss_newton'``:
        "Gauss-Newton-CG"; ``'exact'``: "Newton-CG"): :attr:`hessian_kind`."""
        return self._hessian_kind

    def _hessian_kind_of_call(self, kind):
        """The kind of one ``hessian_matvec`` call; for ``'exact'`` every element of the network must have
        second-order products (``NotImplementedError`` naming the first that has none)."""
        kind = self._hessian_kind if kind is None else check_option("kind", kind, HESSIAN_KINDS)
        if kind == "exact":
            missing = self.network.second_order_missing()
            if missing is not None:
                raise NotImplementedError(
                    f"hessian_matvec(kind='exact') needs second-order products of every element of the network, "
                    f"but {type(self.network).__name__} contains {missing}, which has none "
                    "(use kind='gauss_newton')")
        return kind

    def _second_order_adjoint(self, W, dW, v_theta, theta, view, cache):
        """``J_θᵀ dW + S_θ(W; v_θ)`` over the view: the network's second-order adjoint sweep with cotangent
        ``W`` and cotangent change ``dW`` (one linearized forward and two adjoint passes, counted so;
        chunked: plus one recomputed forward pass)."""
        self.counter.add(forward=view.fraction, adjoint=2 * view.fraction)
        if self.network.n_theta == 0:
            return self.xp.zeros(0, dtype=self.dtype)
        g = None
        with np.errstate(over="ignore", invalid="ignore"):
            for c, Yc, cc in self._chunk_caches(theta, view, cache):
                gc, _ = self.network._second_order_step(W[c], dW[c], v_theta, None, theta, Yc, cc)
                if gc is not None:
                    g = gc if g is None else g + gc
        return g if g is not None else self.xp.zeros(self.network.n_theta, dtype=self.dtype)

    def __init__(self, network, loss, Y, C, *, regularizer, classifier_regularizer, output_regularizer, mask,
                 hessian_fraction, rng, preconditioner, chunk_size=None):
        if not isinstance(network, Element):
            raise TypeError(f"network must be a meganet Element (Meganet, Sequential, a block ...), "
                            f"got {type(network).__name__}")
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a meganet.losses Loss (SoftmaxCrossEntropy, LogisticRegression, "
                            f"LeastSquares), got {type(loss).__name__}")
        if tuple(network.shape_out) != tuple(loss.shape_in):
            raise ValueError(f"the network's output shape {tuple(network.shape_out)} does not match the loss's "
                             f"input shape {tuple(loss.shape_in)} (loss.shape_in must equal network.shape_out)")
        self.network, self.loss = network, loss
        # ---- data
        xp = get_array_module(Y, names=["Y"])
        check_array("Y", Y, xp=xp)
        shape_in = tuple(network.shape_in)
        if Y.ndim != 1 + len(shape_in) or tuple(Y.shape[1:]) != shape_in:
            exp = "(n_examples, " + ", ".join(str(s) for s in shape_in) + ")"
            raise ValueError(f"Y must have shape {exp} (examples first) for this network, got {tuple(Y.shape)}")
        if Y.shape[0] == 0:
            raise ValueError("Y must hold at least one example, got 0")
        self.xp, self.dtype = xp, Y.dtype
        self.n_examples = int(Y.shape[0])
        self._check_labels("C", C, "Y", Y.shape[0])
        if mask is not None:
            get_array_module(mask, names=["mask"])
            if getattr(mask, "ndim", 0) == 0 or mask.shape[0] != Y.shape[0]:
                raise ValueError(f"mask must have one entry per example of Y ({Y.shape[0]}) along axis 0, "
                                 f"got shape {tuple(getattr(mask, 'shape', ()))}")
        self.Y, self.C, self.mask = Y, C, mask
        # the loss validates the labels (classes, one-hot rows, dtype, mask) once here
        Z0 = xp.zeros((Y.shape[0], *loss.shape_in), dtype=self.dtype)
        loss.evaluate(Z0, xp.zeros(loss.n_w, dtype=self.dtype), C, mask=mask, need=("value",))
        self._eligible = self._labelled_examples(mask)
        # ---- regularizers
        self.regularizer = self._check_reg("regularizer", regularizer, network.n_theta, "network.n_theta")
        self.classifier_regularizer = self._check_reg("classifier_regularizer", classifier_regularizer, loss.n_w,
                                                      "loss.n_w")
        if output_regularizer is not None:
            if not isinstance(output_regularizer, FeatureSmoothness):
                raise TypeError(f"output_regularizer must be None or a FeatureSmoothness, "
                                f"got {type(output_regularizer).__name__}")
            if tuple(output_regularizer.shape_in) != tuple(network.shape_out):
                raise ValueError(f"output_regularizer acts on outputs of shape {output_regularizer.shape_in} but "
                                 f"the network's output shape is {tuple(network.shape_out)}")
        self.output_regularizer = output_regularizer
        # ---- options
        if hessian_fraction is not None:
            if not isinstance(hessian_fraction, numbers.Real) or isinstance(hessian_fraction, bool):
                raise TypeError(f"hessian_fraction must be None or a number in (0, 1], got {hessian_fraction!r}")
            hessian_fraction = float(hessian_fraction)
            if not 0.0 < hessian_fraction <= 1.0:
                raise ValueError(f"hessian_fraction must lie in (0, 1] (fraction of the examples the Gauss-Newton "
                                 f"products use), got {hessian_fraction!r}")
            if hessian_fraction == 1.0:
                hessian_fraction = None
        self.hessian_fraction = hessian_fraction
        self.rng = check_rng(rng)
        check_option("preconditioner", preconditioner, _PRECONDITIONERS)
        if preconditioner == "regularizer" and self.regularizer is None:
            raise ValueError("preconditioner='regularizer' needs a regularizer on θ (its Hessian is the "
                             "preconditioner); pass regularizer=... or preconditioner=None")
        self.preconditioner_kind = preconditioner
        if chunk_size is not None:
            if not isinstance(chunk_size, numbers.Integral) or isinstance(chunk_size, bool) or chunk_size < 1:
                raise ValueError(f"chunk_size must be None (one pass over all examples) or a positive int "
                                 f"(examples per chunk of a memory-bounded pass), got {chunk_size!r}")
            chunk_size = int(chunk_size)
        self.chunk_size = chunk_size
        self.counter = WorkCounter()
        self._full_view = DataView(Y=Y, C=C, mask=mask, idx=None, fraction=1.0)

    # ------------------------------------------------------------ validation
    @staticmethod
    def _check_labels(name, C, Y_name, n):
        try:
            get_array_module(C, names=[name])
        except TypeError:
            raise TypeError(f"{name} must be a numpy or cupy array of labels, got {type(C).__name__}") from None
        if C.ndim == 0 or C.shape[0] != n:
            got = "a scalar" if C.ndim == 0 else f"{C.shape[0]} labels"
            raise ValueError(f"{name} must hold one label (or target row) per example: {Y_name} has {n} examples, "
                             f"{name} has {got} (shape {tuple(C.shape)})")

    @staticmethod
    def _check_reg(name, reg, n, what):
        if reg is None:
            return None
        if not isinstance(reg, Regularizer):
            raise TypeError(f"{name} must be None or a meganet.regularizers Regularizer, got {type(reg).__name__}")
        if reg.n_theta != n:
            raise ValueError(f"{name} acts on vectors of length {reg.n_theta}, but {what} = {n}")
        return reg

    def _labelled_examples(self, mask):
        """Indices (numpy) of the examples with at least one labelled sample."""
        if mask is None:
            return np.arange(self.n_examples)
        m = mask.reshape(mask.shape[0], -1)
        m = (m != 0).any(axis=1)
        return np.flatnonzero(to_numpy(m))

    def _check_vec(self, name, v, n):
        mod = get_array_module(v, names=[name])
        if mod is not self.xp:
            raise TypeError(f"{name} is a {mod.__name__} array but the objective's data Y are {self.xp.__name__} "
                            "arrays; use one backend (move x with meganet.backend.to_backend)")
        if v.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {v.dtype} but the objective computes in {np.dtype(self.dtype)} (the "
                            "dtype of its data Y); cast explicitly (meganet never up- or down-casts silently)")
        check_array(name, v, shape=(n,))
        return v

    # ------------------------------------------------------------ data views
    def _view(self, idx):
        """The examples ``idx`` (numpy int array, sorted or not) of the training set."""
        xp = self.xp
        ii = xp.asarray(idx)
        return DataView(Y=self.Y[ii], C=self.C[ii], mask=None if self.mask is None else self.mask[ii], idx=idx,
                        fraction=len(idx) / self.n_examples)

    def draw_hessian_sample(self):
        """A fresh random subsample of the labelled examples for the Gauss-Newton products
        (``hessian_fraction`` of them, at least one), or the full view."""
        if self.hessian_fraction is None:
            return self._full_view
        pool = self._eligible
        k = max(1, int(round(self.hessian_fraction * pool.size)))
        if k >= pool.size:
            return self._full_view
        idx = np.sort(self.rng.choice(pool, size=k, replace=False))
        return self._view(idx)

    # ------------------------------------------------------------ counted passes
    # Overflow in a pass (huge weights) is not an error here: the objective reports f = NaN and
    # NaN derivatives, and the solvers stop with status 'non_finite', keeping the last good iterate.
    def _chunked(self, view):
        """Whether passes over ``view`` run chunk by chunk."""
        return self.chunk_size is not None and view.Y.shape[0] > self.chunk_size

    def _chunks(self, n):
        return [slice(a, min(a + self.chunk_size, n)) for a in range(0, n, self.chunk_size)]

    def _forward(self, theta, view, *, count=True):
        with np.errstate(over="ignore", invalid="ignore"):
            if self._chunked(view):
                n = view.Y.shape[0]
                Z = self.xp.concatenate([self.network._apply(theta, view.Y[c]) for c in self._chunks(n)])
                cache = ChunkedCache(n_examples=n, chunk_size=self.chunk_size)
            else:
                Z, cache = self.network._forward(theta, view.Y)
        if count:
            self.counter.add(forward=view.fraction)
        return Z, cache

    def _chunk_caches(self, theta, view, cache):
        """``(slice, Y_chunk, cache_chunk)`` for every chunk of ``view``: the one cache of an
        unchunked pass, or each chunk's forward pass recomputed (counted) for a chunked one."""
        if not isinstance(cache, ChunkedCache):
            yield slice(None), view.Y, cache
            return
        if cache.n_examples != view.Y.shape[0]:
            raise ValueError(f"the chunked cache was made for {cache.n_examples} examples, the view has "
                             f"{view.Y.shape[0]}")
        self.counter.add(forward=view.fraction)  # the recomputed forward passes of the chunks
        for c in self._chunks(cache.n_examples):
            Yc = view.Y[c]
            yield c, Yc, self.network._forward(theta, Yc)[1]

    def _adjoint(self, W, theta, view, cache):
        """``J_θᵀ W`` (one adjoint pass over the view; chunked: plus one recomputed forward pass)."""
        self.counter.add(adjoint=view.fraction)
        if self.network.n_theta == 0:
            return self.xp.zeros(0, dtype=self.dtype)
        g = None
        with np.errstate(over="ignore", invalid="ignore"):
            for c, Yc, cc in self._chunk_caches(theta, view, cache):
                gc, _ = self.network._JTmv(W[c], theta, Yc, cc, True, False, False)
                if gc is not None:
                    g = gc if g is None else g + gc
        return g if g is not None else self.xp.zeros(self.network.n_theta, dtype=self.dtype)

    def _jmv(self, v_theta, theta, view, Z, cache):
        """``J_θ v`` (one linearized forward pass over the view; chunked: plus one recomputed forward pass)."""
        self.counter.add(forward=view.fraction)
        if self.network.n_theta == 0:
            return self.xp.zeros_like(Z)
        with np.errstate(over="ignore", invalid="ignore"):
            parts = [self.network._Jmv(v_theta, None, theta, Yc, cc)
                     for _, Yc, cc in self._chunk_caches(theta, view, cache)]
        return parts[0] if len(parts) == 1 else self.xp.concatenate(parts)

    def _finite(self, a):
        return bool(self.xp.isfinite(a).all())

    def _nan(self, n):
        return self.xp.full(n, np.nan, dtype=self.dtype)

    # ------------------------------------------------------------ regularizer pieces
    def _reg_value(self, reg, v):
        return 0.0 if reg is None else float(reg.value(v))

    def _add_reg_grad(self, g, reg, v):
        return g if reg is None else g + reg.gradient(v)

    def _add_reg_hess(self, Hv, reg, dv, v):
        return Hv if reg is None else Hv + reg.hess_mv(dv, v)

    def _reg_diag(self, reg, v):
        return self.xp.zeros_like(v) if reg is None else reg.hessian_diagonal(v)

    def _diagonal_preconditioner(self, blocks):
        """``r ↦ r / (d + δ)`` from diagonal blocks ``d`` (θ, w).

        Entries a regularizer does not reach (``d ≤ 1e-12·max d`` in their
        block, e.g. a layer left out of a :class:`BlockRegularizer`) get the
        mean of the block's positive entries instead of a near-zero that would
        blow the step up; ``δ = 1e-8·max d`` keeps ``M`` positive definite.
        ``None`` if a block has no positive entry.
        """
        xp = self.xp
        filled = []
        for d in blocks:
            if d.size == 0:
                filled.append(d)
                continue
            dmax = float(d.max())
            if not dmax > 0.0:
                return None
            pos = d > 1e-12 * dmax
            mean = float(d[pos].mean())
            filled.append(xp.where(pos, d, mean))
        d = xp.concatenate(filled)
        dinv = 1.0 / (d + 1e-8 * float(d.max()))
        return lambda r: dinv * r

    # ------------------------------------------------------------ metrics
    def _metrics(self, theta, w, Y, C, mask):
        """Data loss and accuracy of the network with classifier ``w`` on ``(Y, C)`` (no work counted)."""
        xp = get_array_module(Y, names=["Y"])
        if xp is not self.xp:
            raise TypeError(f"Y is a {xp.__name__} array but the objective's data are {self.xp.__name__} arrays")
        check_array("Y", Y, dtype=self.dtype, xp=xp)
        shape_in = tuple(self.network.shape_in)
        if Y.ndim != 1 + len(shape_in) or tuple(Y.shape[1:]) != shape_in:
            exp = "(n_examples, " + ", ".join(str(s) for s in shape_in) + ")"
            raise ValueError(f"Y must have shape {exp} for this network, got {tuple(Y.shape)}")
        if Y.shape[0] == 0:
            raise ValueError("Y has 0 examples: the metrics (loss, accuracy) are means over examples and need at "
                             "least one")
        self._check_labels("C", C, "Y", Y.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            Z = self.network._apply(theta, Y)  # no cache: evaluation only
        if not (self._finite(Z) and self._finite(w)):
            return dict(loss=float("nan"), accuracy=float("nan"), n_examples=int(Y.shape[0]))
        ev = self.loss.evaluate(Z, w, C, mask=mask, need=("value",))
        out = dict(loss=float(ev.value), accuracy=None, n_examples=int(Y.shape[0]))
        if isinstance(self.loss, LeastSquares):
            out["relative_error"] = self.loss.relative_error(Z, w, C, mask=mask)
            if self._one_hot_like(C, mask):
                out["accuracy"] = self.loss.accuracy(Z, w, C, mask=mask)
        else:
            out["accuracy"] = self.loss.accuracy(Z, w, C, mask=mask)
        return out

    def _one_hot_like(self, C, mask):
        """Class labels, or target rows that are one-hot (accuracy is meaningful)."""
        if C.dtype.kind in "biu":
            return True
        if self.loss.n_classes < 2:
            return False
        xp = get_array_module(C)
        T = xp.moveaxis(C, 1, -1).reshape(-1, self.loss.n_classes) if C.ndim > 2 else C
        if mask is not None:
            T = T[(mask.reshape(-1) != 0)]
        return bool(((T == 0) | (T == 1)).all()) and bool((T.sum(axis=1) == 1).all())


def check_state_type(state, cls, name):
    if not isinstance(state, cls):
        raise TypeError(f"state must be the {cls.__name__} returned by {name}.value(x) / value_and_gradient(x), "
                        f"got {type(state).__name__}")


def same_point(a, b):
    """``a`` and ``b`` are the same point (the same array object, or equal values)."""
    if a is b:
        return True
    if a.shape != b.shape:
        return False
    xp = get_array_module(a)
    return bool(xp.array_equal(a, b))

