"""Regularizers: penalties on the flat parameter vector θ (value, gradient,
Hessian products, Hessian diagonal and sparse Hessian matrix), and the
smoother of the network's image-valued features.

=====================================  =================================================
:class:`Tikhonov`                      ``α/2 ‖L(θ − θ_ref)‖²`` with ``L`` one of:
:class:`Identity`                      weight decay
:class:`TimeDifference`                smoothness in time between layers (H&R eq. 5.23)
:class:`Laplacian2D`                   spatial smoothness of image-shaped weights (eq. 5.25)
:class:`TotalVariationTime`            smoothed TV in time ``α ∫ φ_τ(∂_t θ)`` (JMIV eq. 13)
:class:`BlockRegularizer`              different terms on different slices of θ
:class:`FeatureSmoothness`             ``½‖∇₁Y_N‖² + ½‖∇₂Y_N‖²`` on the network's features ``Y_N``
                                       (Peters eq. 4.8–4.9 applied before the classifier; on the
                                       map the loss sees: :class:`~meganet.losses.OutputRegularizedLoss`)
=====================================  =================================================
"""

from .base import Operator, Regularizer
from .block import BlockRegularizer
from .laplacian import Laplacian2D
from .feature_smoothness import FeatureSmoothness
from .tikhonov import Identity, Tikhonov
from .time_derivative import TimeDifference
from .total_variation_time import TotalVariationTime

__all__ = ["Regularizer", "Operator", "Tikhonov", "Identity", "TimeDifference", "Laplacian2D",
           "TotalVariationTime", "BlockRegularizer", "FeatureSmoothness"]
