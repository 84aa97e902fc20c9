r"""Parabolic CNN block: forward Euler for ``∂_t Y = F_sym(θ(t), Y)`` (Ruthotto & Haber, JMIV 2019, §3.1)."""

from __future__ import annotations

from ..core.validation import check_bool, check_int
from ..layers.connector import make_normalization
from ..layers.symmetric import SymmetricLayer
from ..transforms.conv2d import Conv2d
from .resnet import ResNet

__all__ = ["ParabolicCNN", "symmetric_conv_layer"]


def symmetric_conv_layer(channels, image_shape, *, activation="relu", normalization="tv", affine=True, bias=None,
                         kernel_size=3, boundary="zero"):
    r"""The symmetric convolution layer of the JMIV CNN blocks,

    .. math:: F_\mathrm{sym}(θ, Y) = -K(θ_K)^\top σ\big(N(K(θ_K) Y + b,\ θ_N)\big),

    a :class:`~meganet.layers.SymmetricLayer` around a ``channels → channels``
    :class:`~meganet.transforms.Conv2d` (JMIV 2019, eq. 7 with the
    normalization of eq. 9; Meganet.m ``examples/2018-jmiv/cnnDriver.m``:
    ``doubleSymLayer(convMCN(nImg, [3 3 nf nf]), 'normLayer1', tvNormLayer(.., 'isWeight', 1))``).

    Parameters
    ----------
    channels : int
    image_shape : (int, int)
    activation : str or Activation, default 'relu'
    normalization : {'tv', 'batch', 'instance', None}, default 'tv'
    affine : bool, default True
        Trainable per-channel scale and bias of the normalization (``isWeight=1``).
    bias : bool or None, default None
        Per-channel bias after ``K``; ``None``: only without normalization
        (Meganet.m has none in front of the normalization).
    kernel_size : int, default 3
    boundary : {'zero', 'periodic'}, default 'zero'

    Returns
    -------
    SymmetricLayer
        Maps ``(n, channels, H, W)`` to itself.
    """
    channels = check_int("channels", channels, minimum=1)
    conv = Conv2d(channels, channels, image_shape, kernel_size=kernel_size, boundary=boundary)
    norm = make_normalization(normalization, conv.shape_out, affine=affine)
    if bias is None:
        bias = norm is None
    bias = check_bool("bias", bias)
    return SymmetricLayer(conv, activation=activation, normalization=norm, bias=bias)


class ParabolicCNN(ResNet):
    r"""Parabolic CNN block: forward Euler steps of a nonlinear diffusion,

    .. math::
        Y_{j+1} = Y_j + h\,F_\mathrm{sym}(θ(t_j), Y_j), \qquad
        F_\mathrm{sym}(θ, Y) = -K(θ)^\top σ\big(N(K(θ) Y + b)\big),

    ``h = T/N``, with a 3×3 convolution ``K`` and (default) total-variation
    normalization ``N`` (Ruthotto & Haber, "Deep neural networks motivated by
    partial differential equations", JMIV 2019, §3.1, eq. 7 and 9; Meganet.m
    ``examples/2018-jmiv/cnnDriver.m`` case ``'parabolic'``:
    ``ResNN(doubleSymLayer(K, 'normLayer1', tvNormLayer), nt, h)``).

    Without normalization and with a monotone σ of slope ≤ 1 (ReLU, tanh)
    ``J_Y F_sym = −Kᵀ diag(σ') K`` is symmetric negative semidefinite, and
    ``Y_{j+1} − Ỹ_{j+1} = (I − h KᵀDK)(Y_j − Ỹ_j)`` with ``0 ≤ D ≤ 1``, so
    two inputs do not move apart when ``h ‖K_j‖² ≤ 2`` for all steps (the
    stability of the parabolic network, JMIV §3.1; tests/test_jmiv_cnn.py).

    A thin subclass of :class:`~meganet.integrators.ResNet`: only the layer
    is built here (:func:`symmetric_conv_layer`); stepping, derivatives and
    weights in time are the ResNet's.  θ is ``(θ_0, …, θ_{n_basis−1})`` with
    every ``θ_k = (θ_K, [b], [θ_N])`` laid out as in
    :class:`~meganet.layers.SymmetricLayer`.

    Parameters
    ----------
    channels : int
    image_shape : (int, int)
        ``(H, W)``.
    n_steps : int ≥ 1
    final_time : float > 0
        ``T``; ``h = T/N``.
    activation : str or Activation, default 'relu'
    normalization : {'tv', 'batch', 'instance', None}, default 'tv'
    affine : bool, default True
        Trainable scale and bias of the normalization.
    bias : bool or None, default None
        Bias after ``K`` (default: only without normalization).
    kernel_size : int, default 3
    boundary : {'zero', 'periodic'}, default 'zero'
    basis : None, 'identity', 'constant', TimeBasis or array (n_steps, n_basis)
        Weights in time (default one weight set per step).

    Shapes
    ------
    Y : (n_examples, channels, H, W) → Z : same shape.
    """

    def __init__(self, channels, image_shape, *, n_steps, final_time, activation="relu", normalization="tv",
                 affine=True, bias=None, kernel_size=3, boundary="zero", basis=None):
        layer = symmetric_conv_layer(channels, image_shape, activation=activation, normalization=normalization,
                                     affine=affine, bias=bias, kernel_size=kernel_size, boundary=boundary)
        super().__init__(layer, n_steps=n_steps, final_time=final_time, basis=basis)
        self.channels = layer.transform.in_channels
        self.image_shape = layer.transform.image_shape
        self.normalization = normalization

    def __repr__(self):
        return (f"ParabolicCNN(channels={self.channels}, image_shape={self.image_shape}, n_steps={self.n_steps}, "
                f"final_time={self.final_time:g}, activation={self.layer.activation!r}, "
                f"normalization={self.normalization!r}, basis={self.basis!r})")
