"""Average pooling over non-overlapping ``f × f`` blocks of images."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.layout import Layout
from ._pooling_base import LinearPooling
from ..core.validation import check_int, check_option, check_shape_tuple
from ..kernels import ENGINES
from ..kernels.pooling import avg_pool2d, avg_pool2d_adjoint

__all__ = ["AvgPool2d"]


@dataclass
class AvgPoolCache:
    """Average pooling is linear: no intermediates."""


class AvgPool2d(LinearPooling):
    r"""Average pooling of every channel over non-overlapping ``f × f`` blocks,

    .. math:: Z_{c,i,j} = \frac{1}{f^2} \sum_{a,b=0}^{f-1} Y_{c,\, f i + a,\, f j + b},

    which coarsens images between the stages of a multi-level network
    (Meganet.m ``utils/getAveragePooling.m``).  Linear, no parameters; the
    adjoint spreads each value, divided by ``f²``, over its block.  Computed
    as a reshape to ``(n, C, H/f, f, W/f, f)`` and a mean (what
    ``skimage.measure.block_reduce`` does; scipy has no block mean).

    Parameters
    ----------
    shape_in : tuple of int
        ``(C, H, W)``; H and W must be divisible by ``factor``.
    factor : int, default 2
        Block size f.
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        Kernel engine of :mod:`meganet.kernels.pooling`.

    Shapes
    ------
    Y : (n_examples, C, H, W) → Z : (n_examples, C, H/f, W/f)
    """

    _Cache = AvgPoolCache

    def __init__(self, shape_in, *, factor=2, engine="auto"):
        shape_in = check_shape_tuple("shape_in", shape_in)
        if len(shape_in) != 3:
            raise ValueError(f"shape_in must be (channels, height, width), got {shape_in}")
        self.factor = check_int("factor", factor, minimum=1)
        self.engine = check_option("engine", engine, ENGINES)
        C, H, W = shape_in
        if H % self.factor or W % self.factor:
            raise ValueError(
                f"image size (height, width) = ({H}, {W}) must be divisible by factor = {self.factor}"
            )
        self.shape_in = shape_in
        self.shape_out = (C, H // self.factor, W // self.factor)
        self.layout = Layout([])

    def _pool(self, Y):
        return avg_pool2d(Y, self.factor, engine=self.engine)

    def _spread(self, W):
        """Adjoint of the pooling: each value ``/f²`` on its ``f × f`` block."""
        return avg_pool2d_adjoint(W, self.factor, engine=self.engine)

    def __repr__(self):
        return f"AvgPool2d(shape_in={self.shape_in}, factor={self.factor}, engine={self.engine!r})"
