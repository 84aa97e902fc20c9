"""Total-variation normalization (Ruthotto & Haber, JMIV 2019, eq. 9; Meganet.m ``tvNormLayer.m``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..core.validation import check_positive
from ..kernels.normalization import RESCALE_HINT
from .base import Normalization

__all__ = ["TVNorm", "TVNormCache"]


@dataclass
class TVNormCache:
    """Intermediates of ``N(Y) = Y/r``."""

    Yhat: object  #: Y / r
    inv_r: object  #: 1/r = 1/sqrt(Σ_c Y_c² + ε), shape (n, 1, ...)


class TVNorm(Normalization):
    r"""Total-variation normalization: every pixel's channel vector divided by its smoothed length,

    .. math::

        Z_c = s_c\,\frac{Y_c}{r} + β_c,\qquad r = \sqrt{\textstyle\sum_{c'} Y_{c'}^2 + ε},

    per example and pixel (Ruthotto & Haber, "Deep neural networks motivated
    by partial differential equations", J. Math. Imaging Vis. 62, 2020 (online
    2019), eq. 9).  For vector features ``(n, F)`` each example's feature
    vector is divided by its smoothed Euclidean norm.

    ``∇N dY = dY/r − Y (Σ_c Y_c dY_c)/r³``, i.e. ``(I − ŷŷᵀ)/r`` per pixel with
    ``ŷ = Y/r``; self-adjoint and block diagonal over examples and pixels.
    A squared norm that overflows the data's dtype raises ``FloatingPointError``
    (``r = inf`` would give ``N(Y) = 0``).

    Corresponds to Meganet.m ``layers/tvNormLayer.m`` with ``affine=True``
    (that file always carries the scale and bias).  Unlike this class,
    ``tvNormLayer.m`` also subtracts the channel mean of every pixel and
    divides by ``sqrt(mean_c Y_c² + ε)`` (mean rather than sum); here the paper's
    eq. 9 is implemented as stated.

    Parameters
    ----------
    shape : int or tuple of int
        Feature shape ``(F,)`` or ``(C, H, W)`` (any ``(C, *spatial)``).
    eps : float, default 1e-4
        ε > 0 in ``r`` (``tvNormLayer.m``'s default); keeps the map smooth at
        ``Y = 0``.
    affine : bool, default False
        Trainable per-channel scale and bias, θ = (s, β), n_theta = 2C.
    """

    def __init__(self, shape, *, eps=1e-4, affine=False):
        super().__init__(shape, affine=affine)
        self.eps = check_positive("eps", eps)

    def _normalize(self, Y):
        xp = get_array_module(Y)
        with np.errstate(over="ignore"):  # an overflow is reported below
            sq = (Y * Y).sum(axis=1, keepdims=True)
        big = float(np.finfo(Y.dtype).max)
        if not bool(xp.all(sq <= big)):  # r = inf would give N(Y) = 0 silently
            amax = float(xp.max(xp.abs(Y)))
            raise FloatingPointError(
                f"{self!r}: the squared norm Σ_c Y_c² of a pixel's channel vector is not finite in {Y.dtype}: "
                f"the data reach |Y| = {amax:.3g} and the squares overflow beyond |Y| ≈ "
                f"{(big / self.shape_in[0]) ** 0.5:.2g}. {RESCALE_HINT}")
        inv_r = 1.0 / xp.sqrt(sq + self.eps)
        Yhat = Y * inv_r
        return Yhat, TVNormCache(Yhat=Yhat, inv_r=inv_r)

    def _normalize_Jmv(self, dY, cache):
        """``(dY − ŷ Σ_c ŷ_c dY_c)/r``."""
        return cache.inv_r * (dY - cache.Yhat * (cache.Yhat * dY).sum(axis=1, keepdims=True))

    def _normalize_JTmv(self, W, cache):
        """Self-adjoint: the same product as :meth:`_normalize_Jmv`."""
        return self._normalize_Jmv(W, cache)

    def _normalize_second(self, W, dY, cache):
        """Change of ``G = (W − ŷ⟨ŷ, W⟩)/r`` along ``dY`` (⟨⟩ over channels): with ``dX = ∇N dY`` and
        ``d(1/r) = −⟨ŷ, dY⟩/r²``, ``dG = −(⟨ŷ, dY⟩ G + dX⟨ŷ, W⟩ + ŷ⟨dX, W⟩)/r``."""
        X, ir = cache.Yhat, cache.inv_r
        dX = self._normalize_Jmv(dY, cache)
        G = self._normalize_JTmv(W, cache)

        def dot(a, b):
            return (a * b).sum(axis=1, keepdims=True)

        return -ir * (dot(X, dY) * G + dX * dot(X, W) + X * dot(dX, W))

    def _extra_repr(self):
        return f", eps={self.eps:g}"
