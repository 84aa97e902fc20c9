"""Per-channel bias: ``Z = Y + b``."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.element import Element
from ..core.layout import Layout
from ..core.validation import check_shape_tuple

__all__ = ["Bias", "channel_sum", "channel_broadcast"]


def channel_broadcast(v, ndim):
    """Reshape a per-channel vector ``(C,)`` (or ``(n, C)``) to broadcast against
    arrays of ``ndim`` dimensions laid out ``(n, C, ...)``."""
    extra = (1,) * (ndim - 2)
    if v.ndim == 1:
        return v.reshape((1, v.shape[0]) + extra)
    return v.reshape(v.shape + extra)


def channel_sum(W, per_example):
    """Sum ``W`` of shape ``(n, C, ...)`` over examples and trailing axes → ``(C,)``,
    or over trailing axes only → ``(n, C)`` when ``per_example``."""
    axes = tuple(range(2, W.ndim))
    S = W.sum(axis=axes) if axes else W
    return S if per_example else S.sum(axis=0)


@dataclass
class BiasCache:
    pass


class Bias(Element):
    """``Z = Y + b`` with one bias per channel (axis 1), broadcast over pixels.

    For vector features ``(n_features,)`` there is one bias per feature; for
    images ``(C, H, W)`` one per channel.  ``J_θᵀ W = Σ_{examples, pixels} W``.

    Parameters
    ----------
    shape : int or tuple of int
        Feature shape.
    """

    def __init__(self, shape):
        self.shape_in = self.shape_out = check_shape_tuple("shape", shape)
        self.layout = Layout([("b", self.shape_in[0])])

    def _forward(self, theta, Y):
        return Y + channel_broadcast(theta, Y.ndim), BiasCache()

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        if dtheta is None:
            return dY
        db = channel_broadcast(dtheta, Y.ndim)
        if dY is None:
            xp = _xp(Y)
            return xp.broadcast_to(db, Y.shape).copy()
        return dY + db

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        return (channel_sum(W, per_example) if need_theta else None), (W if need_Y else None)

    has_second_order = True

    def _second_order(self, W, dtheta, dY, theta, Y, cache):
        """``Y + b`` is linear in ``(θ, Y)``: no second derivative."""
        return None, None


def _xp(a):
    from ..backend import get_array_module

    return get_array_module(a)
