"""Negative semidefinite transform ``K(θ) = −CᵀC`` (Haber & Ruthotto 2017, eq. 4.14)."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..core.layout import Layout
from ..core.validation import check_int
from .base import Transform

__all__ = ["NegativeSemidefinite"]


class NegativeSemidefinite(Transform):
    r"""Dense map with a symmetric negative semidefinite matrix,

    .. math:: z = K(θ)\,y,\qquad K(θ) = -C^\top C,\quad C = \operatorname{reshape}(θ, (m, n)).

    All eigenvalues of K are real and ≤ 0 by construction (Haber & Ruthotto
    2017, "Stable architectures for deep neural networks", eq. 4.14, the
    parabolic/"negative definite" forward propagation).  Meganet.m has no
    kernel type for it.

    K is *quadratic* in θ (``linear_in_theta = False``):

    ``∂K[dC] = −(dCᵀ C + Cᵀ dC)`` (symmetric, so ``∂K[dC]ᵀ = ∂K[dC]``);
    with ``M = Σ_s w_s y_sᵀ = Wᵀ Y`` the θ-adjoint of ``dC ↦ (∂K[dC]) Y``
    applied to W is ``−C (M + Mᵀ) = −((Y Cᵀ)ᵀ W + (W Cᵀ)ᵀ Y)``.

    Parameters
    ----------
    n : int
        Number of features (K is n × n).
    m : int, optional
        Number of rows of C (default n); ``rank K ≤ min(m, n)``.

    Shapes
    ------
    Y : (n_examples, n) → Z : (n_examples, n)
    """

    linear_in_theta = False

    def __init__(self, n, *, m=None):
        self.n = check_int("n", n, minimum=1)
        self.m = self.n if m is None else check_int("m", m, minimum=1)
        self.shape_in = self.shape_out = (self.n,)
        self.layout = Layout([("C", self.m * self.n)])

    def factor(self, theta):
        """``C``, shape ``(m, n)`` (a view of θ)."""
        return theta.reshape(self.m, self.n)

    def matrix(self, theta):
        """``K(θ) = −CᵀC``, shape ``(n, n)``."""
        C = self.factor(theta)
        return -(C.T @ C)

    def _init_theta(self, rng):
        # entries of CᵀC are then O(1): eigenvalues of K in about [−(1+√(m/n))², 0]
        return rng.standard_normal(self.m * self.n) / np.sqrt(self.n)

    def _apply(self, theta, Y):
        """``−Y CᵀC`` (K is symmetric: ``Y Kᵀ = Y K``)."""
        C = self.factor(theta)
        return -((Y @ C.T) @ C)

    def _apply_T(self, theta, Z):
        return self._apply(theta, Z)

    def _dK_mv(self, theta, dtheta, Y):
        """``(∂K[dC]) Y`` in row form: ``−(Y Cᵀ dC + Y dCᵀ C)``."""
        C, dC = self.factor(theta), self.factor(dtheta)
        return -((Y @ C.T) @ dC + (Y @ dC.T) @ C)

    def _dKT_mv(self, theta, dtheta, Z):
        """``(∂K[dC])ᵀ Z = (∂K[dC]) Z`` (symmetric)."""
        return self._dK_mv(theta, dtheta, Z)

    def _dK_adj(self, theta, Y, W, per_example):
        """``−((Y Cᵀ)ᵀ W + (W Cᵀ)ᵀ Y)``, i.e. ``−C(M + Mᵀ)`` with ``M = WᵀY``."""
        C = self.factor(theta)
        YC, WC = Y @ C.T, W @ C.T
        if per_example:
            xp = get_array_module(Y)
            G = xp.einsum("sm,sn->smn", YC, W) + xp.einsum("sm,sn->smn", WC, Y)
            return (-G).reshape(Y.shape[0], -1)
        return (-(YC.T @ W + WC.T @ Y)).reshape(-1)

    def _dK_adj_deriv(self, theta, dtheta, Y, W):
        """Change of ``−C(M + Mᵀ)`` (``M = WᵀY``) along ``dC``: ``−dC(M + Mᵀ) = −((Y dCᵀ)ᵀ W + (W dCᵀ)ᵀ Y)``
        (K is quadratic in θ: the θ–θ block of the second-order products)."""
        return self._dK_adj(dtheta, Y, W, False)

    def __repr__(self):
        return f"NegativeSemidefinite(n={self.n}, m={self.m})"
