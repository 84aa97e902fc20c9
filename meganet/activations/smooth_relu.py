"""Smoothed ReLU (Meganet.m ``smoothReluActivation.m``)."""

from __future__ import annotations

from ..backend import get_array_module
from ..core.validation import check_positive
from .base import Activation

__all__ = ["SmoothReLU"]


class SmoothReLU(Activation):
    r"""ReLU with the kink replaced by a quadratic on ``[−η, η]``:

    .. math::
        σ(x) = \begin{cases} 0 & x < −η \\ x²/(4η) + x/2 + η/4 & |x| ≤ η \\ x & x > η \end{cases}

    ``σ`` is C¹: ``σ'(x) = clip(x/(2η) + 1/2, 0, 1)`` and ``σ''(x) = 1/(2η)`` on
    ``|x| < η``.  Meganet.m uses η = 0.1 (the default here).

    Parameters
    ----------
    eta : float > 0
        Half width of the smoothed region.
    """

    name = "smooth_relu"

    def __init__(self, eta=0.1):
        self.eta = check_positive("eta", eta)

    def value(self, x):
        xp = get_array_module(x)
        eta = self.eta
        quad = x * x / (4 * eta) + x / 2 + eta / 4
        return xp.where(x > eta, x, xp.where(x < -eta, xp.zeros_like(x), quad))

    def derivative(self, x):
        return get_array_module(x).clip(x / (2 * self.eta) + 0.5, 0, 1)

    def second_derivative(self, x):
        return ((x > -self.eta) & (x < self.eta)).astype(x.dtype) / (2 * self.eta)

    def __repr__(self):
        return f"SmoothReLU(eta={self.eta})"
