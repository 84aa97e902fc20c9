"""Connector between the units of a JMIV CNN: 1×1 convolution, normalization, ReLU, 2×2 average pooling."""

from __future__ import annotations

from ..core.chain import Chain
from ..core.validation import check_bool, check_int
from ..transforms.conv2d import Conv2d
from .pooling import AvgPool2d
from .single import SingleLayer

__all__ = ["Connector", "make_normalization", "check_normalization", "NORMALIZATIONS"]

#: Names accepted by the ``normalization=`` option of the JMIV CNN elements.
NORMALIZATIONS = ("batch", "tv", "instance", None)


def check_normalization(name, normalization):
    """Raise ``ValueError`` unless ``normalization`` is one of :data:`NORMALIZATIONS`."""
    if not (normalization is None or isinstance(normalization, str)) or normalization not in NORMALIZATIONS:
        allowed = "{" + ", ".join(repr(a) for a in NORMALIZATIONS) + "}"
        raise ValueError(f"{name} must be one of {allowed}, got {normalization!r}")
    return normalization


def make_normalization(normalization, shape, *, affine=True, name="normalization"):
    """The normalization element named ``normalization`` for features of ``shape``.

    Parameters
    ----------
    normalization : {'batch', 'tv', 'instance', None}
        :class:`~meganet.normalization.BatchNorm`,
        :class:`~meganet.normalization.TVNorm`,
        :class:`~meganet.normalization.InstanceNorm` or none.
    shape : tuple of int
        Feature shape ``(C, H, W)``.
    affine : bool
        Trainable per-channel scale and bias (Meganet.m ``isWeight=1``).
    name : str
        Parameter name used in error messages.

    Returns
    -------
    Element or None
    """
    check_normalization(name, normalization)
    affine = check_bool("affine", affine)
    if normalization is None:
        return None
    # imported here: meganet.normalization imports meganet.layers.bias, so a
    # module-level import would be circular when meganet.normalization is imported first
    from ..normalization import BatchNorm, InstanceNorm, TVNorm

    cls = {"batch": BatchNorm, "tv": TVNorm, "instance": InstanceNorm}[normalization]
    return cls(shape, affine=affine)


class Connector(Chain):
    r"""Connecting layer between two units of a JMIV CNN,

    .. math:: Z = P_f\big(σ(N(K_{1×1}(θ_K) Y + b,\ θ_N))\big),

    a 1×1 convolution ``K_{1×1}`` that changes the number of channels from
    ``C_in`` to ``C_out``, a normalization ``N``, the activation σ (ReLU) and
    ``f × f`` average pooling ``P_f`` that coarsens the image (Ruthotto &
    Haber, "Deep neural networks motivated by partial differential equations",
    JMIV 2019, §4, the layers "connecting" the PDE units; Meganet.m
    ``examples/2018-jmiv/cnnDriver.m``: ``singleLayer(convMCN(nImg, [1 1 nf(k)
    nf(k+1)]), 'normLayer', ...)`` followed by ``connector(opPoolMCN(.., 2))``).

    Built as the :class:`~meganet.core.chain.Chain` of a
    :class:`~meganet.layers.SingleLayer` (``Conv2d`` with ``kernel_size=1``,
    bias, normalization, σ) and an :class:`~meganet.layers.AvgPool2d`, so its
    derivatives are those of the pieces.  θ = (θ_K, b, θ_N), layout parts
    ``layer`` (and ``pool``, empty).

    Parameters
    ----------
    in_channels, out_channels : int
    image_shape : (int, int)
        ``(H, W)`` of the input; divisible by ``pool``.
    normalization : {'batch', 'tv', 'instance', None}, default 'batch'
        Meganet.m's JMIV driver uses batch normalization here.
    activation : str or Activation, default 'relu'
    pool : int or None, default 2
        Pooling factor f; ``1`` or ``None`` means no pooling (the last unit,
        followed by :class:`~meganet.layers.GlobalAvgPool`).
    affine : bool, default True
        Trainable per-channel scale and bias of the normalization.
    bias : bool or None, default None
        Per-channel bias after the convolution.  ``None``: only without
        normalization (as in Meganet.m, a bias before batch normalization
        would be removed by it).

    Shapes
    ------
    Y : (n_examples, C_in, H, W) → Z : (n_examples, C_out, H/f, W/f)
    """

    def __init__(self, in_channels, out_channels, image_shape, *, normalization="batch", activation="relu", pool=2,
                 affine=True, bias=None):
        in_channels = check_int("in_channels", in_channels, minimum=1)
        out_channels = check_int("out_channels", out_channels, minimum=1)
        pool = 1 if pool is None else check_int("pool", pool, minimum=1)
        conv = Conv2d(in_channels, out_channels, image_shape, kernel_size=1)
        H, W = conv.image_shape
        if H % pool or W % pool:
            raise ValueError(f"image_shape (height, width) = ({H}, {W}) must be divisible by pool = {pool} "
                             "for the average pooling of the connector")
        norm = make_normalization(normalization, conv.shape_out, affine=affine)
        if bias is None:
            bias = norm is None
        bias = check_bool("bias", bias)
        layer = SingleLayer(conv, activation=activation, bias=bias, normalization=norm)
        elements, names = [layer], ["layer"]
        if pool > 1:
            elements.append(AvgPool2d(conv.shape_out, factor=pool))
            names.append("pool")
        super().__init__(elements, names=names)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.image_shape = (H, W)
        self.pool = pool
        self.normalization = normalization
        self.activation = layer.activation

    @property
    def layer(self):
        """The :class:`~meganet.layers.SingleLayer` (convolution, bias, normalization, σ)."""
        return self.elements[0]

    def __repr__(self):
        return (f"Connector({self.in_channels}->{self.out_channels}, image {self.image_shape}, "
                f"normalization={self.normalization!r}, activation={self.activation!r}, pool={self.pool})")

