"""Shared derivatives of the parameter-free linear pooling elements."""

from __future__ import annotations

from ..backend import get_array_module
from ..core.element import Element

__all__ = ["LinearPooling"]


class LinearPooling(Element):
    """A linear map without parameters, ``Z = P Y``: ``J_Y = P``, ``J_Yᵀ = Pᵀ``, nothing to cache.

    Subclasses implement ``_pool(Y)`` (``P Y``) and ``_spread(W)`` (``Pᵀ W``)
    and set ``_Cache`` (an empty dataclass).
    """

    _Cache = None

    def _forward(self, theta, Y):
        return self._pool(Y), self._Cache()

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        if dY is None:
            xp = get_array_module(Y)
            return xp.zeros((Y.shape[0], *self.shape_out), dtype=Y.dtype)
        return self._pool(dY)

    has_second_order = True

    def _second_order(self, W, dtheta, dY, theta, Y, cache):
        """Linear in Y, no θ: no second derivative."""
        return None, None

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        dtheta = None
        if need_theta:
            xp = get_array_module(Y)
            dtheta = xp.zeros((Y.shape[0], 0) if per_example else (0,), dtype=Y.dtype)
        return dtheta, (self._spread(W) if need_Y else None)
