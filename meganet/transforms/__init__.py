"""Learnable linear maps ``Y ↦ K(θ)Y`` (Meganet.m's "KernelTypes")."""

from .base import Transform
from .dense import Dense

__all__ = ["Transform", "Dense"]
