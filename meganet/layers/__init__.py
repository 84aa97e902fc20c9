"""Layers: pointwise activation, bias, single layer and friends."""

from .bias import Bias
from .pointwise import Pointwise
from .single import SingleLayer

__all__ = ["Bias", "Pointwise", "SingleLayer"]
