"""Learnable linear maps ``Y ↦ K(θ)Y`` (Meganet.m's "KernelTypes")."""

from .antisymmetric import AntisymmetricDense
from .antisymmetric_conv2d import AntisymmetricConv2d
from .base import Transform
from .channel_scaling import ChannelScaling
from .conv2d import Conv2d
from .conv2d_fft import Conv2dFFT
from .dense import Dense
from .negative_definite import NegativeSemidefinite

__all__ = ["Transform", "Dense", "AntisymmetricDense", "NegativeSemidefinite", "ChannelScaling", "Conv2d", "Conv2dFFT",
           "AntisymmetricConv2d"]
