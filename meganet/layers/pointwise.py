"""An activation function as an element: ``Z = σ(Y)``."""

from __future__ import annotations

from dataclasses import dataclass

from ..activations import get_activation
from ..core.element import Element
from ..core.layout import Layout
from ..core.validation import check_shape_tuple

__all__ = ["Pointwise", "PointwiseCache"]


@dataclass
class PointwiseCache:
    dsigma: object  #: σ'(Y), same shape as Y


class Pointwise(Element):
    """Elementwise activation ``Z = σ(Y)``; ``J_Y dY = σ'(Y) ⊙ dY`` (self-adjoint).

    Parameters
    ----------
    activation : str or Activation
        ``'tanh'``, ``'relu'``, ``'smooth_relu'``, ``'identity'``, ``'sigmoid'``.
    shape : int or tuple of int
        Feature shape (without the example axis).
    """

    def __init__(self, activation, shape):
        self.activation = get_activation(activation)
        self.shape_in = self.shape_out = check_shape_tuple("shape", shape)
        self.layout = Layout([])

    def _forward(self, theta, Y):
        Z, dsigma = self.activation.value_and_derivative(Y)
        return Z, PointwiseCache(dsigma=dsigma)

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        return cache.dsigma * dY

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        return None, (cache.dsigma * W if need_Y else None)

    def __repr__(self):
        return f"Pointwise({self.activation!r}, shape={self.shape_in})"
