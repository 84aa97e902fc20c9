"""Instance normalization (Ulyanov et al. 2016; Meganet.m ``normLayer.m``/``getInstNormLayer.m``)."""

from __future__ import annotations

import numpy as np

from .base import Standardization

__all__ = ["InstanceNorm"]


class InstanceNorm(Standardization):
    r"""Instance normalization: statistics per example and channel over the pixels,

    .. math::

        Z_{ic} = s_c\,\frac{Y_{ic} − μ_{ic}}{\sqrt{σ_{ic}^2 + ε}} + β_c,\qquad
        μ_{ic} = \operatorname{mean}_p Y_{icp},\quad
        σ_{ic}^2 = \operatorname{mean}_p (Y_{icp} − μ_{ic})^2

    (Ulyanov, Vedaldi & Lempitsky, "Instance normalization: the missing
    ingredient for fast stylization", arXiv:1607.08022, 2016, eq. 2).

    For vector features ``(n, F)`` there are no pixels; the statistics are
    then taken over the features of each example, i.e. this is **layer
    normalization** of vectors (Ba, Kiros & Hinton 2016), with one scale and
    bias per feature when ``affine=True``.

    ``∇N dY = (dY − mean(dY) − X̂·mean(X̂ ⊙ dY))/sqrt(σ² + ε)`` with means over
    the same axes as the statistics; self-adjoint and block diagonal over
    examples (examples do not interact).

    The statistics belong to one example, so there is nothing to estimate
    for inference: the evaluation mode equals the training mode.  The
    ``training`` attribute exists (and is set by
    :func:`~meganet.normalization.set_training`) so that all normalizations
    are treated alike, but it does not change the map, and there are no
    running statistics.

    Corresponds to Meganet.m ``layers/normLayer.m`` with ``doNorm = [1,0,0]``
    composed with ``layers/affineScalingLayer.m`` as in
    ``layers/getInstNormLayer.m``.

    Parameters
    ----------
    shape : int or tuple of int
        Feature shape ``(F,)`` (layer norm over F ≥ 2 features) or
        ``(C, H, W)`` with at least two pixels (any ``(C, *spatial)``).
    eps : float, default 1e-5
        ε > 0 added to the variance.
    affine : bool, default False
        Trainable per-channel scale and bias, θ = (s, β), n_theta = 2C.
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        Kernel engine of :mod:`meganet.kernels.normalization` (``'auto'``: numba
        for numpy arrays when installed; on cupy arrays the reference reductions
        run on the device).
    """

    _kind = "instance"

    def __init__(self, shape, *, eps=1e-5, affine=False, engine="auto"):
        super().__init__(shape, eps=eps, affine=affine, engine=engine)
        s = self.shape_in
        group = s[0] if len(s) == 1 else int(np.prod(s[1:]))
        if group < 2:
            what = "features" if len(s) == 1 else "pixels per channel"
            raise ValueError(
                f"shape {s} gives InstanceNorm statistics over {group} value ({what}); "
                "need at least 2, otherwise the output is identically β"
            )
