"""Registry: antisymmetric / negative semidefinite / channel-scaling transforms,
double and symmetric layers (dense, antisymmetric, negative semidefinite,
channel-scaling and convolutional transforms; without and with batch / TV
normalization), reshape, flatten and average pooling."""

from meganet.layers.double import DoubleLayer
from meganet.layers.pooling import AvgPool2d
from meganet.layers.reshape import Flatten, Reshape
from meganet.layers.symmetric import SymmetricLayer
from meganet.normalization import BatchNorm, TVNorm
from meganet.transforms.antisymmetric import AntisymmetricDense
from meganet.transforms.channel_scaling import ChannelScaling
from meganet.transforms.conv2d import Conv2d
from meganet.transforms.dense import Dense
from meganet.transforms.negative_definite import NegativeSemidefinite
from tests.registry import Case, register


def _random_scales(element, rng):
    """Scales away from the identity init (all ones), so a transposed product
    that ignored θ would show in the dot test."""
    return 1.0 + 0.5 * rng.standard_normal(element.n_theta)


def _random_theta(element, rng):
    """Random θ for every part, biases included (init_theta zeroes the biases,
    which would hide bias terms in the Y-derivatives)."""
    return 0.5 * rng.standard_normal(element.n_theta)


# ------------------------------------------------------------------ transforms
for _n, _gamma, _scale in [(4, 0.0, 1.0), (5, 0.3, 1.0), (3, 0.1, 0.5), (1, 0.2, 1.0)]:
    register(Case(f"antisym-{_n}-g{_gamma}-s{_scale}",
                  (lambda n=_n, g=_gamma, s=_scale: AntisymmetricDense(n, gamma=g, scale=s)),
                  kind="transform"))
for _n, _m in [(4, None), (4, 2), (3, 5)]:
    register(Case(f"negdef-{_n}-m{_m}", (lambda n=_n, m=_m: NegativeSemidefinite(n, m=m)), kind="transform"))
register(Case("negdef-1-m1-single-example", lambda: NegativeSemidefinite(1, m=1), kind="transform", n_examples=1))
for _shape in [(6,), (3, 4, 5), (1, 2, 2)]:
    register(Case(f"chscale-{'x'.join(map(str, _shape))}", (lambda s=_shape: ChannelScaling(s)),
                  kind="transform", make_theta=_random_scales))

# ---------------------------------------------------------------- double layer
register(Case("double-dense-4-6-3", lambda: DoubleLayer(Dense(4, 6), Dense(6, 3)), kind="layer",
              make_theta=_random_theta))
register(Case("double-dense-5-2-5-nobias", lambda: DoubleLayer(Dense(5, 2), Dense(2, 5), bias1=False, bias2=False),
              kind="layer"))
register(Case("double-antisym-negdef-sigmoid",
              lambda: DoubleLayer(AntisymmetricDense(4, gamma=0.1), NegativeSemidefinite(4, m=2), activation="sigmoid"),
              kind="layer", make_theta=_random_theta))
register(Case("double-dense-chscale-identity",
              lambda: DoubleLayer(Dense(3, 5), ChannelScaling(5), activation="identity", bias2=False),
              kind="layer", make_theta=_random_theta, n_examples=1))

# ------------------------------------------------------------- symmetric layer
register(Case("sym-dense-4-6", lambda: SymmetricLayer(Dense(4, 6)), kind="layer", make_theta=_random_theta))
register(Case("sym-dense-5-3-nobias-sigmoid", lambda: SymmetricLayer(Dense(5, 3), bias=False, activation="sigmoid"),
              kind="layer"))
register(Case("sym-antisym-4-g0.1", lambda: SymmetricLayer(AntisymmetricDense(4, gamma=0.1, scale=0.5)),
              kind="layer", make_theta=_random_theta))
register(Case("sym-negdef-4-m3", lambda: SymmetricLayer(NegativeSemidefinite(4, m=3)), kind="layer",
              make_theta=_random_theta))
register(Case("sym-chscale-2x3x3", lambda: SymmetricLayer(ChannelScaling((2, 3, 3))), kind="layer",
              make_theta=_random_theta, n_examples=2))
