"""Tikhonov regularization ``α/2 ‖L(θ − θ_ref)‖²`` (Meganet.m ``regularization/tikhonovReg.m``)."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from ..core.validation import check_int
from .base import Operator, Regularizer, _const

__all__ = ["Tikhonov", "Identity"]


class Identity(Operator):
    """``L = I`` on vectors of length ``n`` (weight decay).

    Parameters
    ----------
    n : int
    """

    def __init__(self, n):
        self.n_in = self.n_out = check_int("n", n, minimum=1)

    def apply(self, x):
        return x

    def apply_T(self, y):
        return y

    def gram_diagonal(self):
        return np.ones(self.n_in)

    def matrix(self):
        return sp.identity(self.n_in, format="csr")


class Tikhonov(Regularizer):
    r"""Tikhonov regularization

    .. math::

        R(θ) = \frac{α}{2} \| L (θ − θ_{ref}) \|^2,\qquad
        ∇R = α Lᵀ L (θ − θ_{ref}),\qquad ∇²R = α Lᵀ L.

    The choice of ``L`` gives the regularizers of Haber & Ruthotto 2017, §5:

    * ``L = I`` (pass an int ``n_theta``): weight decay;
    * ``L =`` :class:`~meganet.regularizers.time_derivative.TimeDifference`:
      smoothness of the weights in time (layer depth),
      ``α/(2h) Σ_j ‖K_j − K_{j−1}‖²`` (eq. 5.23);
    * ``L =`` :class:`~meganet.regularizers.laplacian.Laplacian2D`: spatial
      smoothness of image-shaped classifier weights, ``α/2 ‖Δ_h W‖²`` (eq. 5.25).

    Corresponds to Meganet.m ``regularization/tikhonovReg.m``.

    Parameters
    ----------
    L : int or Operator
        An int ``n`` means the identity on vectors of length ``n``.
    alpha : float
        ``α ≥ 0`` (default 1).
    theta_ref : array, shape (n_theta,), optional
        Reference ``θ_ref`` (default 0).

    Examples
    --------
    >>> import numpy as np
    >>> R = Tikhonov(3, alpha=2.0)
    >>> float(R.value(np.array([1.0, 2.0, 2.0])))
    9.0
    """

    is_quadratic = True

    def __init__(self, L, *, alpha=1.0, theta_ref=None):
        if isinstance(L, numbers.Integral) and not isinstance(L, bool):
            L = Identity(L)
        if not isinstance(L, Operator):
            raise TypeError(
                f"L must be an int (identity of that size) or a meganet.regularizers Operator "
                f"(Identity, TimeDifference, Laplacian2D), got {type(L).__name__}"
            )
        self.L = L
        self.n_theta = L.n_in
        self.alpha = self._alpha(alpha)
        self.theta_ref = self._init_ref(theta_ref)
        self._diag = self.alpha * L.gram_diagonal()

    def _value_and_gradient(self, theta, need_grad):
        xp_ = _xp(theta)
        u = self._shifted(theta)
        Lu = self.L.apply(u)
        value = xp_.asarray(0.5 * self.alpha * (Lu * Lu).sum(), dtype=theta.dtype)
        grad = self.alpha * self.L.apply_T(Lu) if need_grad else None
        return value, grad

    def _hess_mv(self, v, theta):
        return self.alpha * self.L.apply_T(self.L.apply(v))

    def _hess_diag(self, theta):
        return _const(self._diag, theta, "Hessian diagonal").copy()

    def _hess_matrix(self, theta):
        Lm = self.L.matrix()
        return self.alpha * (Lm.T @ Lm)

    def __repr__(self):
        return f"Tikhonov(L={self.L!r}, alpha={self.alpha})"


def _xp(a):
    from ..backend import get_array_module

    return get_array_module(a)
