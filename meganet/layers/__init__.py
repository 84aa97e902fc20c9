"""Layers: pointwise activation, bias, single, double and symmetric layers, reshape, pooling."""

from .bias import Bias
from .connector import Connector
from .global_pool import GlobalAvgPool
from .double import DoubleLayer
from .pointwise import Pointwise
from .pooling import AvgPool2d
from .reshape import Flatten, Reshape
from .single import SingleLayer
from .symmetric import SymmetricLayer

__all__ = ["Bias", "Pointwise", "SingleLayer", "DoubleLayer", "SymmetricLayer", "Reshape", "Flatten", "AvgPool2d", "Connector",
           "GlobalAvgPool"]
