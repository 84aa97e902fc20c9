"""The time derivative between the layers of a time-stepping block, ``L θ = (θ_{j+1} − θ_j)/√h``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..core.validation import check_int, check_positive
from ._difference import diff_matrix, forward_diff, forward_diff_T
from .base import Operator

__all__ = ["TimeDifference"]


class TimeDifference(Operator):
    r"""Scaled forward difference in time of per-step weights,

    .. math::

        (Lθ)_j = \frac{θ_{j+1} − θ_j}{\sqrt h},\quad j = 0, …, N−2,
        \qquad \tfrac12 \|Lθ\|^2 = \frac{1}{2h} \sum_{j=1}^{N-1} \|θ_j − θ_{j−1}\|^2,

    the midpoint rule for ``½ ∫ ‖∂_t θ‖² dt``, so that
    ``Tikhonov(TimeDifference(N, n, h=h), alpha=α)`` is the smoothness-in-time
    regularizer ``α/(2h) Σ_j ‖K_j − K_{j−1}‖²`` of Haber & Ruthotto 2017, eq. 5.23.

    Layout: a time-stepping block with ``N`` steps stores its per-step weight
    sets consecutively, ``θ = (θ_0, …, θ_{N−1})`` each of length ``n_per_step``
    (see :class:`meganet.integrators.block.TimeSteppingBlock`), i.e. θ viewed as
    an ``(N, n_per_step)`` array.  (A block with a coarser time basis stores
    ``n_basis`` coefficient sets instead; pass ``n_steps=n_basis`` and the
    coefficient spacing as ``h``.)  ``L = (D_N ⊗ I_n)/√h`` with ``D_N`` the
    ``(N−1) × N`` forward difference; there are no boundary rows, so weights
    constant in time are its null space.  Products use array slicing;
    :meth:`matrix` assembles the Kronecker product with ``scipy.sparse``.

    Parameters
    ----------
    n_steps : int
        ``N ≥ 1`` (with one step ``L`` has no rows and the penalty is zero).
    n_per_step : int
        Length of one step's weight set.
    h : float
        Step size ``h = T/N`` (default 1).
    """

    def __init__(self, n_steps, n_per_step, *, h=1.0):
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.n_per_step = check_int("n_per_step", n_per_step, minimum=1)
        self.h = check_positive("h", h)
        self.n_in = self.n_steps * self.n_per_step
        self.n_out = (self.n_steps - 1) * self.n_per_step
        self._scale = float(1.0 / np.sqrt(self.h))  # a Python float: keeps float32

    def apply(self, x):
        return (self._scale * forward_diff(x.reshape(self.n_steps, self.n_per_step), 0)).reshape(-1)

    def apply_T(self, y):
        return (self._scale * forward_diff_T(y.reshape(self.n_steps - 1, self.n_per_step), 0)).reshape(-1)

    def gram_diagonal(self):
        D = diff_matrix(self.n_steps)
        d = np.asarray((D.T @ D).diagonal()).ravel() / self.h
        return np.repeat(d, self.n_per_step)

    def matrix(self):
        D = diff_matrix(self.n_steps) * self._scale
        return sp.kron(D, sp.identity(self.n_per_step), format="csr")

    def __repr__(self):
        return f"TimeDifference(n_steps={self.n_steps}, n_per_step={self.n_per_step}, h={self.h})"
