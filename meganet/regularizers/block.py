"""Different regularizers on different slices of θ (Meganet.m ``regularization/blockReg.m``)."""

from __future__ import annotations

import numbers

import scipy.sparse as sp

from ..backend import get_array_module
from ..core.validation import check_int
from .base import Regularizer

__all__ = ["BlockRegularizer"]


class BlockRegularizer(Regularizer):
    r"""Sum of regularizers acting on slices of θ,

    .. math::

        R(θ) = \sum_k R_k(θ[s_k]),\qquad ∇R = \sum_k P_kᵀ ∇R_k(θ[s_k]),\qquad
        ∇²R = \sum_k P_kᵀ ∇²R_k P_k,

    with ``P_k`` the restriction to the contiguous slice ``s_k``.  Slices may
    overlap (their terms add, e.g. weight decay on all of θ plus smoothness in
    time on one block) and need not cover θ (uncovered entries are not
    regularized: zero gradient and Hessian there).  A typical network
    objective uses one term per time-stepping block plus one on the
    classifier's ``W`` part.

    Generalizes Meganet.m ``regularization/blockReg.m`` (consecutive,
    non-overlapping blocks there).

    Parameters
    ----------
    n_theta : int
        Length of θ.
    terms : sequence of (slice or (start, stop), Regularizer)
        ``R_k.n_theta`` must equal the slice length; slices have step 1.

    Examples
    --------
    >>> import numpy as np
    >>> from meganet.regularizers import Tikhonov
    >>> R = BlockRegularizer(5, [((0, 2), Tikhonov(2)), (slice(1, 5), Tikhonov(4, alpha=2.0))])
    >>> float(R.value(np.ones(5)))
    5.0
    """

    def __init__(self, n_theta, terms):
        self.n_theta = check_int("n_theta", n_theta, minimum=1)
        terms = list(terms)
        if not terms:
            raise ValueError("terms must hold at least one (slice, regularizer) pair")
        self.slices, self.regularizers = [], []
        for k, term in enumerate(terms):
            try:
                where, reg = term
            except (TypeError, ValueError):
                raise TypeError(f"terms[{k}] must be a pair (slice, Regularizer), got {term!r}") from None
            s = self._as_slice(k, where)
            if not isinstance(reg, Regularizer):
                raise TypeError(f"terms[{k}][1] must be a Regularizer, got {type(reg).__name__}")
            if reg.n_theta != s.stop - s.start:
                raise ValueError(
                    f"terms[{k}]: slice {s.start}:{s.stop} has length {s.stop - s.start} but the regularizer "
                    f"{reg!r} acts on vectors of length {reg.n_theta}"
                )
            self.slices.append(s)
            self.regularizers.append(reg)
        self.is_quadratic = all(r.is_quadratic for r in self.regularizers)

    def _as_slice(self, k, where):
        if isinstance(where, slice):
            if where.step not in (None, 1):
                raise ValueError(f"terms[{k}]: slices must have step 1, got {where!r}")
            start, stop = where.start, where.stop
        else:
            try:
                start, stop = where
            except (TypeError, ValueError):
                raise TypeError(f"terms[{k}][0] must be a slice or a pair (start, stop), got {where!r}") from None
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (start, stop)):
            raise TypeError(f"terms[{k}]: slice bounds must be integers, got {start!r}:{stop!r}")
        start, stop = int(start), int(stop)
        if not 0 <= start < stop <= self.n_theta:
            raise ValueError(
                f"terms[{k}]: slice {start}:{stop} must satisfy 0 <= start < stop <= n_theta = {self.n_theta}"
            )
        return slice(start, stop)

    def _value_and_gradient(self, theta, need_grad):
        xp = get_array_module(theta)
        value = xp.zeros((), dtype=theta.dtype)
        grad = xp.zeros_like(theta) if need_grad else None
        for s, reg in zip(self.slices, self.regularizers):
            v, g = reg._value_and_gradient(theta[s], need_grad)
            value = value + v
            if need_grad:
                grad[s] += g
        return xp.asarray(value, dtype=theta.dtype), grad

    def _hess_mv(self, v, theta):
        out = get_array_module(theta).zeros_like(theta)
        for s, reg in zip(self.slices, self.regularizers):
            out[s] += reg._hess_mv(v[s], theta[s])
        return out

    def _hess_diag(self, theta):
        out = get_array_module(theta).zeros_like(theta)
        for s, reg in zip(self.slices, self.regularizers):
            out[s] += reg._hess_diag(theta[s])
        return out

    def _hess_matrix(self, theta):
        total = sp.csr_matrix((self.n_theta, self.n_theta))
        for s, reg in zip(self.slices, self.regularizers):
            Hk = sp.coo_matrix(reg._hess_matrix(theta[s]))
            total = total + sp.coo_matrix((Hk.data, (Hk.row + s.start, Hk.col + s.start)),
                                          shape=(self.n_theta, self.n_theta)).tocsr()
        return total

    def __repr__(self):
        parts = ", ".join(f"{s.start}:{s.stop}: {r!r}" for s, r in zip(self.slices, self.regularizers))
        return f"BlockRegularizer(n_theta={self.n_theta}, [{parts}])"