register(Case("sym-dense-3-3-identity-1ex", lambda: SymmetricLayer(Dense(3, 3), activation="identity"),
              kind="layer", make_theta=_random_theta, n_examples=1))

# ------------------------------------------------------------- reshape, pooling
register(Case("reshape-2x3x4-to-6x4", lambda: Reshape((2, 3, 4), (6, 4)), kind="layer"))
register(Case("reshape-12-to-3x4", lambda: Reshape(12, (3, 4)), kind="layer"))
register(Case("flatten-2x3x4", lambda: Flatten((2, 3, 4)), kind="layer"))
register(Case("avgpool-2x4x6-f2", lambda: AvgPool2d((2, 4, 6)), kind="layer"))
register(Case("avgpool-3x6x6-f3", lambda: AvgPool2d((3, 6, 6), factor=3), kind="layer"))
register(Case("avgpool-1x4x4-f1", lambda: AvgPool2d((1, 4, 4), factor=1), kind="layer", n_examples=1))

# ----------------------------------------------------------- convolutional
register(Case("sym-conv-2to3-5x4", lambda: SymmetricLayer(Conv2d(2, 3, (5, 4))), kind="layer",
              make_theta=_random_theta, n_examples=2))
register(Case("sym-conv-3to3-4x4-periodic", lambda: SymmetricLayer(Conv2d(3, 3, (4, 4), boundary="periodic")),
              kind="layer", make_theta=_random_theta, n_examples=2))
register(Case("double-conv-2-4-2-4x5", lambda: DoubleLayer(Conv2d(2, 4, (4, 5)), Conv2d(4, 2, (4, 5))),
              kind="layer", make_theta=_random_theta, n_examples=2))
register(Case("double-conv-chscale-3x4x4",
              lambda: DoubleLayer(Conv2d(3, 2, (4, 4), kernel_size=1), ChannelScaling((2, 4, 4))),
              kind="layer", make_theta=_random_theta, n_examples=2))

# ------------------------------------------------------------- normalized
register(Case("sym-dense-4-5-batchnorm", lambda: SymmetricLayer(Dense(4, 5), normalization=BatchNorm((5,))),
              kind="layer", make_theta=_random_theta, n_examples=4))
register(Case("sym-antisym-4-batchnorm-affine",
              lambda: SymmetricLayer(AntisymmetricDense(4, gamma=0.1), normalization=BatchNorm(4, affine=True)),
              kind="layer", make_theta=_random_theta, n_examples=4))
register(Case("double-dense-batchnorm-affine",
              lambda: DoubleLayer(Dense(3, 4), Dense(4, 3), normalization=BatchNorm((4,), affine=True)),
              kind="layer", make_theta=_random_theta, n_examples=4))
register(Case("sym-conv-batchnorm-affine",
              lambda: SymmetricLayer(Conv2d(2, 3, (4, 4)), normalization=BatchNorm((3, 4, 4), affine=True)),
              kind="layer", make_theta=_random_theta, n_examples=3))
register(Case("sym-negdef-4-tvnorm-affine",
              lambda: SymmetricLayer(NegativeSemidefinite(4, m=3), normalization=TVNorm(4, affine=True)),
              kind="layer", make_theta=_random_theta))
# n_examples=3: with 2 examples the float64 dot test w.r.t. Y draws w nearly
# orthogonal to J v (<Jv, w> = -0.015 against |<Jv, w>| ~ 1-20 for other draws),
# and the relative error 2.1e-13 of that cancellation exceeds the tolerance
# 1.8e-13 although the absolute error, 3e-15, is round-off (~ eps·‖Jv‖‖w‖).
register(Case("sym-conv-tvnorm", lambda: SymmetricLayer(Conv2d(2, 3, (4, 4)), normalization=TVNorm((3, 4, 4))),
              kind="layer", make_theta=_random_theta, n_examples=3))
register(Case("double-conv-tvnorm-affine",
              lambda: DoubleLayer(Conv2d(2, 3, (4, 4)), Conv2d(3, 2, (4, 4)),
                                  normalization=TVNorm((3, 4, 4), affine=True)),
              kind="layer", make_theta=_random_theta, n_examples=2))
