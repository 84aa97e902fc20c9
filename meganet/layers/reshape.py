"""Reshaping the features of every example: ``Z = reshape(Y, (n_examples, *shape_out))``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..core.element import Element
from ..core.layout import Layout
from ..core.validation import check_shape_tuple

__all__ = ["Reshape", "Flatten"]


@dataclass
class ReshapeCache:
    """Reshaping needs no intermediates."""


class Reshape(Element):
    """Reshape the features of each example, ``Z = reshape(Y, (n, *shape_out))``.

    No parameters.  ``J_Y`` is the same reshape and ``J_Yᵀ`` the inverse
    reshape; on C-contiguous input both are views (zero-copy).  Corresponds
    to Meganet.m ``layers/reshapeLayer.m`` (without its permutation option).

    Parameters
    ----------
    shape_in, shape_out : int or tuple of int
        Feature shapes with the same number of entries.

    Shapes
    ------
    Y : (n_examples, *shape_in) → Z : (n_examples, *shape_out)
    """

    def __init__(self, shape_in, shape_out):
        self.shape_in = check_shape_tuple("shape_in", shape_in)
        self.shape_out = check_shape_tuple("shape_out", shape_out)
        n_in, n_out = int(np.prod(self.shape_in)), int(np.prod(self.shape_out))
        if n_in != n_out:
            raise ValueError(
                f"shape_out must have as many entries as shape_in: shape_in {self.shape_in} has {n_in}, "
                f"shape_out {self.shape_out} has {n_out}"
            )
        self.layout = Layout([])

    def _forward(self, theta, Y):
        return Y.reshape((Y.shape[0], *self.shape_out)), ReshapeCache()

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        if dY is None:
            xp = get_array_module(Y)
            return xp.zeros((Y.shape[0], *self.shape_out), dtype=Y.dtype)
        return dY.reshape((dY.shape[0], *self.shape_out))

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        dtheta = None
        if need_theta:
            xp = get_array_module(Y)
            dtheta = xp.zeros((Y.shape[0], 0) if per_example else (0,), dtype=Y.dtype)
        return dtheta, (W.reshape((W.shape[0], *self.shape_in)) if need_Y else None)

    has_second_order = True

    def _second_order(self, W, dtheta, dY, theta, Y, cache):
        """A reshape is linear in Y and has no θ: no second derivative."""
        return None, None

    def __repr__(self):
        return f"Reshape(shape_in={self.shape_in}, shape_out={self.shape_out})"


class Flatten(Reshape):
    """Flatten the features of each example: ``(n, *shape_in) → (n, prod(shape_in))``.

    A :class:`Reshape` to ``(prod(shape_in),)``, e.g. between the
    convolutional part of a network and its dense classifier.

    Parameters
    ----------
    shape_in : int or tuple of int
    """

    def __init__(self, shape_in):
        shape_in = check_shape_tuple("shape_in", shape_in)
        super().__init__(shape_in, (int(np.prod(shape_in)),))

    def __repr__(self):
        return f"Flatten(shape_in={self.shape_in})"
