"""Logistic regression with a linear classifier (Meganet.m ``loss/logRegressionLoss.m``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backend import get_array_module
from .base import Loss

__all__ = ["LogisticRegression"]


@dataclass
class LogisticCurvature:
    """``d2``: ``σ(z)(1 − σ(z))`` for every logit, shape (n_samples, n_classes)."""

    d2: Any


class LogisticRegression(Loss):
    r"""Logistic regression (binary cross-entropy of the sigmoid of a linear classifier),

    .. math::

        S(W Y + μ, C) = \frac{1}{m} \sum_s q_s \sum_c \bigl[-C_{sc} \log σ(z_{sc})
                        - (1 - C_{sc}) \log(1 - σ(z_{sc}))\bigr],
        \qquad z_s = W y_s + μ,\ σ(x) = 1/(1 + e^{-x})

    (Haber & Ruthotto 2017, "Stable architectures for deep neural networks",
    eq. 2.2).  With ``n_classes = 1`` this is binary classification; with more
    classes every output is an independent yes/no decision (one-vs-rest, or
    multi-label targets).

    Evaluated stably as ``ℓ(z) = softplus(z) − c z`` with
    ``softplus(z) = max(z, 0) + log1p(exp(−|z|))``.  Per logit
    ``∂ℓ/∂z = σ(z) − c`` and ``∂²ℓ/∂z² = σ(z)(1 − σ(z))`` (a diagonal,
    positive semidefinite Hessian).

    Labels: targets ``C ∈ [0, 1]`` of shape ``(n_examples, n_classes)``, or integer
    labels of shape ``(n_examples,)``: with ``n_classes = 1`` the labels
    ``0``/``1`` themselves, with more classes class indices (one-hot targets).
    Predictions: ``z > 0`` for one output, else the arg-max.

    Parameters
    ----------
    shape_in : int or tuple of int
    n_classes : int
        Number of outputs (default 1, binary).
    bias : bool
    per_pixel : bool
        See :class:`~meganet.losses.base.Loss`.
    """

    def __init__(self, shape_in, n_classes=1, *, bias=True, per_pixel=False):
        super().__init__(shape_in, n_classes, bias=bias, per_pixel=per_pixel, min_classes=1)
        self.n_index = 2 if self.n_classes == 1 else self.n_classes

    def _pointwise(self, Z, T):
        xp = get_array_module(Z)
        e = xp.exp(-xp.abs(Z))
        ell = (xp.maximum(Z, 0) + xp.log1p(e) - T * Z).sum(axis=1)
        one_e = 1 + e
        sig = xp.where(Z >= 0, 1 / one_e, e / one_e)
        return ell, sig - T, LogisticCurvature(d2=e / (one_e * one_e))

    def _curvature_mv(self, dZ, curvature):
        return curvature.d2 * dZ

    def _check_targets(self, T, labelled):
        if bool(((T < 0) | (T > 1)).any()):
            raise ValueError("targets C of LogisticRegression must lie in [0, 1]")

    def _index_to_targets(self, idx, xp, dtype):
        if self.n_classes == 1:
            return idx[:, None].astype(dtype)
        return super()._index_to_targets(idx, xp, dtype)

    def _classes_from_logits(self, Z):
        if self.n_classes == 1:
            return (Z[:, 0] > 0).astype("int64")
        return Z.argmax(axis=1)

    def _classes_from_targets(self, T):
        if self.n_classes == 1:
            return (T[:, 0] >= 0.5).astype("int64")
        return T.argmax(axis=1)

    def probabilities(self, Y, w):
        """``σ(W Y + μ)``: shape ``(n_examples, n_classes)`` or ``(n_examples, n_classes, *spatial)``."""
        Y, w, xp, _ = self._check_Yw(Y, w)
        Z = self._logits_samples(self._to_samples(Y, xp), w)
        e = xp.exp(-xp.abs(Z))
        sig = xp.where(Z >= 0, 1 / (1 + e), e / (1 + e))
        return self._from_samples(sig, Y.shape[0], xp, self.n_classes)
