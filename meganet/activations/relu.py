"""Rectified linear unit (Meganet.m ``reluActivation.m``)."""

from __future__ import annotations

from ..backend import get_array_module
from .base import Activation

__all__ = ["ReLU"]


class ReLU(Activation):
    """``σ(x) = max(x, 0)``, ``σ'(x) = 1[x > 0]`` (the subgradient 0 is used at 0), ``σ'' = 0``."""

    name = "relu"

    def value(self, x):
        return get_array_module(x).maximum(x, 0)

    def derivative(self, x):
        return (x > 0).astype(x.dtype)

    def second_derivative(self, x):
        return get_array_module(x).zeros_like(x)

    derivative_from_value_available = True

    def derivative_from_value(self, s):
        return (s > 0).astype(s.dtype)  # σ(x) > 0 exactly when x > 0
