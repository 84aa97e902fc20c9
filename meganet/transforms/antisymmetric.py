"""Antisymmetric dense transform ``A(θ) = s·(K − Kᵀ − γI)`` (Haber & Ruthotto 2017, eq. 4.12)."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..core.layout import Layout
from ..core.validation import check_int, check_nonnegative, check_positive
from .base import Transform

__all__ = ["AntisymmetricDense"]


class AntisymmetricDense(Transform):
    r"""Dense map with an antisymmetric (shifted) matrix,

    .. math:: z = A(θ)\,y,\qquad A(θ) = s\,(K - K^\top - γ I),\quad K = \operatorname{reshape}(θ, (n, n)).

    For γ = 0 the matrix is antisymmetric, so its eigenvalues are purely
    imaginary and the ODE ``ẏ = σ(A y + b)`` is marginally stable; γ > 0 moves
    every eigenvalue to real part ``−s·γ`` (Haber & Ruthotto 2017, "Stable
    architectures for deep neural networks", eq. 4.12).  The antisymmetric
    ResNet uses ``s = 1/2``, which with γ = 0 is Meganet.m
    ``KernelTypes/denseAntiSym.m`` (``A = (K − Kᵀ)/2``).

    With examples in rows, ``Z = Y Aᵀ``.  A is *affine* in θ: the
    derivative ``∂A[dθ] = s (dK − dKᵀ)`` has no γ term, so for γ > 0
    ``∂A[dθ] ≠ A(dθ)`` and ``_dK_mv``/``_dKT_mv`` are written out here.  The
    θ-adjoint of ``dθ ↦ (∂A[dθ]) Y`` applied to W is ``s (G − Gᵀ)``,
    ``G = Wᵀ Y``.

    Parameters
    ----------
    n : int
        Number of features (A is n × n).
    gamma : float, default 0.0
        Non-negative shift γ.
    scale : float, default 1.0
        Positive factor s.

    Shapes
    ------
    Y : (n_examples, n) → Z : (n_examples, n)
    """

    def __init__(self, n, *, gamma=0.0, scale=1.0):
        self.n = check_int("n", n, minimum=1)
        self.gamma = check_nonnegative("gamma", gamma)
        self.scale = check_positive("scale", scale)
        # affine, not linear, in θ when γ ≠ 0 (K(dθ) would carry the shift)
        self.linear_in_theta = self.gamma == 0.0
        self.affine_in_theta = True  # ∂A[dθ] has no γ term: second-order products need only that
        self.shape_in = self.shape_out = (self.n,)
        self.layout = Layout([("K", self.n * self.n)])

    def matrix(self, theta):
        """``A(θ) = s (K − Kᵀ − γI)``, shape ``(n, n)`` (a new array)."""
        K = theta.reshape(self.n, self.n)
        A = K - K.T
        if self.gamma:
            xp = get_array_module(theta)
            A = A - self.gamma * xp.eye(self.n, dtype=theta.dtype)
        return self.scale * A

    def _init_theta(self, rng):
        return rng.standard_normal(self.n * self.n) / np.sqrt(2.0 * self.n)

    def _apply(self, theta, Y):
        return Y @ self.matrix(theta).T

    def _apply_T(self, theta, Z):
        return Z @ self.matrix(theta)

    def _dA(self, dtheta):
        """``∂A[dθ] = s (dK − dKᵀ)`` (independent of θ, no γ)."""
        dK = dtheta.reshape(self.n, self.n)
        return self.scale * (dK - dK.T)

    def _dK_mv(self, theta, dtheta, Y):
        """``(∂A[dθ]) Y`` in row form: ``Y ∂A[dθ]ᵀ``."""
        return Y @ self._dA(dtheta).T

    def _dKT_mv(self, theta, dtheta, Z):
        """``(∂A[dθ])ᵀ Z`` in row form: ``Z ∂A[dθ]``."""
        return Z @ self._dA(dtheta)

    def _dK_adj(self, theta, Y, W, per_example):
        """``s (G − Gᵀ)`` with ``G = Wᵀ Y`` (per example ``G_s = w_s y_sᵀ``)."""
        if per_example:
            xp = get_array_module(Y)
            G = xp.einsum("so,si->soi", W, Y)
            return (self.scale * (G - G.transpose(0, 2, 1))).reshape(Y.shape[0], -1)
        G = W.T @ Y
        return (self.scale * (G - G.T)).reshape(-1)

    def __repr__(self):
        return f"AntisymmetricDense(n={self.n}, gamma={self.gamma}, scale={self.scale})"
