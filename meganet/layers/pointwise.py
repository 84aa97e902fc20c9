"""An activation function as an element: ``Z = σ(Y)``."""

from __future__ import annotations

from dataclasses import dataclass

from ..activations import get_activation
from ..core.element import Element
from ..core.layout import Layout
from ..core.validation import check_option, check_shape_tuple
from ..kernels import ENGINES
from ..kernels.activation import activation_code, bias_activation, supports
from .bias import channel_broadcast

__all__ = ["Pointwise", "PointwiseCache"]


@dataclass
class PointwiseCache:
    dsigma: object  #: σ'(Y), same shape as Y


class Pointwise(Element):
    """Elementwise activation ``Z = σ(Y)``; ``J_Y dY = σ'(Y) ⊙ dY`` (self-adjoint).

    Parameters
    ----------
    activation : str or Activation
        ``'tanh'``, ``'relu'``, ``'smooth_relu'``, ``'identity'``, ``'sigmoid'``.
    shape : int or tuple of int
        Feature shape (without the example axis).
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        ``σ`` and ``σ'`` in one pass with
        :func:`meganet.kernels.activation.bias_activation` (``'auto'``: cupy for
        cupy arrays, numba when installed); ``'numpy'`` evaluates the
        activation object.  Activations without a compiled kernel (user
        subclasses) always use the activation object; asking for a compiled
        engine for them raises.
    """

    def __init__(self, activation, shape, *, engine="auto"):
        self.activation = get_activation(activation)
        self.shape_in = self.shape_out = check_shape_tuple("shape", shape)
        self.layout = Layout([])
        self.engine = check_option("engine", engine, ENGINES)
        if self.engine not in ("auto", "numpy"):
            activation_code(self.activation)  # raises for activations without a kernel

    def _forward(self, theta, Y):
        return self._forward_biased(Y, None)

    def _forward_biased(self, U, b):
        """``σ(U + b)`` and its cache in one pass (``b``: per-channel bias (C,) or None).

        Used by layers that add a bias right before the activation
        (:class:`~meganet.layers.SymmetricLayer`): the biased input is never
        stored.
        """
        if self.engine != "numpy" and supports(self.activation):
            Z, dsigma = bias_activation(U, b, self.activation, engine=self.engine)
        else:
            if b is not None:
                U = U + channel_broadcast(b, U.ndim)
            Z, dsigma = self.activation.value_and_derivative(U)
        return Z, PointwiseCache(dsigma=dsigma)

    def _apply(self, theta, Y):
        return self._value_biased(Y, None)

    def _value_biased(self, U, b):
        """``σ(U + b)`` only (no ``σ'``)."""
        if self.engine != "numpy" and supports(self.activation):
            return bias_activation(U, b, self.activation, derivative=False, engine=self.engine)[0]
        if b is not None:
            U = U + channel_broadcast(b, U.ndim)
        return self.activation.value(U)

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        return cache.dsigma * dY

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        return None, (cache.dsigma * W if need_Y else None)

    @property
    def has_second_order(self):
        """True when the activation has its own ``second_derivative`` (all built-in ones)."""
        from ..activations.base import Activation

        return type(self.activation).second_derivative is not Activation.second_derivative

    def second_order_missing(self):
        if self.has_second_order:
            return None
        return f"Pointwise with {type(self.activation).__name__} (an activation without second_derivative)"

    def _second_order(self, W, dtheta, dY, theta, Y, cache):
        """``∇_Y⟨W, σ(Y)⟩ = σ'(Y) ⊙ W`` changes along dY by ``σ''(Y) ⊙ W ⊙ dY`` (relu: σ'' = 0 a.e.)."""
        if dY is None:
            return None, None
        return None, self.activation.second_derivative(Y) * W * dY

    def __repr__(self):
        return f"Pointwise({self.activation!r}, shape={self.shape_in}, engine={self.engine!r})"
