"""Softmax cross-entropy with a linear classifier (Meganet.m ``loss/softmaxLoss.m``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import get_array_module
from .base import Loss

__all__ = ["SoftmaxCrossEntropy"]


@dataclass
class SoftmaxCurvature:
    """``P``: softmax probabilities (n_samples, n_classes); ``r``: row sums of the targets (n_samples, 1)."""

    P: Any
    r: Any


class SoftmaxCrossEntropy(Loss):
    r"""Cross-entropy of the softmax of a linear classifier,

    .. math::

        S(W Y + μ, C) = -\frac{1}{m} \sum_s q_s \sum_c C_{sc} \log \operatorname{softmax}(W y_s + μ)_c

    (the multi-class counterpart of the logistic regression of Haber & Ruthotto
    2017, "Stable architectures for deep neural networks", §2, eq. 2.2; the
    loss of Ruthotto & Haber, "Deep neural networks motivated by partial
    differential equations", JMIV 2019, §2), with ``W`` of shape
    ``(n_classes, n_features)``, ``μ`` of shape ``(n_classes,)``, labels ``C``
    as class indices or as rows of one-hot vectors / probabilities (each row
    non-negative and summing to one), the optional label mask ``q`` and
    ``m = Σ q_s`` labelled samples (Peters, eq. 3.2).

    The log-sum-exp is evaluated stably: with ``z̃ = z − max_c z_c``,
    ``ℓ(z) = r log Σ_c exp(z̃_c) − Σ_c C_c z̃_c`` (``r = Σ_c C_c = 1``), so logits of
    size 10³ neither overflow nor lose the answer.

    Derivatives w.r.t. the logits ``z`` of one sample, ``p = softmax(z)``:
    ``∇ℓ = r p − c`` and ``∇²ℓ = r (diag(p) − p pᵀ)`` (positive semidefinite).
    The Hessian products w.r.t. the output ``Y`` and the classifier
    ``w = (vec W, μ)`` follow from the chain rule in :class:`~meganet.losses.base.Loss`.

    Unlike Meganet.m's ``softmaxLoss`` (which adds ``theta·I`` to the Hessian)
    no regularization is hidden in the loss.

    Parameters
    ----------
    shape_in : int or tuple of int
        Feature shape of the network output.
    n_classes : int
        Number of classes (≥ 2).
    bias : bool
        Include ``μ`` (default True).
    per_pixel : bool
        Classify every pixel of an image-shaped output (see :class:`~meganet.losses.base.Loss`).

    Examples
    --------
    >>> import numpy as np
    >>> loss = SoftmaxCrossEntropy(4, 3)
    >>> Y = np.zeros((5, 4)); w = np.zeros(loss.n_w)
    >>> v = loss.value(Y, w, np.array([0, 1, 2, 0, 1]))  # uniform probabilities: log 3
    >>> bool(abs(v - np.log(3)) < 1e-15)
    True
    """

    def __init__(self, shape_in, n_classes, *, bias=True, per_pixel=False):
        super().__init__(shape_in, n_classes, bias=bias, per_pixel=per_pixel, min_classes=2)

    def _pointwise(self, Z, T):
        xp = get_array_module(Z)
        Zs = Z - Z.max(axis=1, keepdims=True)
        E = xp.exp(Zs)
        S = E.sum(axis=1, keepdims=True)
        P = E / S
        r = T.sum(axis=1, keepdims=True)
        ell = r[:, 0] * xp.log(S[:, 0]) - (T * Zs).sum(axis=1)
        g = r * P - T
        return ell, g, SoftmaxCurvature(P=P, r=r)

    def _pointwise_value(self, Z, T):
        """``ℓ = r log Σ exp(Z − max) − Σ T ⊙ (Z − max)`` without the probabilities (same arithmetic as
        :meth:`_pointwise`)."""
        xp = get_array_module(Z)
        Zs = Z - Z.max(axis=1, keepdims=True)
        S = xp.exp(Zs).sum(axis=1)
        return T.sum(axis=1) * xp.log(S) - (T * Zs).sum(axis=1)

    def _pointwise_value_index(self, Z, idx):
        """``ℓ = log Σ exp(Z − max) − (Z − max)_{c}`` for class indices ``c = idx``: no one-hot targets
        and no ``T ⊙ (Z − max)`` (the forward's memory, B1: two (n, classes) arrays less); the same
        values as :meth:`_pointwise_value` on one-hot rows (its extra terms are exact zeros)."""
        xp = get_array_module(Z)
        Zs = Z - Z.max(axis=1, keepdims=True)
        zc = xp.take_along_axis(Zs, idx[:, None], axis=1)[:, 0]
        S = xp.exp(Zs, out=Zs).sum(axis=1)  # Zs is ours: exponentiated in place
        return xp.log(S) - zc

    def _curvature_mv(self, dZ, curvature):
        P, r = curvature.P, curvature.r
        PdZ = P * dZ
        return r * (PdZ - P * PdZ.sum(axis=1, keepdims=True))

    def _check_targets(self, T, labelled):
        xp = get_array_module(T)
        if bool((T < 0).any()):
            raise ValueError("C must hold one-hot vectors or probabilities (non-negative), got negative entries")
        r = T.sum(axis=1)
        tol = float(np.sqrt(np.finfo(T.dtype).eps)) * self.n_classes
        bad = xp.abs(r - 1) > tol
        if labelled is not None:
            bad = bad & labelled
        if bool(bad.any()):
            k = int(xp.argmax(bad))
            raise ValueError(
                f"rows of C must sum to 1 (one-hot vectors or probabilities); row {k} sums to {float(r[k])!r}"
            )

    def probabilities(self, Y, w):
        """``softmax(W Y + μ)``: shape ``(n_examples, n_classes)`` or ``(n_examples, n_classes, *spatial)``."""
        Y, w, xp, _ = self._check_Yw(Y, w)
        Z = self._logits_samples(self._to_samples(Y, xp), w)
        E = xp.exp(Z - Z.max(axis=1, keepdims=True))
        return self._from_samples(E / E.sum(axis=1, keepdims=True), Y.shape[0], xp, self.n_classes)
