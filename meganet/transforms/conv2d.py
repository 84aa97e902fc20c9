"""2-D multi-channel convolution ``K(θ) Y`` (Meganet.m ``convMCN.m`` / ``convCuDNN2D.m``)."""

from __future__ import annotations

import numbers

import numpy as np

from ..core.layout import Layout
from ..core.validation import check_int, check_option
from ..kernels import ENGINES
from ..kernels.conv2d import (BOUNDARIES, conv2d_adjoint_input, conv2d_adjoint_weight, conv2d_forward,
                               conv2d_symmetric_step)
from .base import Transform

__all__ = ["Conv2d"]


class Conv2d(Transform):
    r"""Stride-1, "same"-size 2-D convolution with ``C_in → C_out`` channels,

    .. math:: Z[s, o, x, y] = \sum_{i=1}^{C_\text{in}} \sum_{a=0}^{k_h-1} \sum_{b=0}^{k_w-1}
              K[o, i, a, b]\; Y[s, i, x + a - p, y + b - q],
              \qquad p = \tfrac{k_h-1}{2},\ q = \tfrac{k_w-1}{2},

    with ``K = reshape(θ, (C_out, C_in, kh, kw))`` (a view).  As in PyTorch and
    cuDNN this is a *cross*-correlation: a stencil with a single one at
    ``(a, b)`` shifts the image by ``(a − p, b − q)``.  Outside the image
    ``Y`` is zero (``boundary='zero'``, zero padding by ``p, q``) or periodic
    (``boundary='periodic'``).  These are the convolutional transforms ``K(θ)``
    of the CNN layers in Haber & Ruthotto, "Stable architectures for deep neural
    networks" (Inverse Problems 34, 2018) and Ruthotto & Haber, "Deep neural
    networks motivated by partial differential equations" (JMIV 62, 2020), where
    a 3×3 stencil is read as a discretized differential operator; Meganet.m
    ``KernelTypes/convMCN.m`` (zero padding, MatConvNet) and
    ``KernelTypes/convFFT.m`` (periodic, see
    :class:`~meganet.transforms.conv2d_fft.Conv2dFFT`).

    The map is linear in θ, so ``∂K[dθ] = K(dθ)``.  Its adjoints are

    * in ``Y``: ``KᵀZ``, the correlation with the flipped stencil and swapped
      channels, same padding (the "transposed convolution");
    * in θ: ``dK[o, i, a, b] = Σ_{s,x,y} W[s, o, x, y] Ypad[s, i, x + a, y + b]``.

    scipy offers the single-channel operation (``scipy.signal.correlate2d``);
    the batched multi-channel version is hand-written in
    :mod:`meganet.kernels.conv2d` as im2col plus one GEMM, so that it runs on
    cupy arrays and gets compiled siblings.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C_in`` and ``C_out``.
    image_shape : (int, int)
        ``(H, W)``; input and output have the same size.
    kernel_size : int or (int, int), default 3
        Odd stencil size ``kh`` (and ``kw``).  For ``boundary='periodic'`` it
        must not exceed ``image_shape``.
    boundary : {'zero', 'periodic'}, default 'zero'
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        Kernel engine of :mod:`meganet.kernels.conv2d` (``'auto'``: cupy for
        cupy arrays, numba when installed, the numpy reference otherwise).

    Shapes
    ------
    Y : (n_examples, C_in, H, W) → Z : (n_examples, C_out, H, W);
    θ : (C_out·C_in·kh·kw,).
    """

    def __init__(self, in_channels, out_channels, image_shape, *, kernel_size=3, boundary="zero", engine="auto"):
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.out_channels = check_int("out_channels", out_channels, minimum=1)
        self.image_shape = _check_image_shape(image_shape)
        self.kernel_size = _check_kernel_size(kernel_size)
        self.boundary = check_option("boundary", boundary, BOUNDARIES)
        self.engine = check_option("engine", engine, ENGINES)
        if self.boundary == "periodic":
            _check_fits(self.kernel_size, self.image_shape)
        self.shape_in = (self.in_channels, *self.image_shape)
        self.shape_out = (self.out_channels, *self.image_shape)
        self.layout = Layout([("K", int(np.prod(self.kernel_shape)))])

    @property
    def kernel_shape(self):
        """``(C_out, C_in, kh, kw)``, the shape of the stencil array ``K``."""
        return (self.out_channels, self.in_channels, *self.kernel_size)

    def stencil(self, theta):
        """``K(θ)``, shape ``(C_out, C_in, kh, kw)`` (a view of θ)."""
        return theta.reshape(self.kernel_shape)

    def _init_theta(self, rng):
        """He initialization ``K ~ N(0, 2/(kh·kw·C_in))`` (He et al. 2015, eq. 10):
        keeps the variance of ``K Y`` followed by a relu about that of ``Y``."""
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        return rng.standard_normal(self.n_theta) * np.sqrt(2.0 / fan_in)

    # ----- transform pieces
    def _apply(self, theta, Y):
        return conv2d_forward(Y, self.stencil(theta), self.boundary, engine=self.engine)

    def _apply_T(self, theta, Z):
        return conv2d_adjoint_input(Z, self.stencil(theta), self.boundary, engine=self.engine)

    #: the numba kernels apply the epilogue on the way out of the convolution
    fused_epilogue = True

    def _apply_ep(self, theta, Y, ep, out=None):
        return conv2d_forward(Y, self.stencil(theta), self.boundary, engine=self.engine, epilogue=ep, out=out)

    def _apply_T_ep(self, theta, Z, ep, out=None):
        return conv2d_adjoint_input(Z, self.stencil(theta), self.boundary, engine=self.engine, epilogue=ep, out=out)

    def _symmetric_step(self, theta, Y, b, activation, h, store_S, out=None):
        return conv2d_symmetric_step(Y, self.stencil(theta), b, activation, h, self.boundary, store_S=store_S,
                                     out=out, engine=self.engine)

    def _dK_adj(self, theta, Y, W, per_example):
        dK = conv2d_adjoint_weight(Y, W, self.kernel_size, self.boundary, per_example, engine=self.engine)
        return dK.reshape(Y.shape[0], -1) if per_example else dK.reshape(-1)

    def __repr__(self):
        return (f"{type(self).__name__}({self.in_channels}->{self.out_channels}, image {self.image_shape}, "
                f"kernel {self.kernel_size}, boundary={self.boundary!r}, engine={self.engine!r})")


