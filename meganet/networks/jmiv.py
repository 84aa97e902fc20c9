"""The CNN architectures of Ruthotto & Haber, JMIV 2019, §4 (Meganet.m ``examples/2018-jmiv/cnnDriver.m``)."""

from __future__ import annotations

import numbers

from ..core.validation import check_bool, check_int, check_option, check_positive
from ..integrators.hamiltonian_cnn import HamiltonianCNN
from ..integrators.parabolic_cnn import ParabolicCNN
from ..integrators.second_order_cnn import SecondOrderCNN
from ..layers.connector import Connector, check_normalization, make_normalization
from ..layers.global_pool import GlobalAvgPool
from ..layers.single import SingleLayer
from ..transforms.conv2d import Conv2d
from .meganet import Meganet

__all__ = ["jmiv_network", "JMIV_BLOCKS", "JMIV_TABLE1"]

#: The PDE blocks of the JMIV paper, by the name ``jmiv_network`` accepts.
JMIV_BLOCKS = {"parabolic": ParabolicCNN, "hamiltonian": HamiltonianCNN, "second_order": SecondOrderCNN}

#: Ruthotto & Haber, JMIV 2019, Table 1: the networks (``jmiv_network`` keyword arguments, with a linear
#: classifier on the ``out_channels`` features), the published number of trainable weights (network plus
#: classifier) and test accuracy % (cross-entropy loss) per architecture.  The CIFAR widths are stated in §5
#: ("32, 64, 112" for CIFAR-10; "32, 64, and 128" plus a connecting layer to 256 for CIFAR-100); the STL-10
#: widths (16, 32, 64, 128 on 96×96 images, four units) are the ones that reproduce the table's weight counts
#: exactly (the paper does not list them); every count is tested in ``tests/test_jmiv_cnn.py``.
JMIV_TABLE1 = {
    "stl10": dict(network=dict(in_channels=3, image_shape=(96, 96), channels=(16, 32, 64, 128)), n_classes=10,
                  n_test=8000,
                  weights=dict(parabolic=618_554, hamiltonian=324_794, second_order=618_554),
                  accuracy=dict(parabolic=(77.0, 0.711), hamiltonian=(78.3, 0.789), second_order=(74.3, 0.810))),
    "cifar10": dict(network=dict(in_channels=3, image_shape=(32, 32), channels=(32, 64, 112)), n_classes=10,
                    n_test=10000,
                    weights=dict(parabolic=502_570, hamiltonian=264_106, second_order=502_570),
                    accuracy=dict(parabolic=(88.5, 0.333), hamiltonian=(89.3, 0.349), second_order=(89.2, 0.333))),
    "cifar100": dict(network=dict(in_channels=3, image_shape=(32, 32), channels=(32, 64, 128), out_channels=256),
                     n_classes=100, n_test=10000,
                     weights=dict(parabolic=652_484, hamiltonian=362_180, second_order=652_484),
                     accuracy=dict(parabolic=(64.8, 1.234), hamiltonian=(64.9, 1.237),
                                   second_order=(65.4, 1.232))),
}


