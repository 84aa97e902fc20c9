"""Common part of the time-stepping blocks: steps, step size, time basis, θ layout."""

from __future__ import annotations

import copy

import numpy as np

from ..core.element import Element
from ..core.layout import Layout
from ..core.validation import check_int, check_positive
from .time_basis import as_time_basis

__all__ = ["TimeSteppingBlock"]


class TimeSteppingBlock(Element):
    r"""Base class of blocks that step ``Y' = F(θ(t), Y)`` from ``t = 0`` to ``T``.

    Holds the configuration shared by all integrators: the layer ``F``, the
    number of steps ``N``, the final time ``T``, the step size ``h = T/N``, and
    the :class:`~meganet.integrators.time_basis.TimeBasis` ``B`` that maps the
    block's θ (``n_basis`` coefficient vectors of the layer's length) to the
    weights ``θ(t_j)`` of every step.  ``θ`` is laid out as
    ``(θ_0, …, θ_{n_basis−1})``; :meth:`coefficients` is the zero-copy view of
    shape ``(n_basis, n_θ)`` and the layout parts are named ``"0"``, ``"1"``, …

    Parameters
    ----------
    layer : Element
        ``shape_in == shape_out`` (the state keeps its shape).
    n_steps : int
        ``N ≥ 1``.
    final_time : float
        ``T > 0``.
    basis : None, 'identity', 'constant', TimeBasis or array (n_steps, n_basis)
        Time parameterization of the weights (default: one weight set per step).
    """

    def __init__(self, layer, *, n_steps, final_time, basis=None):
        if not isinstance(layer, Element):
            raise TypeError(f"layer must be an Element, got {type(layer).__name__}")
        if tuple(layer.shape_in) != tuple(layer.shape_out):
            raise ValueError(
                f"layer of a {type(self).__name__} must keep the feature shape (Y_(j+1) = Y_j + h F(Y_j)), "
                f"got {type(layer).__name__} with shape_in {tuple(layer.shape_in)} != shape_out {tuple(layer.shape_out)}"
            )
        self.layer = layer
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.final_time = check_positive("final_time", final_time)
        self.h = self.final_time / self.n_steps
        if not self.h > 0.0:
            raise ValueError(
                f"step size h = final_time / n_steps = {final_time!r} / {n_steps} underflows to {self.h}; "
                "h must be positive"
            )
        self.basis = as_time_basis(basis, self.n_steps)
        self.shape_in = self.shape_out = tuple(layer.shape_in)
        self.layout = Layout([(str(k), layer.n_theta) for k in range(self.basis.n_basis)])

    def with_steps(self, n_steps, basis=None):
        """The same block (layer, final time, options) with ``n_steps`` steps and ``basis``."""
        new = copy.copy(self)
        TimeSteppingBlock.__init__(new, self.layer, n_steps=n_steps, final_time=self.final_time, basis=basis)
        return new

    @property
    def n_theta_layer(self) -> int:
        """Length of one coefficient vector θ_k (the layer's n_theta)."""
        return self.layer.n_theta

    def coefficients(self, theta):
        """``θ`` as ``(..., n_basis, n_θ)``; row ``k`` is ``θ_k`` (a view)."""
        return theta.reshape(*theta.shape[:-1], self.basis.n_basis, self.layer.n_theta)

    def step_weights(self, theta, offset=0.0):
        """``θ(t_j + offset·h)`` for all steps, shape ``(n_steps, n_θ)`` (for inspection/plots)."""
        return self.basis.apply(self.coefficients(theta), offset)

    def _init_theta(self, rng):
        """Independent draws of the layer's initializer for every coefficient θ_k.

        (Meganet.m ``ResNN.initTheta`` draws one and makes θ(t) constant; random
        per-step weights are the more thorough default for derivative checks —
        pass ``TimeBasis.constant`` for identical layers.)
        """
        parts = [np.asarray(self.layer._init_theta(rng), dtype=np.float64).reshape(-1) for _ in range(self.basis.n_basis)]
        return np.concatenate(parts) if parts else np.zeros(0)

    # ---- second-order products: the layer's, stepped by the subclass's _second_order_step(W, dW, ...)
    @property
    def has_second_order(self):
        return self.layer.has_second_order

    def second_order_missing(self):
        return self.layer.second_order_missing()

    def __repr__(self):
        return (f"{type(self).__name__}({self.layer!r}, n_steps={self.n_steps}, final_time={self.final_time:g}, "
                f"basis={self.basis!r})")
