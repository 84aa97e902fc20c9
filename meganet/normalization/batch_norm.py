"""Batch normalization (Ioffe & Szegedy 2015; Meganet.m ``normLayer.m``/``getBatchNormLayer.m``)."""

from __future__ import annotations

from .base import Standardization

__all__ = ["BatchNorm"]


class BatchNorm(Standardization):
    r"""Batch normalization with batch statistics (training mode),

    .. math::

        Z = s_c\,\frac{Y − μ_c}{\sqrt{σ_c^2 + ε}} + β_c,\qquad
        μ_c = \operatorname{mean}_{i,p} Y_{i c p},\quad
        σ_c^2 = \operatorname{mean}_{i,p} (Y_{i c p} − μ_c)^2,

    with mean and biased variance of every channel ``c`` over the examples
    ``i`` and pixels ``p`` of the batch (Ioffe & Szegedy, "Batch
    normalization: accelerating deep network training by reducing internal
    covariate shift", ICML 2015, Algorithm 1 and Sec. 3.2 for convolutional
    features).  For vector features ``(n, F)`` the statistics of each feature
    are taken over the examples.

    The Jacobian includes the dependence of μ and σ² on Y:
    ``∇N dY = (dY − mean(dY) − X̂·mean(X̂ ⊙ dY))/sqrt(σ² + ε)`` (means over
    examples and pixels, X̂ = N(Y)); it is self-adjoint.  It couples the
    examples of a batch: ``J_Y`` is not block diagonal over examples, so Z of
    one example depends on the whole batch.  The θ-gradients of the scale and
    bias are sums over examples, so per-example θ-gradients are well defined
    (each example's pixel sums).

    Only training-mode statistics are implemented (no running averages for
    inference).  With ``affine=True`` the scale s and bias β are the γ, β of
    Ioffe & Szegedy.

    Corresponds to Meganet.m ``layers/normLayer.m`` (the parameter-free map and
    its derivative) composed with ``layers/affineScalingLayer.m`` as in
    ``layers/getBatchNormLayer.m``.  Unlike ``getBatchNormLayer.m``, which
    normalizes each pixel and channel over the examples only
    (``doNorm = [0,0,1]``), the statistics here are shared by all pixels of a
    channel, as in Ioffe & Szegedy Sec. 3.2.

    Parameters
    ----------
    shape : int or tuple of int
        Feature shape ``(F,)`` or ``(C, H, W)`` (any ``(C, *spatial)``).
    eps : float, default 1e-5
        ε > 0 added to the variance (representable in float32 next to
        variances of order one).
    affine : bool, default False
        Trainable per-channel scale and bias, θ = (s, β), n_theta = 2C.
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        Kernel engine of :mod:`meganet.kernels.normalization` (``'auto'``: numba
        for numpy arrays when installed; on cupy arrays the reference reductions
        run on the device).

    Notes
    -----
    A batch with a single example of vector features gives ``Z = β`` (every
    feature equals its mean); use at least two examples.
    """

    _kind = "batch"

    def __init__(self, shape, *, eps=1e-5, affine=False, engine="auto"):
        super().__init__(shape, eps=eps, affine=affine, engine=engine)
