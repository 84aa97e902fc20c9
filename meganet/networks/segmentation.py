"""Fully convolutional networks for segmentation: the output keeps the image's spatial size, so a per-pixel
1 × 1 classifier (:class:`~meganet.losses.SoftmaxCrossEntropy` with ``per_pixel=True``) labels every pixel."""

from __future__ import annotations

from ..core.validation import check_bool, check_int, check_option, check_positive
from ..integrators.hamiltonian_cnn import HamiltonianCNN
from ..integrators.second_order_cnn import SecondOrderCNN
from ..layers.single import SingleLayer
from ..transforms.conv2d import Conv2d
from .meganet import Meganet

__all__ = ["segmentation_network"]

_BLOCKS = {"hamiltonian": HamiltonianCNN, "second_order": SecondOrderCNN}


def segmentation_network(in_channels, image_shape, *, width=32, n_layers=10, final_time=None, block="hamiltonian",
                         activation="tanh", normalization=None, reversible=True):
    r"""A fully reversible segmentation network in the spirit of Peters (2020, §4: "a fully reversible network with
    10 layers and up to 32 channels"): an opening 1 × 1 convolution from the input bands to ``width`` channels
    (with ``activation``), then ``n_layers`` steps of a reversible hyperbolic block at full resolution —
    :class:`~meganet.integrators.HamiltonianCNN` (Verlet steps of symmetric layers ``−Kᵀσ(N(KY + b))``) or
    :class:`~meganet.integrators.SecondOrderCNN` (leapfrog) — with no pooling, so the output has the image's
    size and the classifier is a per-pixel 1 × 1 map in the loss.

    With ``reversible=True`` the block stores no intermediate states (memory independent of the depth); the
    opening layer is the only part whose input must be kept.

    Parameters
    ----------
    in_channels : int
        Input channels (e.g. the bands of two stacked hyperspectral cubes).
    image_shape : (int, int)
    width : int, default 32
        Channels of the block (even for ``'hamiltonian'``).
    n_layers : int, default 10
        Time steps of the block.
    final_time : float, optional
        ``T``; default ``n_layers`` (h = 1, as in Ruthotto & Haber 2019).
    block : {'hamiltonian', 'second_order'}
    activation : str
    normalization : {None, 'tv', 'batch', 'instance'}
        Inside the block's symmetric layers (default none: a single image is the whole batch).
    reversible : bool, default True

    Returns
    -------
    Meganet
        Parts ``opening``, ``block``; maps ``(n, in_channels, H, W)`` to ``(n, width, H, W)``.
    """
    in_channels = check_int("in_channels", in_channels, minimum=1)
    width = check_int("width", width, minimum=1)
    n_layers = check_int("n_layers", n_layers, minimum=1)
    check_option("block", block, tuple(_BLOCKS))
    reversible = check_bool("reversible", reversible)
    T = float(n_layers) if final_time is None else check_positive("final_time", final_time)
    if block == "hamiltonian" and width % 2:
        raise ValueError(f"width must be even for block='hamiltonian' (the channels split into two halves), "
                         f"got {width}")
    opening = SingleLayer(Conv2d(in_channels, width, image_shape, kernel_size=1), activation=activation)
    body = _BLOCKS[block](width, opening.shape_out[1:], n_steps=n_layers, final_time=T, activation=activation,
                          normalization=normalization, reversible=reversible)
    return Meganet([opening, body], names=["opening", "block"])
