"""Output regularization on what the loss sees (Peters, "Deep connections between
learning from limited labels & physical parameter estimation", eqs. 3.2, 4.8–4.9).

:class:`OutputRegularizedLoss` wraps a per-pixel loss ``Φ(Y, w)`` and adds the
quadratic smoother of eq. 4.8 on the predicted map ``M(Y, w)`` — the per-pixel
logits ``W Y + μ`` or their softmax probabilities:

    Φ_α(Y, w) = Φ(Y, w) + α R(M(Y, w)),
    R(U) = (1/2n) Σ_i Σ_channels (‖∇₁ U_i‖² + ‖∇₂ U_i‖²),

so that every objective and solver that takes a :class:`~meganet.losses.base.Loss`
trains Peters' problem (3.2) ``min l(Q y_n, c) + α R(y_n)`` unchanged.  The
loss term uses the label mask (Peters' ``Q``); ``R`` acts on **all** pixels,
which is the point of the paper: it carries information into the unlabelled
part of the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..core.validation import check_option
from ..regularizers.feature_smoothness import FeatureSmoothness
from .base import _NEED, Loss, LossCache, LossEval
from .softmax_cross_entropy import SoftmaxCrossEntropy

__all__ = ["OutputRegularizedLoss"]

_ON = ("logits", "probabilities")


@dataclass
class OutputRegularizedCache(LossCache):
    """:class:`LossCache` of the total loss (``G`` = base ``G`` + ``∂(αR)/∂Z``) plus the pieces of ``R``.

    Attributes
    ----------
    base : LossEval
        Evaluation of the wrapped loss.
    U : array, shape (n, n_classes, H, W)
        The regularized map (logits or probabilities).
    GR : array, shape (n_samples, n_classes)
        ``∂(αR)/∂Z`` as samples.
    P, gP : arrays (n_samples, n_classes) or None
        Probabilities and ``∂(αR)/∂P`` as samples (``on="probabilities"`` only).
    """

    base: Any = None
    U: Any = None
    GR: Any = None
    P: Any = None
    gP: Any = None


def _softmax_jvp(P, dZ):
    """``J_s dZ = P ⊙ dZ − P (Pᵀ dZ)`` row by row (``J_s`` is symmetric, so this is also ``J_sᵀ``)."""
    PdZ = P * dZ
    return PdZ - P * PdZ.sum(axis=1, keepdims=True)


class OutputRegularizedLoss(Loss):
    r"""``Φ(Y, w) + α R(M(Y, w))``: a per-pixel loss plus Peters' output smoother on the predicted map.

    .. math::

        R(U) = \frac{1}{2n} \sum_{i=1}^{n} \sum_{c} \Bigl(\|∇_1 U_{ic}\|^2 + \|∇_2 U_{ic}\|^2\Bigr),
        \qquad ∇_U R = \frac{1}{n}(∇_1ᵀ∇_1 + ∇_2ᵀ∇_2) U

    (Peters, eqs. 4.8 and 4.9, averaged over the ``n`` examples like the losses;
    with one example it is the paper's formula), where ``U = M(Y, w)`` is

    * ``on="logits"``: ``Z = W Y + μ`` per pixel (the wrapped loss's own classifier map), or
    * ``on="probabilities"``: ``P = softmax(Z)`` over the classes of every pixel
      (only for a :class:`~meganet.losses.SoftmaxCrossEntropy` base loss).

    ``∇_1, ∇_2`` are forward differences divided by the pixel sizes along the
    two image axes, without boundary rows, i.e. a **Neumann (zero-flux)**
    boundary: ``∇ᵀ∇`` is minus the Neumann Laplacian and constants have ``R = 0``.
    The operators are those of :class:`~meganet.regularizers.FeatureSmoothness`
    (applied to the map the loss sees instead of to the features ``Y``).

    The loss term keeps the label mask (Peters' selection ``Q``, eq. 3.2); ``R``
    acts on all pixels, labelled or not.

    Derivatives (exact, by the chain rule).  With ``G_R = ∂(αR)/∂Z`` (samples
    in rows; ``G_R = α∇_U R`` for logits, ``J_sᵀ α∇_P R`` for probabilities, ``J_s``
    the softmax Jacobian), the gradients add ``G_R W`` to ``∇_Y`` and
    ``(vec G_Rᵀ Y, G_Rᵀ 1)`` to ``∇_w`` (eq. 3.4: the regularizer enters the
    final Lagrange multiplier only).  Hessian products:

    * logits: ``Jᵀ (α/n ∇ᵀ∇) J`` with ``J`` the linearization of ``(Y, w) ↦ Z``
      (exact and PSD in ``Z``), plus the bilinear terms ``G_R dW`` / ``G_Rᵀ dY``
      for ``gauss_newton=False``;
    * probabilities: Gauss-Newton ``J_pᵀ (α/n ∇ᵀ∇) J_p`` (``J_p = J_s J``, PSD;
      the softmax-curvature term ``Σ_c (∇_P αR)_c ∇²p_c`` and the bilinear terms
      are dropped); ``gauss_newton=False`` adds both and is exact.

    As for the base losses, the one-sided blocks (``hess_Y_mv``, ``hess_w_mv``)
    are exact; with ``on="probabilities"`` they contain the softmax-curvature
    term and need not be positive semidefinite.  The per-sample curvature
    blocks (``_curvature_mv``, used by the dense classifier solvers of
    VarPro) do not exist because ``R`` couples neighbouring pixels: those raise
    ``NotImplementedError``; use matrix-free (CG) classifier solves.

    Parameters
    ----------
    loss : Loss
        A per-pixel loss (``per_pixel=True``) on image-shaped outputs
        ``(n, channels, H, W)``.
    alpha : float
        ``α ≥ 0`` (finite).  ``α = 0`` gives the wrapped loss exactly.
    on : {'logits', 'probabilities'}
        The map ``M`` that is smoothed.
    spacing : float or (float, float)
        Pixel sizes ``h_1, h_2`` (default 1).

    Attributes ``shape_in, n_classes, bias, per_pixel, n_features, spatial,
    n_pixels, n_index, layout, n_w`` are those of ``loss``; ``accuracy``,
    ``predict``, ``logits``, ``init_w`` and loss-specific methods
    (``probabilities``, ``relative_error``) are passed through.
    """

    def __init__(self, loss, alpha, *, on="logits", spacing=1.0):
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a meganet.losses Loss, got {type(loss).__name__}")
        if isinstance(loss, OutputRegularizedLoss):
            raise TypeError("loss is already an OutputRegularizedLoss; wrap the base loss once")
        self.on = check_option("on", on, _ON)
        if not loss.per_pixel or len(loss.shape_in) != 3:
            raise ValueError(
                f"OutputRegularizedLoss needs a per-pixel loss on image-shaped outputs (n, channels, H, W) "
                f"(per_pixel=True, shape_in of length 3); got {loss!r} with shape_in={loss.shape_in}"
            )
        if self.on == "probabilities" and not isinstance(loss, SoftmaxCrossEntropy):
            raise ValueError(f"on='probabilities' smooths softmax probabilities and needs a SoftmaxCrossEntropy "
                             f"base loss, got {type(loss).__name__}; use on='logits'")
        super().__init__(loss.shape_in, loss.n_classes, bias=loss.bias, per_pixel=True)
        self.loss = loss
        self.n_index = loss.n_index
        # R with α: the difference operators, Neumann boundary, spacing and α validation of FeatureSmoothness
        self.R = FeatureSmoothness((loss.n_classes, *loss.spatial), alpha=alpha, spacing=spacing)
        self.alpha = self.R.alpha
        if not np.isfinite(self.alpha):
            raise ValueError(f"alpha must be finite, got {alpha!r}")
        self.spacing = self.R.spacing

    # ------------------------------------------------------------ passthrough
    def __getattr__(self, name):
        # only called when normal lookup fails: loss-specific methods (probabilities, relative_error, ...)
        if name == "loss" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.loss, name)

    def init_w(self, *, rng=None, dtype=np.float64, xp=None):
        return self.loss.init_w(rng=rng, dtype=dtype, xp=xp)

    def logits(self, Y, w):
        return self.loss.logits(Y, w)

    def predict(self, Y, w):
        return self.loss.predict(Y, w)

    def accuracy(self, Y, w, C, *, mask=None):
        return self.loss.accuracy(Y, w, C, mask=mask)

    def _check_targets(self, T, labelled):
        return self.loss._check_targets(T, labelled)

    def _index_to_targets(self, idx, xp, dtype):
        return self.loss._index_to_targets(idx, xp, dtype)

    def _classes_from_logits(self, Z):
        return self.loss._classes_from_logits(Z)

    def _classes_from_targets(self, T):
        return self.loss._classes_from_targets(T)

    def _pointwise(self, Z, T):
        raise NotImplementedError("OutputRegularizedLoss has no per-sample loss: R couples neighbouring pixels")

    def _curvature_mv(self, dZ, curvature):
        raise NotImplementedError(
            "OutputRegularizedLoss has no per-sample (pixel) curvature blocks: the output regularizer couples "
            "neighbouring pixels; use the matrix-free Hessian products (hess_mv, hess_w_mv) instead of a dense "
            "classifier solve"
        )

    # ------------------------------------------------------------------ API
    def evaluate(self, Y, w, C, *, mask=None, need=_NEED):
        if isinstance(need, str):
            need = (need,)
        need = tuple(need)
        ev0 = self.loss.evaluate(Y, w, C, mask=mask, need=need)
        c0, xp, n = ev0.cache, ev0.xp, ev0.Y_shape[0]
        if self.alpha == 0:
            cache = OutputRegularizedCache(**{k: getattr(c0, k) for k in LossCache.__dataclass_fields__},
                                           base=ev0, GR=None)
            return LossEval(value=ev0.value, grad_Y=ev0.grad_Y, grad_w=ev0.grad_w, n_labelled=ev0.n_labelled,
                            cache=cache, Y_shape=ev0.Y_shape, dtype=ev0.dtype, xp=xp)
        # the map the loss sees: its own logits, or its own softmax probabilities (SoftmaxCrossEntropy's cache)
        P = None if self.on == "logits" else c0.curvature.P
        U = self.loss._from_samples(c0.Z if P is None else P, n, xp, self.n_classes)
        Rv, gU = self.R.value_and_gradient(U)
        gUs = self.loss._to_samples(gU, xp)
        GR = gUs if P is None else _softmax_jvp(P, gUs)
        value = grad_Y = grad_w = None
        if "value" in need:
            value = xp.asarray(ev0.value + Rv)
        if "grad_Y" in need:
            grad_Y = ev0.grad_Y + self.loss._from_samples(GR @ c0.W, n, xp)
        if "grad_w" in need:
            grad_w = ev0.grad_w + self.loss._w_adjoint(GR, c0.Ys, xp)
        cache = OutputRegularizedCache(Ys=c0.Ys, W=c0.W, Z=c0.Z, T=c0.T, weight=c0.weight, G=c0.G + GR,
                                       curvature=c0.curvature, base=ev0, U=U, GR=GR, P=P,
                                       gP=None if P is None else gUs)
        return LossEval(value=value, grad_Y=grad_Y, grad_w=grad_w, n_labelled=ev0.n_labelled, cache=cache,
                        Y_shape=ev0.Y_shape, dtype=ev0.dtype, xp=xp)

    def value(self, Y, w, C, *, mask=None):
        v0 = self.loss.value(Y, w, C, mask=mask)
        if self.alpha == 0:
            return v0
        U = self.loss.logits(Y, w) if self.on == "logits" else self.loss.probabilities(Y, w)
        return get_array_module(v0).asarray(v0 + self.R.value(U))

    def _check_eval(self, ev):
        super()._check_eval(ev)
        if not isinstance(ev.cache, OutputRegularizedCache):
            raise TypeError("ev must be the LossEval returned by this OutputRegularizedLoss's evaluate()")

    def _hess(self, dY, dw, ev, need_Y, need_w, gauss_newton):
        c, xp, n = ev.cache, ev.xp, ev.Y_shape[0]
        HY, Hw = self.loss._hess(dY, dw, c.base, need_Y, need_w, gauss_newton)
        if c.GR is None or (dY is None and dw is None):  # α = 0, or a zero direction
            return HY, Hw
        dYs = self.loss._to_samples(dY, xp) if dY is not None else None
        dZ = None
        if dYs is not None:
            dZ = dYs @ c.W.T
        if dw is not None:
            dZw = self.loss._logits_samples(c.Ys, dw)
            dZ = dZw if dZ is None else dZ + dZw
        to_img = lambda A: self.loss._from_samples(A, n, xp, self.n_classes)  # noqa: E731
        if self.on == "logits":
            HZ = self.loss._to_samples(self.R.hess_mv(to_img(dZ), c.U), xp)
        else:
            dP = _softmax_jvp(c.P, dZ)
            HZ = _softmax_jvp(c.P, self.loss._to_samples(self.R.hess_mv(to_img(dP), c.U), xp))
            if not gauss_newton:  # softmax curvature: d(J_sᵀ g)[dZ] with g = ∇_P(αR) held fixed
                g = c.gP
                HZ = HZ + dP * g - dP * (c.P * g).sum(axis=1, keepdims=True) - c.P * (dP * g).sum(axis=1, keepdims=True)
        if need_Y:
            HYs = HZ @ c.W
            if dw is not None and not gauss_newton:
                HYs = HYs + c.GR @ self.matrix(dw)
            HY = HY + self.loss._from_samples(HYs, n, xp)
        if need_w:
            HwR = self.loss._w_adjoint(HZ, c.Ys, xp)
            if dYs is not None and not gauss_newton:
                k = self.n_classes * self.n_features
                HwR[:k] += (c.GR.T @ dYs).reshape(-1)
            Hw = Hw + HwR
        return HY, Hw

    def __repr__(self):
        return (f"OutputRegularizedLoss({self.loss!r}, alpha={self.alpha}, on={self.on!r}, "
                f"spacing={self.spacing})")
