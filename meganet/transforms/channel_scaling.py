"""Per-channel scaling ``Z[:, c] = θ_c · Y[:, c]``."""

from __future__ import annotations

import numpy as np

from ..core.layout import Layout
from ..core.validation import check_shape_tuple
from ..layers.bias import channel_broadcast, channel_sum
from .base import Transform

__all__ = ["ChannelScaling"]


class ChannelScaling(Transform):
    r"""Diagonal transform with one scale per channel,

    .. math:: Z_{:, c, …} = θ_c\, Y_{:, c, …},

    i.e. ``K(θ) = diag(θ) ⊗ I_pixels`` (one scale per feature for vector
    inputs).  This is the learnable scaling used after normalization layers;
    it corresponds to Meganet.m ``KernelTypes/scalingKernel.m`` with only the
    channel weights trained (its bias part, as in ``layers/affineScalingLayer.m``,
    is :class:`~meganet.layers.Bias` here).  K is diagonal, so
    ``Kᵀ = K``; it is linear in θ and the θ-adjoint is
    ``Σ_{examples, pixels} W ⊙ Y`` per channel.

    Parameters
    ----------
    shape : int or tuple of int
        Feature shape, ``(n_features,)`` or ``(C, H, W)``.

    Shapes
    ------
    Y : (n_examples, *shape) → Z : (n_examples, *shape)
    """

    def __init__(self, shape):
        self.shape_in = self.shape_out = check_shape_tuple("shape", shape)
        self.layout = Layout([("s", self.shape_in[0])])

    def _init_theta(self, rng):
        """Identity map: every scale 1."""
        return np.ones(self.n_theta)

    def _apply(self, theta, Y):
        return channel_broadcast(theta, Y.ndim) * Y

    def _apply_T(self, theta, Z):
        return channel_broadcast(theta, Z.ndim) * Z

    def _dK_adj(self, theta, Y, W, per_example):
        return channel_sum(W * Y, per_example)

    def __repr__(self):
        return f"ChannelScaling(shape={self.shape_in})"
