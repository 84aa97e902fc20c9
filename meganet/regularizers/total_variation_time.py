"""Smoothed total variation of the weights in time (Ruthotto & Haber, JMIV 2019, eq. 13)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import scipy.sparse as sp

from ..backend import get_array_module
from ..core.validation import check_int, check_option, check_positive
from ._difference import diff_matrix, forward_diff, forward_diff_T
from .base import Regularizer

__all__ = ["TotalVariationTime"]

_HESSIANS = ("exact", "lagged")


@dataclass
class _TVState:
    """``x``: the time derivatives ``(θ_{j+1} − θ_j)/h``, shape (N−1, n); ``s = sqrt(x² + τ)``."""

    x: Any
    s: Any


class TotalVariationTime(Regularizer):
    r"""Smoothed total variation in time of per-step weights,

    .. math::

        R(θ) = α \sum_{j=0}^{N-2} h \sum_i φ_τ\Bigl(\frac{θ_{j+1,i} − θ_{j,i}}{h}\Bigr),
        \qquad φ_τ(x) = \sqrt{x^2 + τ},

    the midpoint rule for ``α ∫_0^T φ_τ(∂_t θ(t)) dt`` of Ruthotto & Haber, "Deep
    neural networks motivated by partial differential equations" (JMIV 2019),
    eq. 13: a smoothed ℓ¹ norm of the time derivative, applied to every weight
    (component-wise, as Meganet.m ``regularization/l1Reg.m`` with the time
    derivative operator ``B1``).  It favours weights that are piecewise constant
    in time.  θ is laid out as in
    :class:`~meganet.regularizers.time_derivative.TimeDifference`: ``N`` steps of
    ``n_per_step`` weights each, stored consecutively.

    With ``x = D(θ − θ_ref)/h`` (``D`` the forward difference in time):

    * gradient ``∇R = α Dᵀ φ_τ'(x)``, ``φ_τ'(x) = x / sqrt(x² + τ)``;
    * exact Hessian (``hessian='exact'``): ``α/h · Dᵀ diag(φ_τ''(x)) D`` with
      ``φ_τ''(x) = τ / (x² + τ)^{3/2}``;
    * lagged diffusivity / Gauss-Newton (``hessian='lagged'``):
      ``α/h · Dᵀ diag(1/sqrt(x² + τ)) D`` (the fixed-point Hessian of Vogel &
      Oman; what Meganet.m ``l1Reg`` returns).  It dominates the exact one and
      is better conditioned where ``|x| ≫ √τ``.

    Both are symmetric positive semidefinite.  Note ``R(θ) ≥ α h (N−1) n √τ > 0``
    even for weights constant in time (where the gradient vanishes).

    Parameters
    ----------
    n_steps, n_per_step : int
        ``N ≥ 1`` steps of ``n_per_step`` weights.
    h : float
        Step size (default 1).
    alpha : float
        ``α ≥ 0`` (default 1).
    tau : float
        Smoothing ``τ > 0`` (default 1e-3).
    hessian : {'exact', 'lagged'}
        What :meth:`hess_mv`, :meth:`hessian_diagonal` and :meth:`hessian_matrix` return.
    theta_ref : array, shape (N · n_per_step,), optional
    """

    def __init__(self, n_steps, n_per_step, *, h=1.0, alpha=1.0, tau=1e-3, hessian="exact", theta_ref=None):
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.n_per_step = check_int("n_per_step", n_per_step, minimum=1)
        self.h = check_positive("h", h)
        self.alpha = self._alpha(alpha)
        self.tau = check_positive("tau", tau)
        self.hessian = check_option("hessian", hessian, _HESSIANS)
        self.n_theta = self.n_steps * self.n_per_step
        self.theta_ref = self._init_ref(theta_ref)

    def _state(self, theta):
        xp = get_array_module(theta)
        u = self._shifted(theta).reshape(self.n_steps, self.n_per_step)
        x = forward_diff(u, 0) * (1.0 / self.h)
        return _TVState(x=x, s=xp.sqrt(x * x + self.tau))

    def _weights(self, st):
        """Diagonal ``d`` of the Hessian ``α/h Dᵀ diag(d) D``."""
        if self.hessian == "exact":
            return self.tau / (st.s * st.s * st.s)
        return 1 / st.s

    def _value_and_gradient(self, theta, need_grad):
        xp = get_array_module(theta)
        st = self._state(theta)
        value = xp.asarray((self.alpha * self.h) * st.s.sum(), dtype=theta.dtype)
        grad = None
        if need_grad:
            grad = (self.alpha * forward_diff_T(st.x / st.s, 0)).reshape(-1)
        return value, grad

    def _hess_mv(self, v, theta):
        st = self._state(theta)
        dv = forward_diff(v.reshape(self.n_steps, self.n_per_step), 0)
        return ((self.alpha / self.h) * forward_diff_T(self._weights(st) * dv, 0)).reshape(-1)

    def _hess_diag(self, theta):
        # diag(Dᵀ diag(d) D)_j = d_{j−1} + d_j (missing terms at the ends): pad d with zeros
        xp = get_array_module(theta)
        d = self._weights(self._state(theta))
        z = xp.zeros((1, self.n_per_step), dtype=theta.dtype)
        dp = xp.concatenate([z, d, z], axis=0)
        return ((self.alpha / self.h) * (dp[:-1] + dp[1:])).reshape(-1)

    def _hess_matrix(self, theta):
        d = self._weights(self._state(theta)).reshape(-1)
        D = sp.kron(diff_matrix(self.n_steps), sp.identity(self.n_per_step), format="csr")
        return (self.alpha / self.h) * (D.T @ sp.diags(d) @ D)

    def __repr__(self):
        return (f"TotalVariationTime(n_steps={self.n_steps}, n_per_step={self.n_per_step}, h={self.h}, "
                f"alpha={self.alpha}, tau={self.tau}, hessian={self.hessian!r})")
