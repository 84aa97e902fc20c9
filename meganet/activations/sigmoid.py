"""Logistic sigmoid."""

from __future__ import annotations

from ..backend import get_array_module
from .base import Activation

__all__ = ["Sigmoid"]


class Sigmoid(Activation):
    """``σ(x) = 1/(1 + e^{−x})``, ``σ' = σ(1 − σ)``, ``σ'' = σ(1 − σ)(1 − 2σ)``.

    Evaluated as ``½(1 + tanh(x/2))``, which never overflows.
    """

    name = "sigmoid"

    def value(self, x):
        return 0.5 * (1 + get_array_module(x).tanh(0.5 * x))

    def derivative(self, x):
        s = self.value(x)
        return s * (1 - s)

    def second_derivative(self, x):
        s = self.value(x)
        return s * (1 - s) * (1 - 2 * s)

    def value_and_derivative(self, x):
        s = self.value(x)
        return s, s * (1 - s)

    derivative_from_value_available = True

    def derivative_from_value(self, s):
        return s * (1 - s)
