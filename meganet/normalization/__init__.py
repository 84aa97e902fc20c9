"""Normalization elements: ``Z = s_c · N(Y) + β_c`` with a parameter-free
normalization N and an optional trainable per-channel scale and bias.

* :class:`BatchNorm` — statistics per channel over examples and pixels (Ioffe & Szegedy 2015).
* :class:`InstanceNorm` — statistics per example and channel over pixels (Ulyanov et al. 2016);
  layer norm for vector features.
* :class:`TVNorm` — channel vector of each pixel divided by its smoothed length (Ruthotto & Haber, JMIV, eq. 9).
* :class:`AffineScaling` — ``Z = s_c Y + b_c`` alone.

All map a feature shape to itself, for vectors ``(F,)`` (channels = features)
and images ``(C, H, W)``.
"""

from .affine import AffineScaling
from .base import Normalization, Standardization
from .batch_norm import BatchNorm
from .instance_norm import InstanceNorm
from .tv_norm import TVNorm

__all__ = ["Normalization", "Standardization", "BatchNorm", "InstanceNorm", "TVNorm", "AffineScaling"]