# ---------------------------------------------------------- validation
def _check_image_shape(image_shape):
    try:
        shape = tuple(image_shape)
    except TypeError:
        raise TypeError(f"image_shape must be a tuple (height, width) of positive ints, got {image_shape!r}") from None
    if len(shape) != 2:
        raise ValueError(f"image_shape must be a tuple (height, width) of positive ints, got {image_shape!r}")
    return tuple(check_int(f"image_shape[{k}]", s, minimum=1) for k, s in enumerate(shape))


def _check_kernel_size(kernel_size):
    if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
        k = check_int("kernel_size", kernel_size, minimum=1, odd=True)
        return (k, k)
    try:
        ks = tuple(kernel_size)
    except TypeError:
        raise TypeError(f"kernel_size must be an odd int or a tuple (kh, kw) of odd ints, got {kernel_size!r}") from None
    if len(ks) != 2:
        raise ValueError(f"kernel_size must be an odd int or a tuple (kh, kw) of odd ints, got {kernel_size!r}")
    return tuple(check_int(f"kernel_size[{k}]", s, minimum=1, odd=True) for k, s in enumerate(ks))


def _check_fits(kernel_size, image_shape):
    if kernel_size[0] > image_shape[0] or kernel_size[1] > image_shape[1]:
        raise ValueError(
            f"kernel_size {kernel_size} must not exceed image_shape {image_shape} for a periodic boundary"
        )
