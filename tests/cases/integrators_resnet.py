"""Registry: forward Euler and RK4 ResNet blocks, the antisymmetric ResNet,
plain sequential networks and a network of blocks (Meganet).

Every block is at least 16 steps deep (issue 3: generic tests at depths ≥ 16),
plus one 64-step block; all four time bases (identity, constant, hat, user
matrix) appear, the RK4 cases include a hat basis whose nodes fall between the
stage times (so θ(t_j + h/2) is a true combination of two coefficients) and
Meganet.m's ``ResNNrk4`` parameterization (``hat(N, 2N + 1)``).  Features are
vectors of width 3–4 and 2-channel 4×4 images (convolution layer).

Default Taylor settings (``rel_step=0.5``) pass in float64 and float32: with
h = T/N the block is a small perturbation of the identity per step, so depth
does not make the map more nonlinear along the test direction.
"""

import numpy as np

from meganet.core.chain import Chain
from meganet.integrators import AntisymmetricResNet, ResNet, RK4ResNet, TimeBasis
from meganet.layers import Bias, Pointwise, SingleLayer
from meganet.networks import Meganet, Sequential
from meganet.transforms import Dense
from meganet.transforms.conv2d import Conv2d
from tests.registry import Case, register


def _dense(n, act="tanh"):
    return SingleLayer(Dense(n, n), activation=act)


def _user_basis(n_steps, n_basis, seed=5):
    """A dense random user basis (every step mixes all coefficients)."""
    return TimeBasis.from_matrix(np.random.default_rng(seed).uniform(0.2, 1.0, (n_steps, n_basis)))


# ----- forward Euler ResNet
register(Case("resnet-dense3-tanh-N16-identity",
              lambda: ResNet(_dense(3), n_steps=16, final_time=1.0), kind="block"))
register(Case("resnet-dense4-tanh-N16-hat5",
              lambda: ResNet(_dense(4), n_steps=16, final_time=2.0, basis=TimeBasis.hat(16, 5)), kind="block"))
register(Case("resnet-dense3-sigmoid-N16-constant",
              lambda: ResNet(_dense(3, "sigmoid"), n_steps=16, final_time=1.0, basis="constant"), kind="block"))
register(Case("resnet-dense4-tanh-N16-matrix3",
              lambda: ResNet(_dense(4), n_steps=16, final_time=1.0, basis=_user_basis(16, 3)), kind="block"))
register(Case("resnet-dense3-tanh-N64-identity",
              lambda: ResNet(_dense(3), n_steps=64, final_time=3.0), kind="block", n_examples=2))
register(Case("resnet-pointwise-tanh-3-N16",  # a layer without parameters: θ is empty
              lambda: ResNet(Pointwise("tanh", 3), n_steps=16, final_time=1.0), kind="block"))
register(Case("resnet-image-conv2x4x4-N16-identity",
              lambda: ResNet(SingleLayer(Conv2d(2, 2, (4, 4))), n_steps=16, final_time=1.0),
              kind="block", n_examples=2))
register(Case("resnet-image-bias2x3x3-N16-hat3",  # image features through a θ-only-bias layer
              lambda: ResNet(Chain([Bias((2, 3, 3)), Pointwise("tanh", (2, 3, 3))]), n_steps=16, final_time=1.0,
                             basis=TimeBasis.hat(16, 3)), kind="block"))

# ----- RK4
register(Case("rk4-dense3-tanh-N16-identity",
              lambda: RK4ResNet(_dense(3), n_steps=16, final_time=1.0), kind="block"))
register(Case("rk4-dense4-tanh-N16-hat4",  # nodes at 0, T/3, 2T/3, T: stage times between nodes
              lambda: RK4ResNet(_dense(4), n_steps=16, final_time=2.0, basis=TimeBasis.hat(16, 4)), kind="block"))
register(Case("rk4-dense3-tanh-N16-hat33",  # Meganet.m ResNNrk4: a node at every stage time
              lambda: RK4ResNet(_dense(3), n_steps=16, final_time=1.0, basis=TimeBasis.hat(16, 33)), kind="block"))
register(Case("rk4-dense3-sigmoid-N16-constant",
              lambda: RK4ResNet(_dense(3, "sigmoid"), n_steps=16, final_time=1.0, basis="constant"), kind="block"))
register(Case("rk4-dense3-tanh-N16-matrix4",
              lambda: RK4ResNet(_dense(3), n_steps=16, final_time=1.0, basis=_user_basis(16, 4)), kind="block"))
register(Case("rk4-image-conv2x4x4-N16-hat5",
              lambda: RK4ResNet(SingleLayer(Conv2d(2, 2, (4, 4))), n_steps=16, final_time=1.0,
                                basis=TimeBasis.hat(16, 5)), kind="block", n_examples=2))

# ----- antisymmetric ResNet (eq. 4.12)
register(Case("antisym-resnet-4-N16-gamma0.1",
              lambda: AntisymmetricResNet(4, n_steps=16, final_time=2.0, gamma=0.1), kind="block"))
register(Case("antisym-resnet-3-N16-hat4-nobias",
              lambda: AntisymmetricResNet(3, n_steps=16, final_time=1.0, basis=TimeBasis.hat(16, 4), bias=False),
              kind="block"))

# ----- networks
register(Case("sequential-dense-3-5-2",
              lambda: Sequential([SingleLayer(Dense(3, 5)), SingleLayer(Dense(5, 2), activation="identity")]),
              kind="network"))
register(Case("meganet-resnet3-dense3to4-rk4-4",  # two blocks joined by a width-changing layer
              lambda: Meganet([
                  ResNet(_dense(3), n_steps=16, final_time=1.0),
                  SingleLayer(Dense(3, 4)),
                  RK4ResNet(_dense(4), n_steps=16, final_time=1.0, basis=TimeBasis.hat(16, 3)),
              ]), kind="network"))