def jmiv_network(kind="parabolic", *, in_channels=3, image_shape=(32, 32), channels=(32, 64, 112), out_channels=None,
                 n_steps=3, final_time=3.0, activation="relu", normalization="tv", connector_normalization="batch",
                 opening_normalization="batch", affine=True, basis=None, reversible=False):
    r"""The CNN of Ruthotto & Haber, "Deep neural networks motivated by partial
    differential equations", JMIV 2019, §4, as a :class:`~meganet.networks.Meganet`.

    The architecture (Meganet.m ``examples/2018-jmiv/cnnDriver.m``)::

        opening   SingleLayer(Conv2d(in_channels → c_0, 3×3), batch norm, ReLU)     at H × W
        unit k    block(c_k)  at H/2^k × W/2^k          (parabolic / Hamiltonian / second-order CNN)
                  Connector(c_k → c_{k+1}, 1×1 conv, batch norm, ReLU, 2×2 average pooling)
        last unit block(c_L), Connector(c_L → out_channels, no pooling)
        GlobalAvgPool  → (n, out_channels)

    With the defaults, 32×32 images go through units of 32, 64 and 112
    channels at 32×32, 16×16 and 8×8, and the network returns 112 features
    per example (Meganet.m ``nf = [32 64 112 112]``).  It is built from a few
    lines of the library::

        from meganet.integrators import ParabolicCNN
        from meganet.layers import Connector, GlobalAvgPool, SingleLayer
        from meganet.normalization import BatchNorm
        from meganet.networks import Meganet
        from meganet.transforms import Conv2d

        blocks = [SingleLayer(Conv2d(3, 32, (32, 32)), activation="relu", bias=False,
                              normalization=BatchNorm((32, 32, 32), affine=True))]
        for k, (c, c_next, s) in enumerate([(32, 64, 32), (64, 112, 16), (112, 112, 8)]):
            blocks.append(ParabolicCNN(c, (s, s), n_steps=3, final_time=3.0))
            blocks.append(Connector(c, c_next, (s, s), pool=2 if k < 2 else 1))
        blocks.append(GlobalAvgPool((112, 8, 8)))
        net = Meganet(blocks)

    A linear classifier on the output (Meganet.m's ``W``) belongs to the loss.

    Parameters
    ----------
    kind : {'parabolic', 'hamiltonian', 'second_order'}
        :class:`~meganet.integrators.ParabolicCNN`,
        :class:`~meganet.integrators.HamiltonianCNN` (channels must be even) or
        :class:`~meganet.integrators.SecondOrderCNN`.
    in_channels : int, default 3
    image_shape : (int, int), default (32, 32)
        Divisible by ``2**(len(channels) − 1)`` (one 2×2 pooling between units).
    channels : sequence of int, default (32, 64, 112)
        Width of every unit.
    out_channels : int, optional
        Width of the last connector (default ``channels[-1]``); the number of output features.
    n_steps : int or sequence of int, default 3
        Time steps of every unit's block (Meganet.m ``nt = 3``).
    final_time : float or sequence of float, default 3.0
        Final time of every unit's block (Meganet.m ``h = 1``, so ``T = 3``).
    activation : str or Activation, default 'relu'
        Activation of all layers.
    normalization : {'tv', 'batch', 'instance', None}, default 'tv'
        Normalization inside the blocks' symmetric layers.
    connector_normalization, opening_normalization : {'batch', 'tv', 'instance', None}, default 'batch'
    affine : bool, default True
        Trainable scale and bias in every normalization (``isWeight=1``).
    basis : None, 'identity', 'constant' or TimeBasis
        Weights in time of the blocks (one basis for all units needs equal ``n_steps``).
    reversible : bool, default False
        Reversible (memory-free) blocks; only for 'hamiltonian' and 'second_order'.

    Returns
    -------
    Meganet
        Parts ``opening``, ``block0``, ``connector0``, …, ``pool``.
        Maps ``(n, in_channels, H, W)`` to ``(n, out_channels)``.
    """
    check_option("kind", kind, tuple(JMIV_BLOCKS))
    in_channels = check_int("in_channels", in_channels, minimum=1)
    channels = _int_sequence("channels", channels)
    n_units = len(channels)
    out_channels = channels[-1] if out_channels is None else check_int("out_channels", out_channels, minimum=1)
    steps = _per_unit("n_steps", n_steps, n_units, lambda name, v: check_int(name, v, minimum=1))
    times = _per_unit("final_time", final_time, n_units, check_positive)
    reversible = check_bool("reversible", reversible)
    check_normalization("normalization", normalization)
    check_normalization("connector_normalization", connector_normalization)
    check_normalization("opening_normalization", opening_normalization)
    if reversible and kind == "parabolic":
        raise ValueError("reversible=True needs kind 'hamiltonian' or 'second_order'; the parabolic "
                         "(forward Euler) block is not invertible")
    H, W = Conv2d(in_channels, channels[0], image_shape).image_shape
    factor = 2 ** (n_units - 1)
    if H % factor or W % factor:
        raise ValueError(f"image_shape (height, width) = ({H}, {W}) must be divisible by 2**(len(channels) - 1) "
                         f"= {factor} for the 2×2 average pooling between the {n_units} units")

    # opening 3×3 layer; as in Meganet.m no bias in front of the normalization (which has its own)
    norm = make_normalization(opening_normalization, (channels[0], H, W), affine=affine)
    opening = SingleLayer(Conv2d(in_channels, channels[0], (H, W)), activation=activation, bias=norm is None,
                          normalization=norm)
    blocks, names = [opening], ["opening"]
    block_cls = JMIV_BLOCKS[kind]
    extra = {} if kind == "parabolic" else {"reversible": reversible}
    for k, c in enumerate(channels):
        img = (H >> k, W >> k)
        last = k == n_units - 1
        blocks.append(block_cls(c, img, n_steps=steps[k], final_time=times[k], activation=activation,
                                normalization=normalization, affine=affine, basis=basis, **extra))
        names.append(f"block{k}")
        c_next = out_channels if last else channels[k + 1]
        blocks.append(Connector(c, c_next, img, normalization=connector_normalization, activation=activation,
                                pool=1 if last else 2, affine=affine))
        names.append(f"connector{k}")
    blocks.append(GlobalAvgPool((out_channels, H >> (n_units - 1), W >> (n_units - 1))))
    names.append("pool")
    return Meganet(blocks, names=names)


def _int_sequence(name, value):
    try:
        vals = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a non-empty sequence of positive ints, got {value!r}") from None
    if not vals:
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {value!r}")
    return tuple(check_int(f"{name}[{k}]", v, minimum=1) for k, v in enumerate(vals))


def _per_unit(name, value, n_units, check):
    """A scalar for all units or one value per unit, each checked."""
    if isinstance(value, (numbers.Number, str)) or value is None:
        return [check(name, value)] * n_units
    vals = list(value)
    if len(vals) != n_units:
        raise ValueError(f"{name} must be a scalar or have one entry per unit (len(channels) = {n_units}), "
                         f"got {len(vals)} entries")
    return [check(f"{name}[{k}]", v) for k, v in enumerate(vals)]
