"""Global average pooling ``Z_c = mean_p Y_{c,p}`` (the last block of the JMIV CNNs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..core.layout import Layout
from ._pooling_base import LinearPooling
from ..core.validation import check_shape_tuple

__all__ = ["GlobalAvgPool", "GlobalAvgPoolCache"]


@dataclass
class GlobalAvgPoolCache:
    """Global average pooling is linear: no intermediates."""


class GlobalAvgPool(LinearPooling):
    r"""Average of every channel over all pixels,

    .. math:: Z_c = \frac{1}{HW} \sum_{i=1}^{H} \sum_{j=1}^{W} Y_{c,i,j},

    which turns the last feature maps of a CNN into one feature vector per
    example (Ruthotto & Haber, "Deep neural networks motivated by partial
    differential equations", JMIV 2019, §4: "average across all pixels in
    channel" before the classifier; Meganet.m ``examples/2018-jmiv/cnnDriver.m``,
    ``connector(opPoolMCN([nImg nf], nImg))``).  Linear, no parameters; the
    adjoint spreads each value, divided by ``HW``, over its channel.
    (numpy's ``mean`` does the forward; the adjoint is a broadcast.)

    Parameters
    ----------
    shape_in : tuple of int
        ``(C, H, W)``; any ``(C, *spatial)`` with at least one spatial axis works.

    Shapes
    ------
    Y : (n_examples, C, H, W) → Z : (n_examples, C)
    """

    _Cache = GlobalAvgPoolCache

    def __init__(self, shape_in):
        shape_in = check_shape_tuple("shape_in", shape_in)
        if len(shape_in) < 2:
            raise ValueError(f"shape_in must be (channels, height, width), got {shape_in}")
        self.shape_in = shape_in
        self.shape_out = (shape_in[0],)
        self._axes = tuple(range(2, 1 + len(shape_in)))
        self._n_pixels = int(np.prod(shape_in[1:]))
        self.layout = Layout([])

    def _pool(self, Y):
        return Y.mean(axis=self._axes)

    def _spread(self, W):
        """Adjoint of the pooling: ``W_c / (HW)`` on every pixel of channel c."""
        xp = get_array_module(W)
        n = W.shape[0]
        B = xp.broadcast_to(W.reshape(W.shape + (1,) * len(self._axes)), (n, *self.shape_in))
        return B * (1.0 / self._n_pixels)

    def __repr__(self):
        return f"GlobalAvgPool(shape_in={self.shape_in})"
