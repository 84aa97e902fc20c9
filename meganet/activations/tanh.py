"""Hyperbolic tangent (Meganet.m ``tanhActivation.m``)."""

from __future__ import annotations

from ..backend import get_array_module
from .base import Activation

__all__ = ["Tanh"]


class Tanh(Activation):
    """``σ(x) = tanh(x)``, ``σ'(x) = 1 − tanh²(x)``, ``σ''(x) = −2 tanh(x)(1 − tanh²(x))``."""

    name = "tanh"

    def value(self, x):
        return get_array_module(x).tanh(x)

    def derivative(self, x):
        t = get_array_module(x).tanh(x)
        return 1 - t * t

    def second_derivative(self, x):
        t = get_array_module(x).tanh(x)
        return -2 * t * (1 - t * t)

    def value_and_derivative(self, x):
        t = get_array_module(x).tanh(x)
        return t, 1 - t * t

    derivative_from_value_available = True

    def derivative_from_value(self, s):
        return 1 - s * s
