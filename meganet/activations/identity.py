"""Identity activation (Meganet.m ``identityActivation.m``)."""

from __future__ import annotations

from ..backend import get_array_module
from .base import Activation

__all__ = ["Identity"]


class Identity(Activation):
    """``σ(x) = x``, ``σ' = 1``, ``σ'' = 0``."""

    name = "identity"

    def value(self, x):
        return x

    def derivative(self, x):
        return get_array_module(x).ones_like(x)

    def second_derivative(self, x):
        return get_array_module(x).zeros_like(x)

    derivative_from_value_available = True

    def derivative_from_value(self, s):
        return get_array_module(s).ones_like(s)
