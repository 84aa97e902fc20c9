"""Single layer ``Z = σ(N(K(θ₁)Y + b(θ₂), θ₃))`` (Meganet.m ``singleLayer.m``)."""

from __future__ import annotations

from ..core.chain import Chain
from ..core.validation import check_bool
from ..transforms.base import Transform
from ._checks import check_layer_normalization
from .bias import Bias
from .pointwise import Pointwise

__all__ = ["SingleLayer"]


class SingleLayer(Chain):
    r"""Single layer of a neural network,

    .. math:: Z = σ\big(N(K(θ_K) Y + b,\ θ_N)\big),

    with a transform ``K`` (dense, convolution, …), an optional per-channel
    bias ``b``, an optional normalization ``N`` with its own parameters and a
    pointwise activation σ (Haber & Ruthotto 2017, eq. 2.1; Meganet.m
    ``layers/singleLayer.m``).  θ = (θ_K, b, θ_N).

    Implemented as the composition ``σ ∘ N ∘ (+b) ∘ K`` so the chain rule is
    written once (in :class:`~meganet.core.chain.Chain`).

    Parameters
    ----------
    transform : Transform
    activation : str or Activation, default 'tanh'
    bias : bool, default True
    normalization : Element or None
        An element with ``shape_in == shape_out == transform.shape_out``
        (e.g. :class:`~meganet.normalization.BatchNorm`).
    """

    def __init__(self, transform, *, activation="tanh", bias=True, normalization=None):
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be a Transform, got {type(transform).__name__}")
        shape = tuple(transform.shape_out)
        elements, names = [transform], ["K"]
        if check_bool("bias", bias):
            elements.append(Bias(shape))
            names.append("b")
        if check_layer_normalization(normalization, shape, "shape") is not None:
            elements.append(normalization)
            names.append("N")
        elements.append(Pointwise(activation, shape))
        names.append("sigma")
        super().__init__(elements, names=names)
        self.transform, self.normalization = transform, normalization
        self.activation = elements[-1].activation

    def _init_theta(self, rng):
        import numpy as np

        parts = []
        for e in self.elements:
            if isinstance(e, Bias):
                parts.append(np.zeros(e.n_theta))
            else:
                parts.append(np.asarray(e._init_theta(rng), dtype=np.float64).reshape(-1))
        return np.concatenate(parts)
