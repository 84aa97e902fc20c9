"""Dense transform ``K(θ) = reshape(θ, n_out, n_in)`` (Meganet.m ``dense.m``)."""

from __future__ import annotations

import numpy as np

from ..core.layout import Layout
from ..core.validation import check_int
from .base import Transform

__all__ = ["Dense"]


class Dense(Transform):
    r"""Dense linear map ``z = K y`` with ``K = reshape(θ, (n_out, n_in))``.

    With examples in rows, ``Z = Y Kᵀ``.  Linear in θ: ``∂K[dθ] = K(dθ)``;
    the θ-adjoint is ``∂_θ⟨KY, W⟩ = vec(Wᵀ Y)``.

    Corresponds to Meganet.m ``kernelTypes/dense.m``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output features.

    Shapes
    ------
    Y : (n_examples, n_in) → Z : (n_examples, n_out)
    """

    def __init__(self, n_in, n_out):
        self.n_in_ = check_int("n_in", n_in, minimum=1)
        self.n_out_ = check_int("n_out", n_out, minimum=1)
        self.shape_in = (self.n_in_,)
        self.shape_out = (self.n_out_,)
        self.layout = Layout([("K", self.n_out_ * self.n_in_)])

    def matrix(self, theta):
        """``K(θ)``, shape ``(n_out, n_in)`` (a view of θ)."""
        return theta.reshape(self.n_out_, self.n_in_)

    def _init_theta(self, rng):
        return rng.standard_normal(self.n_theta) / np.sqrt(self.n_in_)

    def _apply(self, theta, Y):
        return Y @ self.matrix(theta).T

    def _apply_T(self, theta, Z):
        return Z @ self.matrix(theta)

    def _dK_adj(self, theta, Y, W, per_example):
        if per_example:
            xp = _xp(Y)
            return xp.einsum("so,si->soi", W, Y).reshape(Y.shape[0], -1)
        return (W.T @ Y).reshape(-1)


def _xp(a):
    from ..backend import get_array_module

    return get_array_module(a)
