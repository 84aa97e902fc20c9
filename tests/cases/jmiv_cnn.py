"""Registry: the JMIV CNN elements — parabolic, Hamiltonian and second-order CNN
blocks, the connector, global average pooling and small JMIV networks.

Sizes are tiny (2–8 channels, 4×4–8×8 images, 2 examples) so that the generic
tests stay fast; blocks are 16 steps deep (issue 3), the Hamiltonian and
second-order blocks in stored and reversible mode.  Configurations cover TV,
batch and no normalization, zero and periodic boundaries, the identity,
constant and hat time bases, odd channel counts per half (Hamiltonian with 6
channels = 3 + 3) and non-square images.

Activations.  ReLU has kinks, where the Taylor test sees order 1 whenever a
perturbation changes the active set.  The derivative configurations therefore
use tanh, except the ``relu-margin`` cases: with TV normalization every
normalized channel value lies in (−1, 1) for *any* input, so with the affine
scale s = 0.3 and bias β = ±1 (alternating by channel, set by ``_tv_margin``)
every pre-activation of σ lies in β ± 0.3, at least 0.7 from the kink, at
every step and for every input — the ReLU is then honestly smooth along the
test line, and both the active and the inactive branch are exercised.  Those
cases use ``rel_step=0.1`` so that the parameter perturbations (a few tenths
at most per entry) stay inside the margin.

Channels per TV normalization.  TV normalization ``U/sqrt(Σ_c U_c² + ε)`` is
nearly singular where the channel vector ``U`` of a pixel is small (curvature
of order ``1/|U|``).  With only 2 channels small ``|U|`` is common
(``P(|U| < δ) ∝ δ²``) and the float32 Taylor test reaches its round-off floor
before the expansion is asymptotic (observed orders 2.3–2.5; a smaller
``rel_step`` does not help, the ratio of third- to second-order terms at the
floor does not depend on it).  Every TV-normalized layer here therefore has at
least 3 channels (``P ∝ δ³``; batch normalization has no such singularity).
These configurations pass in float32 for several seeds, not just the registry's.
"""

import numpy as np

from meganet.integrators.hamiltonian_cnn import HamiltonianCNN
from meganet.integrators.parabolic_cnn import ParabolicCNN
from meganet.integrators.second_order_cnn import SecondOrderCNN
from meganet.integrators.time_basis import TimeBasis
from meganet.layers.connector import Connector
from meganet.layers.global_pool import GlobalAvgPool
from meganet.layers.single import SingleLayer
from meganet.networks.jmiv import jmiv_network
from meganet.networks.meganet import Meganet
from tests.registry import Case, register

_MARGIN_STEP = 0.1  # see the module docstring: perturbations stay inside the ReLU margin


# ------------------------------------------------------------- ReLU margin
def _set_layer_margin(layer, th):
    """In place: TV scale 0.3 and bias ±1 in one SymmetricLayer/SingleLayer θ."""
    C = layer.normalization.n_channels
    p = layer.split(th)
    p.N[:C] = 0.3
    p.N[C:] = np.where(np.arange(C) % 2 == 0, 1.0, -1.0)


def _tv_margin(element, theta):
    """Set every TV normalization of ``element`` (block, connector, network) to
    ``s = 0.3, β = ±1`` in ``theta`` (in place, through layout views)."""
    if isinstance(element, ParabolicCNN):
        for row in element.coefficients(theta):
            _set_layer_margin(element.layer, row)
    elif isinstance(element, SecondOrderCNN):
        for row in element.coefficients(theta):
            _set_layer_margin(element.layer, row)
    elif isinstance(element, HamiltonianCNN):
        for row in element.coefficients(theta):
            th1, th2 = element._unpack(row)
            _set_layer_margin(element.layer1, th1)
            _set_layer_margin(element.layer2, th2)
    elif isinstance(element, Connector):
        _set_layer_margin(element.layer, element.split(theta).layer)
    elif isinstance(element, SingleLayer):  # the opening layer of a JMIV network
        _set_layer_margin(element, theta)
    elif isinstance(element, Meganet):
        for block, th in zip(element.blocks, element.block_thetas(theta)):
            _tv_margin(block, th)
    return theta


def _margin_theta(element, rng):
    return _tv_margin(element, element.init_theta(rng=rng))


# ------------------------------------------------------------- blocks
_BLOCKS = [
    # name, factory(reversible) or factory(), has modes, case options
    ("parabolic-4x6x6-tanh-tv-N16",
     lambda: ParabolicCNN(4, (6, 6), n_steps=16, final_time=1.0, activation="tanh"),
     {}),
    ("parabolic-3x5x6-tanh-none-periodic-N16-hat4",
     lambda: ParabolicCNN(3, (5, 6), n_steps=16, final_time=2.0, activation="tanh", normalization=None,
                          boundary="periodic", basis=TimeBasis.hat(16, 4)),
     {}),
    ("parabolic-2x4x4-tanh-batch-N16-constant",
     lambda: ParabolicCNN(2, (4, 4), n_steps=16, final_time=1.0, activation="tanh", normalization="batch",
                          basis="constant"),
     {}),
    ("parabolic-4x5x5-relu-margin-tv-N16",
     lambda: ParabolicCNN(4, (5, 5), n_steps=16, final_time=1.0, activation="relu"),
     dict(make_theta=_margin_theta, rel_step=_MARGIN_STEP)),
]

