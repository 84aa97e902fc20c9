"""Losses on the network output with a linear classifier: value, gradients and
exact Hessian products w.r.t. the output ``Y`` and the classifier ``w = (vec W, μ)``.

=========================  ======================================================
:class:`SoftmaxCrossEntropy`  multi-class cross-entropy, stable log-sum-exp
:class:`LogisticRegression`   binary / one-vs-rest logistic regression (eq. 2.2)
:class:`LeastSquares`         ``½/m ‖W Y + μ − C‖²`` (regression, GNvpro)
:class:`OutputRegularizedLoss` a per-pixel loss ``+ α R(logits or probabilities)``
                              (Peters eqs. 3.2, 4.8–4.9: smoothness of the map the loss sees)
=========================  ======================================================

All take an optional label mask (partial labels, Peters eq. 3.2).  See
:mod:`meganet.losses.base` for the shared formulas and the API::

    ev = loss.evaluate(Y, w, C, mask=None)      # ev.value, ev.grad_Y, ev.grad_w
    loss.hess_Y_mv(dY, ev); loss.hess_w_mv(dw, ev)
    loss.hess_Yw_mv(dw, ev); loss.hess_wY_mv(dY, ev); loss.hess_mv(dY, dw, ev)
"""

from .base import Loss, LossCache, LossEval
from .least_squares import LeastSquares
from .logistic import LogisticRegression
from .output_regularized import OutputRegularizedLoss
from .softmax_cross_entropy import SoftmaxCrossEntropy

__all__ = ["Loss", "LossEval", "LossCache", "SoftmaxCrossEntropy", "LogisticRegression", "LeastSquares",
           "OutputRegularizedLoss"]
