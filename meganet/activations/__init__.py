"""Pointwise activation functions σ with first and second derivatives."""

from __future__ import annotations

from .base import Activation
from .identity import Identity
from .relu import ReLU
from .sigmoid import Sigmoid
from .smooth_relu import SmoothReLU
from .tanh import Tanh

__all__ = ["Activation", "Tanh", "ReLU", "SmoothReLU", "Identity", "Sigmoid", "get_activation", "ACTIVATIONS"]

#: Names accepted wherever an activation is expected.
ACTIVATIONS = {
    "tanh": Tanh,
    "relu": ReLU,
    "smooth_relu": SmoothReLU,
    "identity": Identity,
    "sigmoid": Sigmoid,
}


def get_activation(activation, name="activation"):
    """Return an :class:`Activation` from a name or instance.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]()
    allowed = "{" + ", ".join(repr(k) for k in ACTIVATIONS) + "}"
    raise ValueError(f"{name} must be one of {allowed} or an Activation instance, got {activation!r}")
