"""Periodic 2-D convolution through FFTs (Meganet.m ``convFFT.m``)."""

from __future__ import annotations

from ..kernels.conv2d import conv2d_fft_adjoint_input, conv2d_fft_adjoint_weight, conv2d_fft_forward
from ..core.validation import check_option
from .base import Transform
from .conv2d import Conv2d

__all__ = ["Conv2dFFT"]


class Conv2dFFT(Conv2d):
    r"""Periodic 2-D convolution computed with FFTs.

    Computes **the same map** as ``Conv2d(in_channels, out_channels, image_shape,
    kernel_size=kernel_size, boundary='periodic')``, with the same θ layout
    ``K = reshape(θ, (C_out, C_in, kh, kw))``:

    .. math:: Z[s, o, x, y] = \sum_{i,a,b} K[o, i, a, b]\; Y[s, i, (x + a - p) \bmod H, (y + b - q) \bmod W].

    A periodic convolution is diagonalized by the 2-D DFT: with the stencil
    embedded in an ``H × W`` image, ``k̃[o, i, (p − a) mod H, (q − b) mod W] =
    K[o, i, a, b]``,

    .. math:: \hat Z[s, o] = \sum_i \hat{k̃}[o, i] \odot \hat Y[s, i],

    ``KᵀZ`` uses the conjugate spectrum with swapped channels, and the θ-adjoint
    is the circular cross-correlation ``conj(Ŵ)·Ŷ`` summed over examples, read
    at the stencil's lags ``(a − p, b − q)``.  Real FFTs (``rfft2``/``irfft2``)
    keep float32 in single precision.  Meganet.m ``KernelTypes/convFFT.m``
    (which precomputes the eigenvalues of every stencil entry; here the
    embedded stencil is transformed at each call, one FFT of ``C_out·C_in``
    small images).

    Cheaper than the direct convolution for large stencils; for 3×3 stencils
    the direct :class:`~meganet.transforms.Conv2d` is usually faster.

    Parameters
    ----------
    in_channels, out_channels : int
    image_shape : (int, int)
        ``(H, W)``.
    kernel_size : int or (int, int), default 3
        Odd, at most ``image_shape``.
    engine : {'auto', 'numpy', 'cupy'}, default 'auto'
        ``'cupy'`` runs ``cupy.fft`` with a fused spectral product (see
        :mod:`meganet.kernels.conv2d`); there is no numba FFT kernel
        (``scipy.fft`` is compiled already), so ``'auto'`` uses the reference
        on the CPU.

    Shapes
    ------
    Y : (n_examples, C_in, H, W) → Z : (n_examples, C_out, H, W);
    θ : (C_out·C_in·kh·kw,).
    """

    def __init__(self, in_channels, out_channels, image_shape, *, kernel_size=3, engine="auto"):
        check_option("engine", engine, ("auto", "numpy", "cupy"))
        super().__init__(in_channels, out_channels, image_shape, kernel_size=kernel_size, boundary="periodic",
                         engine=engine)

    # the spectral products have no fused epilogue: the generic one (a pass after the product)
    fused_epilogue = False
    _apply_ep = Transform._apply_ep
    _apply_T_ep = Transform._apply_T_ep
    _symmetric_step = Transform._symmetric_step

    def _apply(self, theta, Y):
        return conv2d_fft_forward(Y, self.stencil(theta), engine=self.engine)

    def _apply_T(self, theta, Z):
        return conv2d_fft_adjoint_input(Z, self.stencil(theta), engine=self.engine)

    def _dK_adj(self, theta, Y, W, per_example):
        dK = conv2d_fft_adjoint_weight(Y, W, self.kernel_size, per_example, engine=self.engine)
        return dK.reshape(Y.shape[0], -1) if per_example else dK.reshape(-1)

    def __repr__(self):
        return (f"{type(self).__name__}({self.in_channels}->{self.out_channels}, image {self.image_shape}, "
                f"kernel {self.kernel_size}, engine={self.engine!r})")
