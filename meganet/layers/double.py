"""Double layer ``Z = K₂(θ₂) σ(N(K₁(θ₁)Y + b₁)) + b₂`` (Meganet.m ``doubleLayer.m``)."""

from __future__ import annotations

import numpy as np

from ..core.chain import Chain
from ..core.validation import check_bool
from ..transforms.base import Transform
from ._checks import check_layer_normalization
from .bias import Bias
from .pointwise import Pointwise

__all__ = ["DoubleLayer"]


class DoubleLayer(Chain):
    r"""Double layer: two transforms around one activation,

    .. math:: Z = K_2(θ_{K_2})\, σ\big(N(K_1(θ_{K_1}) Y + b_1,\ θ_N)\big) + b_2 .

    Used as the residual function of ResNets with a bottleneck or with
    different widths inside (Meganet.m ``layers/doubleLayer.m``, there with a
    second activation around ``K₂``; here the outer activation is left to the
    caller, e.g. the ResNet step ``Y + h F(θ, Y)``).
    θ = (θ_{K₁}, b₁, θ_N, θ_{K₂}, b₂), parts named ``K1, b1, N, K2, b2``
    (and an empty ``sigma``; absent biases and normalization have no part).

    Implemented as the composition ``(+b₂) ∘ K₂ ∘ σ ∘ N ∘ (+b₁) ∘ K₁`` so the
    chain rule is written once (in :class:`~meganet.core.chain.Chain`).

    Parameters
    ----------
    transform1, transform2 : Transform
        ``transform2.shape_in`` must equal ``transform1.shape_out``.
    activation : str or Activation, default 'tanh'
    normalization : Element or None
        Maps ``transform1.shape_out`` to itself (e.g. BatchNorm, TVNorm).
    bias1, bias2 : bool, default True
        Per-channel biases after ``K₁`` and after ``K₂``.

    Shapes
    ------
    Y : (n_examples, *transform1.shape_in) → Z : (n_examples, *transform2.shape_out)
    """

    def __init__(self, transform1, transform2, *, activation="tanh", normalization=None, bias1=True, bias2=True):
        for name, t in (("transform1", transform1), ("transform2", transform2)):
            if not isinstance(t, Transform):
                raise TypeError(f"{name} must be a Transform, got {type(t).__name__}")
        mid = tuple(transform1.shape_out)
        if tuple(transform2.shape_in) != mid:
            raise ValueError(
                f"transform2 must take the output of transform1: transform1.shape_out is {mid} "
                f"but transform2.shape_in is {tuple(transform2.shape_in)}"
            )
        elements, names = [transform1], ["K1"]
        if check_bool("bias1", bias1):
            elements.append(Bias(mid))
            names.append("b1")
        if check_layer_normalization(normalization, mid, "transform1.shape_out") is not None:
            elements.append(normalization)
            names.append("N")
        sigma = Pointwise(activation, mid)
        elements.append(sigma)
        names.append("sigma")
        elements.append(transform2)
        names.append("K2")
        if check_bool("bias2", bias2):
            elements.append(Bias(transform2.shape_out))
            names.append("b2")
        super().__init__(elements, names=names)
        self.transform1, self.transform2 = transform1, transform2
        self.normalization = normalization
        self.activation = sigma.activation

    def _init_theta(self, rng):
        """Transforms and normalization from their own ``_init_theta``; biases zero."""
        parts = []
        for e in self.elements:
            if isinstance(e, Bias):
                parts.append(np.zeros(e.n_theta))
            else:
                parts.append(np.asarray(e._init_theta(rng), dtype=np.float64).reshape(-1))
        return np.concatenate(parts)

    def __repr__(self):
        return (f"DoubleLayer({self.transform1!r}, {self.transform2!r}, activation={self.activation!r}, "
                f"normalization={self.normalization!r})")
