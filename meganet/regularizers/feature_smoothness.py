"""Quadratic smoothness of the image-valued features ``Y_N`` a network hands to its classifier
(Peters et al., eqs. 4.8–4.9, applied before the classifier)."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..core.validation import check_array, check_positive, check_shape_tuple
from ._difference import forward_diff, second_diff, second_diff_matrix
from .base import Regularizer, _const, _Movable

__all__ = ["FeatureSmoothness"]


class FeatureSmoothness(_Movable):
    r"""Quadratic smoother on the network's features ``Y_N`` of shape ``(n, ..., H, W)`` (the input of the
    classifier, not the map the loss sees),

    .. math::

        R(Y) = \frac{α}{2n} \sum_{i=1}^{n} \Bigl( \|∇_1 Y_i\|^2 + \|∇_2 Y_i\|^2 \Bigr),\qquad
        ∇_Y R = \frac{α}{n} (∇_1ᵀ∇_1 + ∇_2ᵀ∇_2) Y = −\frac{α}{n} Δ_h Y,

    where ``∇_1, ∇_2`` are forward differences (divided by the pixel sizes) along
    the last two axes, applied to every channel, without boundary rows
    (so ``Δ_h`` is the Neumann Laplacian).  This is the output regularization
    ``½‖∇₁Y_N‖² + ½‖∇₂Y_N‖²`` of Peters, Haber & Lensink, "Deep connections
    between learning from limited labels & physical parameter estimation",
    eqs. 4.8–4.9, which lets a network trained from a few labelled pixels
    predict smooth maps.  It is averaged over the examples (the ``1/n``), like
    the losses, so its weight relative to the loss does not depend on the batch
    size; with one example it is exactly the formula of the paper.
    It regularizes the network's features ``Y_N`` before the linear
    classifier; Peters' output regularization of the map the loss sees (the
    per-pixel logits or softmax probabilities) is
    :class:`~meganet.losses.OutputRegularizedLoss`, which uses this class's
    difference operators.  Use it where the features themselves are the
    prediction or should be smooth (e.g. a regression whose loss is close to the
    identity); with a classifier, a large α collapses the features (all pixels
    alike) instead of smoothing the predicted map.  Formerly named
    ``OutputSmoothness``.

    It acts on the network output, not on θ: an objective adds ``∇_Y R`` to the loss
    gradient before back-propagation and ``∇²_Y R = (α/n)(∇_1ᵀ∇_1 + ∇_2ᵀ∇_2)``
    (constant, PSD) to the loss Hessian w.r.t. the output.

    Parameters
    ----------
    shape_in : tuple of int
        Feature shape of the output, ``(..., H, W)`` (e.g. ``(C, H, W)``).
    alpha : float
        ``α ≥ 0`` (default 1).
    spacing : float or (float, float)
        Pixel sizes (default 1).
    """

    def __init__(self, shape_in, *, alpha=1.0, spacing=1.0):
        self.shape_in = check_shape_tuple("shape_in", shape_in)
        if len(self.shape_in) < 2:
            raise ValueError(f"shape_in must be image-shaped (..., H, W), got {self.shape_in}")
        self.alpha = Regularizer._alpha(alpha)
        if np.ndim(spacing) == 0:
            spacing = (spacing, spacing)
        if len(spacing) != 2:
            raise ValueError(f"spacing must be a float or a pair (h_1, h_2), got {spacing!r}")
        self.spacing = (check_positive("spacing[0]", spacing[0]), check_positive("spacing[1]", spacing[1]))
        self._w = (1.0 / self.spacing[0] ** 2, 1.0 / self.spacing[1] ** 2)
        H, W = self.shape_in[-2:]
        d1 = -second_diff_matrix(H, "neumann").diagonal()
        d2 = -second_diff_matrix(W, "neumann").diagonal()
        d = self._w[0] * d1[:, None] + self._w[1] * d2[None, :]
        self._diag = np.broadcast_to(d, self.shape_in).copy()

    def _check(self, Y, name="Y", like=None):
        xp = get_array_module(Y, names=[name])
        if like is None:
            check_array(name, Y, shape=(None, *self.shape_in), xp=xp)
            if Y.shape[0] == 0:
                raise ValueError(f"{name} has 0 examples; R is an average over examples and needs at least one")
        else:
            check_array(name, Y, shape=tuple(like.shape), dtype=like.dtype, xp=get_array_module(like))

    def _gram(self, Y):
        """``(∇_1ᵀ∇_1 + ∇_2ᵀ∇_2) Y``."""
        nd = Y.ndim
        return -(self._w[0] * second_diff(Y, nd - 2, "neumann") + self._w[1] * second_diff(Y, nd - 1, "neumann"))

    def value(self, Y):
        """``R(Y)``, a 0-d array."""
        self._check(Y)
        return self._value(Y)

    def _value(self, Y):
        xp = get_array_module(Y)
        nd = Y.ndim
        g1, g2 = forward_diff(Y, nd - 2), forward_diff(Y, nd - 1)
        s = self._w[0] * (g1 * g1).sum() + self._w[1] * (g2 * g2).sum()
        return xp.asarray((0.5 * self.alpha / Y.shape[0]) * s, dtype=Y.dtype)

    def gradient(self, Y):
        """``∇_Y R``, shape of ``Y``."""
        self._check(Y)
        return (self.alpha / Y.shape[0]) * self._gram(Y)

    def value_and_gradient(self, Y):
        self._check(Y)
        return self._value(Y), (self.alpha / Y.shape[0]) * self._gram(Y)

    def hess_mv(self, dY, Y):
        """``∇²_Y R dY`` (independent of ``Y`` but for its number of examples)."""
        self._check(Y)
        self._check(dY, "dY", like=Y)
        return (self.alpha / Y.shape[0]) * self._gram(dY)

    def hessian_diagonal(self, Y):
        """``diag ∇²_Y R``, shape of ``Y``."""
        self._check(Y)
        d = _const(self._diag, Y, "Hessian diagonal")
        xp = get_array_module(Y)
        return xp.broadcast_to((self.alpha / Y.shape[0]) * d, Y.shape).copy()

    def __repr__(self):
        return f"FeatureSmoothness(shape_in={self.shape_in}, alpha={self.alpha}, spacing={self.spacing})"
