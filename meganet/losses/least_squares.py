"""Least-squares (regression) loss with a linear model (Meganet.m ``loss/regressionLoss.m``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import get_array_module
from .base import Loss

__all__ = ["LeastSquares"]


@dataclass
class LeastSquaresCurvature:
    """The per-sample Hessian is the identity: nothing to store."""


class LeastSquares(Loss):
    r"""Least squares ``S(W Y + μ, C) = \frac{1}{2m} \sum_s q_s \| W y_s + μ − c_s \|^2``.

    The regression loss of Meganet.m ``regressionLoss.m`` (with ``Gamma = I``),
    used for regression and, with one-hot targets, for classification (the
    GNvpro setting of Newman, Ruthotto, Hart & van Bloemen Waanders 2020, where
    ``W`` is eliminated in closed form).  ``∇ℓ = z − c``, ``∇²ℓ = I``.

    Targets ``C`` of shape ``(n_examples, n_classes)`` (any finite values), or class
    indices (one-hot targets).  :meth:`predict` returns the model output
    ``W Y + μ``; :meth:`accuracy` compares its arg-max with that of the
    targets (meaningful for one-hot targets); :meth:`relative_error` is
    ``‖Q(W Y + μ − C)‖ / ‖Q C‖``.

    Parameters
    ----------
    shape_in : int or tuple of int
    n_classes : int
        Number of outputs (rows of ``W``).
    bias : bool
    per_pixel : bool
        See :class:`~meganet.losses.base.Loss`.
    """

    def __init__(self, shape_in, n_classes, *, bias=True, per_pixel=False):
        super().__init__(shape_in, n_classes, bias=bias, per_pixel=per_pixel, min_classes=1)

    def _pointwise(self, Z, T):
        R = Z - T
        return 0.5 * (R * R).sum(axis=1), R, LeastSquaresCurvature()

    def _curvature_mv(self, dZ, curvature):
        return dZ

    def predict(self, Y, w):
        """The model output ``W Y + μ`` (same as :meth:`logits`)."""
        return self.logits(Y, w)

    def relative_error(self, Y, w, C, *, mask=None):
        """``‖Q(W Y + μ − C)‖ / ‖Q C‖`` over the labelled samples (a float)."""
        Y, w, xp, dtype = self._check_Yw(Y, w)
        n = Y.shape[0]
        _, _, labelled = self._sample_weights(mask, n, xp, dtype)
        T = self._targets(C, n, xp, dtype, labelled)
        R = self._logits_samples(self._to_samples(Y, xp), w) - T
        if labelled is not None:
            R = R * labelled[:, None]
        xp = get_array_module(R)
        return float(xp.linalg.norm(R.ravel())) / max(float(xp.linalg.norm(T.ravel())), 1e-300)
