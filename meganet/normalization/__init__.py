"""Normalization elements: ``Z = s_c · N(Y) + β_c`` with a parameter-free
normalization N and an optional trainable per-channel scale and bias.

* :class:`BatchNorm` — statistics per channel over examples and pixels (Ioffe & Szegedy 2015).
* :class:`InstanceNorm` — statistics per example and channel over pixels (Ulyanov et al. 2016);
  layer norm for vector features.
* :class:`TVNorm` — channel vector of each pixel divided by its smoothed length (Ruthotto & Haber, JMIV, eq. 9).
* :class:`AffineScaling` — ``Z = s_c Y + b_c`` alone.

All map a feature shape to itself, for vectors ``(F,)`` (channels = features)
and images ``(C, H, W)``.

Every normalization has a ``training`` flag; only :class:`BatchNorm` maps
differently in evaluation mode (running estimates instead of batch
statistics).  :mod:`meganet.normalization.mode` sets the mode of, tracks,
estimates, resets, saves and loads the running statistics of all
normalizations nested in a network: :func:`set_training`,
:func:`track_running_statistics`, :func:`estimate_running_statistics`,
:func:`reset_running_statistics`, :func:`running_statistics_state`,
:func:`load_running_statistics`, :func:`normalizations`, :func:`named_elements`.
"""

from .affine import AffineScaling
from .base import Normalization, Standardization
from .batch_norm import BatchNorm
from .instance_norm import InstanceNorm
from .mode import (estimate_running_statistics, load_running_statistics, named_elements, normalizations,
                   reset_running_statistics, running_statistics_state, set_training, track_running_statistics)
from .tv_norm import TVNorm

__all__ = ["Normalization", "Standardization", "BatchNorm", "InstanceNorm", "TVNorm", "AffineScaling",
           "set_training", "track_running_statistics", "estimate_running_statistics", "reset_running_statistics",
           "running_statistics_state", "load_running_statistics", "normalizations", "named_elements"]
