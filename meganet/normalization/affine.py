"""Per-channel affine scaling (Meganet.m ``affineScalingLayer.m``)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Normalization

__all__ = ["AffineScaling", "AffineScalingCache"]


@dataclass
class AffineScalingCache:
    """Nothing to keep: the parameter-free part is the identity."""


class AffineScaling(Normalization):
    r"""Trainable per-channel scale and shift,

    .. math:: Z_c = s_c\,Y_c + b_c ,

    θ = (s, b), one scale and one bias per channel (axis 1; for vector
    features one per feature), broadcast over the pixels.  ``s = 1``, ``b = 0``
    initially.  Implemented as :class:`~meganet.normalization.base.Normalization`
    with the identity as parameter-free map, so its derivatives are the shared
    ones: ``dZ = s ⊙ dY + ds ⊙ Y + db``, ``J_Yᵀ W = s ⊙ W``,
    ``J_sᵀ W = Σ W ⊙ Y``, ``J_bᵀ W = Σ W`` (sums over examples and pixels).

    Corresponds to Meganet.m ``layers/affineScalingLayer.m`` with
    ``isWeight = [0,1,0]`` (weights along the channel dimension only), as used
    by ``getBatchNormLayer.m`` and ``getInstNormLayer.m``.

    Parameters
    ----------
    shape : int or tuple of int
        Feature shape ``(F,)`` or ``(C, H, W)`` (any ``(C, *spatial)``).
    """

    def __init__(self, shape):
        super().__init__(shape, affine=True)

    def _normalize(self, Y):
        return Y, AffineScalingCache()

    def _normalize_Jmv(self, dY, cache):
        """Identity."""
        return dY

    def _normalize_JTmv(self, W, cache):
        """Identity."""
        return W

    def _normalize_second(self, W, dY, cache):
        """The identity has no second derivative."""
        return None

    def __repr__(self):
        return f"AffineScaling(shape={self.shape_in})"
