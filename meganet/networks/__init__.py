"""Networks: plain sequential networks, networks of blocks (Meganet.m ``NN.m``, ``Meganet.m``)
and the JMIV 2019 CNN architectures."""

from .sequential import Sequential
from .meganet import Meganet
from .jmiv import JMIV_TABLE1, jmiv_network
from .segmentation import segmentation_network

__all__ = ["Sequential", "Meganet", "jmiv_network", "JMIV_TABLE1", "segmentation_network"]