_REVERSIBLE = [
    # name, factory(reversible), case options
    ("hamiltonian-6x5x5-tanh-tv-N16",  # 3 + 3 channels
     lambda r: HamiltonianCNN(6, (5, 5), n_steps=16, final_time=1.0, activation="tanh", reversible=r),
     {}),
    ("hamiltonian-4x5x4-tanh-none-N16-hat5",  # 2 + 2 channels, non-square image, no normalization
     lambda r: HamiltonianCNN(4, (5, 4), n_steps=16, final_time=2.0, activation="tanh", normalization=None,
                              basis=TimeBasis.hat(16, 5), reversible=r),
     {}),
    ("hamiltonian-8x4x4-relu-margin-tv-N16-constant",
     lambda r: HamiltonianCNN(8, (4, 4), n_steps=16, final_time=1.0, basis="constant", reversible=r),
     dict(make_theta=_margin_theta, rel_step=_MARGIN_STEP)),
    ("second-order-6x5x5-tanh-tv-N16",
     lambda r: SecondOrderCNN(6, (5, 5), n_steps=16, final_time=1.0, activation="tanh", reversible=r),
     {}),
    ("second-order-3x5x5-tanh-none-periodic-N16-constant",
     lambda r: SecondOrderCNN(3, (5, 5), n_steps=16, final_time=2.0, activation="tanh", normalization=None,
                              boundary="periodic", basis="constant", reversible=r),
     {}),
    ("second-order-4x5x5-relu-margin-tv-N16-hat4",
     lambda r: SecondOrderCNN(4, (5, 5), n_steps=16, final_time=1.0, basis=TimeBasis.hat(16, 4), reversible=r),
     dict(make_theta=_margin_theta, rel_step=_MARGIN_STEP)),
]

for _name, _make, _opts in _BLOCKS:
    register(Case(_name, _make, kind="block", n_examples=2, **_opts))

for _mode in ("stored", "reversible"):
    for _name, _make, _opts in _REVERSIBLE:
        register(Case(f"{_name}-{_mode}", (lambda m=_make, r=(_mode == "reversible"): m(r)),
                      kind="block", n_examples=2, **_opts))

# ------------------------------------------------------------- connector, pooling
register(Case("connector-4to6-6x6-batch-tanh-pool2",
              lambda: Connector(4, 6, (6, 6), normalization="batch", activation="tanh"), kind="layer", n_examples=2))
register(Case("connector-3to3-6x6-tv-tanh-pool3",
              lambda: Connector(3, 3, (6, 6), normalization="tv", activation="tanh", pool=3),
              kind="layer", n_examples=2))
register(Case("connector-2to5-4x6-none-tanh-nopool",
              lambda: Connector(2, 5, (4, 6), normalization=None, activation="tanh", pool=None), kind="layer"))
register(Case("connector-4to6-6x6-relu-margin-tv-pool2",
              lambda: Connector(4, 6, (6, 6), normalization="tv", activation="relu"),
              kind="layer", n_examples=2, make_theta=_margin_theta, rel_step=_MARGIN_STEP))
register(Case("global-avg-pool-4x6x6", lambda: GlobalAvgPool((4, 6, 6)), kind="layer", n_examples=2))
register(Case("global-avg-pool-3x5x2", lambda: GlobalAvgPool((3, 5, 2)), kind="layer"))

# ------------------------------------------------------------- small JMIV networks
# 8×8 images → units at 8×8, 4×4, 2×2; 2 steps per block; ≥ 3 channels per TV normalization
for _kind, _channels, _opts in (("parabolic", (4, 6, 8), {}), ("hamiltonian", (6, 8, 8), dict(reversible=True)),
                                ("second_order", (4, 6, 8), {})):
    register(Case(f"jmiv-{_kind}-{'-'.join(map(str, _channels))}-8x8-tanh-N2",
                  (lambda k=_kind, ch=_channels, o=_opts: jmiv_network(k, channels=ch, image_shape=(8, 8), n_steps=2,
                                                                        final_time=1.0, activation="tanh", **o)),
                  kind="network", n_examples=2))
# every normalization TV, so every ReLU has its margin.  float64 only: the output averages
# relu(0.3 N + 1) ≈ 1 over the pixels of the active channels, so it varies with Y by ~1e-4 of its
# size — below what a float32 Taylor test resolves (E1 reaches the float32 floor at once).
register(Case("jmiv-parabolic-4-6-4-8x8-relu-margin-alltv-N2",
              lambda: jmiv_network("parabolic", channels=(4, 6), out_channels=4, image_shape=(8, 8), n_steps=2,
                                   final_time=1.0, connector_normalization="tv", opening_normalization="tv"),
              kind="network", n_examples=2, make_theta=_margin_theta, rel_step=_MARGIN_STEP, float32=False))
