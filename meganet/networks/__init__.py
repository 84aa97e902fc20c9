"""Networks: plain sequential networks and networks of blocks (Meganet.m ``NN.m``, ``Meganet.m``)."""

from .sequential import Sequential
from .meganet import Meganet

__all__ = ["Sequential", "Meganet"]
