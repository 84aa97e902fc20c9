"""JMIV CNN elements: known answers, stability of the parabolic block, reversible
vs. stored adjoints of the hyperbolic blocks, the JMIV network's shape and
parameter count, and bad input.

The generic derivative/adjoint tests run from the registry
(tests/cases/jmiv_cnn.py); this file checks what is specific to these elements.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.integrators.hamiltonian_cnn import HamiltonianCNN
from meganet.integrators.parabolic_cnn import ParabolicCNN, symmetric_conv_layer
from meganet.integrators.resnet import ResNet
from meganet.integrators.second_order_cnn import SecondOrderCNN
from meganet.layers.connector import Connector
from meganet.layers.global_pool import GlobalAvgPool
from meganet.layers.pooling import AvgPool2d
from meganet.layers.single import SingleLayer
from meganet.networks.jmiv import jmiv_network
from meganet.networks.meganet import Meganet
from meganet.normalization import BatchNorm, TVNorm
from meganet.transforms.conv2d import Conv2d


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _conv_matrix(conv, K):
    """Dense matrix of ``Y ↦ K Y`` for one example (columns = images of unit vectors)."""
    n = int(np.prod(conv.shape_in))
    E = np.eye(n).reshape(n, *conv.shape_in)
    return conv.apply(K, E).reshape(n, -1).T


# ----------------------------------------------------------------- known answers
def test_parabolic_block_is_resnet_of_symmetric_layer():
    """ParabolicCNN = ResNet(SymmetricLayer(Conv2d 3×3, TVNorm)): same θ layout and output."""
    block = ParabolicCNN(3, (4, 5), n_steps=4, final_time=1.0)
    layer = block.layer
    assert isinstance(block, ResNet)
    assert isinstance(layer.transform, Conv2d) and layer.transform.kernel_size == (3, 3)
    assert isinstance(layer.normalization, TVNorm) and layer.normalization.affine
    assert not layer.bias  # the normalization carries the bias (Meganet.m: no bias in front of it)
    assert block.n_theta == 4 * (3 * 3 * 9 + 2 * 3)
    rng = np.random.default_rng(0)
    theta = block.init_theta(rng=rng)
    theta += 0.1 * rng.standard_normal(theta.shape)
    Y = rng.standard_normal((2, 3, 4, 5))
    ref = ResNet(layer, n_steps=4, final_time=1.0)(theta, Y)
    np.testing.assert_array_equal(block(theta, Y), ref)


def test_hamiltonian_cnn_steps_by_hand():
    """Two steps against the documented scheme, written with the public layer forward:
    ``Y' = Y − h F(θ_1, Z)``, ``Z' = Z + h F(θ_2, Y')``."""
    block = HamiltonianCNN(6, (4, 4), n_steps=2, final_time=0.8, activation="tanh")
    rng = np.random.default_rng(1)
    theta = block.init_theta(rng=rng) + 0.1 * rng.standard_normal(block.n_theta)
    X = rng.standard_normal((2, 6, 4, 4))
    h, L = 0.4, block.layer1
    Y, Z = X[:, :3], X[:, 3:]
    for w in theta.reshape(2, -1):
        th1, th2 = w[: L.n_theta], w[L.n_theta :]
        Y = Y - h * L(th1, Z)
        Z = Z + h * L(th2, Y)
    np.testing.assert_allclose(block(theta, X), np.concatenate([Y, Z], axis=1), rtol=1e-13, atol=1e-13)


def test_second_order_cnn_steps_by_hand():
    """``Y_{j+1} = 2Y_j − Y_{j−1} + h² F(θ_j, Y_j)`` with ``Y_{−1} = Y_0``, three steps."""
    block = SecondOrderCNN(3, (4, 4), n_steps=3, final_time=0.9, activation="tanh")
    rng = np.random.default_rng(2)
    theta = block.init_theta(rng=rng) + 0.1 * rng.standard_normal(block.n_theta)
    Y0 = rng.standard_normal((2, 3, 4, 4))
    h2, L = 0.3 ** 2, block.layer
    prev, cur = Y0, Y0
    for w in theta.reshape(3, -1):
        prev, cur = cur, 2 * cur - prev + h2 * L(w, cur)
    np.testing.assert_allclose(block(theta, Y0), cur, rtol=1e-13, atol=1e-13)


def test_connector_by_hand():
    """1×1 convolution, batch normalization with affine scale/bias, ReLU, 2×2 means —
    computed here with einsum and numpy means."""
    con = Connector(3, 5, (4, 6))
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(con.n_theta)
    Y = rng.standard_normal((4, 3, 4, 6))
    assert con.n_theta == 3 * 5 + 2 * 5  # no bias in front of batch normalization
    K, s, b = theta[:15].reshape(5, 3), theta[15:20], theta[20:25]
    U = np.einsum("oc,nchw->nohw", K, Y)
    mu = U.mean(axis=(0, 2, 3), keepdims=True)
    var = U.var(axis=(0, 2, 3), keepdims=True)
    V = s[None, :, None, None] * (U - mu) / np.sqrt(var + 1e-5) + b[None, :, None, None]
    S = np.maximum(V, 0)
    ref = S.reshape(4, 5, 2, 2, 3, 2).mean(axis=(3, 5))
    Z = con(theta, Y)
    assert Z.shape == (4, 5, 2, 3)
    np.testing.assert_allclose(Z, ref, rtol=1e-12, atol=1e-12)


def test_global_avg_pool_by_hand():
    pool = GlobalAvgPool((3, 4, 5))
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(pool(None, Y), Y.mean(axis=(2, 3)), rtol=1e-14)
    W = rng.standard_normal((2, 3))
    _, dY = pool.JTmv(W, None, Y)
    np.testing.assert_allclose(dY, np.repeat(np.repeat(W[:, :, None, None], 4, 2), 5, 3) / 20, rtol=1e-14)


# ------------------------------------------------------- parabolic stability
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_symmetric_layer_jacobian_is_negative_semidefinite(activation):
    """Without normalization ``J_Y F_sym = −Kᵀ diag(σ') K``: symmetric, eigenvalues ≤ 0 (and not all 0)."""
    layer = symmetric_conv_layer(2, (4, 4), activation=activation, normalization=None)
    rng = np.random.default_rng(5)
    theta = rng.standard_normal(layer.n_theta)
    Y = rng.standard_normal((2, 2, 4, 4))
    J = layer.jacobian(theta, Y, wrt="Y").todense()
    scale = np.linalg.norm(J, 2)
    assert np.linalg.norm(J - J.T) <= 1e-13 * scale
    lam = np.linalg.eigvalsh(0.5 * (J + J.T))
    assert lam.max() <= 1e-12 * scale
    assert lam.min() <= -0.1 * scale


def _parabolic_no_norm(T, **kw):
    return ParabolicCNN(2, (5, 5), n_steps=16, final_time=T, normalization=None, **kw)


def test_parabolic_block_is_a_stable_diffusion():
    """With ``h ‖K_j‖² ≤ 2`` (here = 1) two inputs never move apart, step by step:
    ``Y_{j+1} − Ỹ_{j+1} = (I − h K_jᵀ D K_j)(Y_j − Ỹ_j)`` with ``0 ≤ D ≤ 1`` (ReLU, random biases)."""
    rng = np.random.default_rng(6)
    probe = _parabolic_no_norm(1.0)
    theta = rng.standard_normal(probe.n_theta)
    conv = probe.layer.transform
    rows = probe.coefficients(theta)
    L2 = max(np.linalg.norm(_conv_matrix(conv, probe.layer.split(w).K), 2) ** 2 for w in rows)
    block = _parabolic_no_norm(16 * 1.0 / L2)  # h = 1/max‖K_j‖²
    Y = rng.standard_normal((3, 2, 5, 5))
    Yt = Y + 0.3 * rng.standard_normal(Y.shape)
    Z, c = block.forward(theta, Y)
    Zt, ct = block.forward(theta, Yt)
    dist = [np.linalg.norm(a - b) for a, b in zip(c.states + [Z], ct.states + [Zt])]
    assert all(d1 <= d0 * (1 + 1e-12) for d0, d1 in zip(dist, dist[1:]))
    assert dist[-1] < 0.9 * dist[0], "the diffusion should contract the difference"


def test_parabolic_block_unstable_beyond_step_bound():
    """The bound matters: σ = identity, constant K and ``h ‖K‖² = 4`` amplify
    the top eigenvector of ``KᵀK`` by |1 − 4| = 3 per step."""
    rng = np.random.default_rng(7)
    probe = _parabolic_no_norm(1.0, activation="identity", basis="constant", bias=False)
    theta = rng.standard_normal(probe.n_theta)
    L2 = np.linalg.norm(_conv_matrix(probe.layer.transform, theta), 2) ** 2
    block = _parabolic_no_norm(16 * 4.0 / L2, activation="identity", basis="constant", bias=False)
    Y = rng.standard_normal((1, 2, 5, 5))
    Yt = Y + 1e-3 * rng.standard_normal(Y.shape)
    assert np.linalg.norm(block(theta, Yt) - block(theta, Y)) > 1e3 * np.linalg.norm(Yt - Y)


# ---------------------------------------------------- reversible vs stored
DEEP = {
    "hamiltonian": lambda r: HamiltonianCNN(4, (3, 3), n_steps=64, final_time=8.0, reversible=r),
    "second_order": lambda r: SecondOrderCNN(2, (3, 3), n_steps=64, final_time=4.0, activation="tanh",
                                             reversible=r),
}


@pytest.mark.parametrize("name", list(DEEP))
def test_reversible_gradient_equals_stored_deep(name):
    """Depth 64, float64: JTmv (θ and Y, summed and per example) and Jmv of the
    reversible mode agree with the stored mode to ≤ 1e-10 relative."""
    stored, rev = DEEP[name](False), DEEP[name](True)
    rng = np.random.default_rng(8)
    theta = stored.init_theta(rng=rng)
    theta += 0.2 * rng.standard_normal(theta.shape)  # nonzero normalization biases, non-trivial dynamics
    Y = rng.standard_normal((2, *stored.shape_in))
    Z1, c1 = stored.forward(theta, Y)
    Z2, c2 = rev.forward(theta, Y)
    np.testing.assert_array_equal(Z1, Z2)
    assert _rel(Z1, Y) > 0.3, "the block should move the data"
    assert c2.steps is None and len(c1.steps) == 64
    W = rng.standard_normal(Z1.shape)
    g1, dY1 = stored.JTmv(W, theta, Y, c1)
    g2, dY2 = rev.JTmv(W, theta, Y, c2)
    assert _rel(g2, g1) <= 1e-10 and _rel(dY2, dY1) <= 1e-10
    G1 = stored.JthetaTmv(W, theta, Y, c1, per_example=True)
    G2 = rev.JthetaTmv(W, theta, Y, c2, per_example=True)
    assert G2.shape == (2, stored.n_theta) and _rel(G2, G1) <= 1e-10
    dth, dY = rng.standard_normal(theta.shape), rng.standard_normal(Y.shape)
    assert _rel(rev.Jmv(dth, dY, theta, Y, c2), stored.Jmv(dth, dY, theta, Y, c1)) <= 1e-12


@pytest.mark.parametrize("name", list(DEEP))
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-11), (np.float32, 1e-4)])
def test_backward_recompute_reproduces_input(name, dtype, tol):
    """The reversible cache holds only the final state; inverting the 64 steps recovers the input."""
    rev = DEEP[name](True)
    rng = np.random.default_rng(9)
    theta = rev.init_theta(rng=rng, dtype=dtype)
    Y = rng.standard_normal((2, *rev.shape_in)).astype(dtype)
    Z, cache = rev.forward(theta, Y)
    Y0 = rev.reconstruct_input(theta, cache)
    assert Y0.dtype == dtype and Y0.shape == Y.shape
    assert _rel(Y0, Y) <= tol
    assert _rel(Z, Y) > 10 * tol  # the recovery is not trivial


# --------------------------------------------------------------- JMIV network
def _count_by_hand(kind, channels=(32, 64, 112), n_steps=3, cin=3):
    """Parameters of the JMIV architecture, part by part (TV/batch norms are affine: 2 per channel;
    no biases in front of normalizations)."""
    counts = {"opening": 9 * cin * channels[0] + 2 * channels[0]}
    for k, c in enumerate(channels):
        if kind == "hamiltonian":  # two symmetric layers on c/2 channels per step
            per_step = 2 * (9 * (c // 2) ** 2 + 2 * (c // 2))
        else:  # one symmetric layer on c channels per step
            per_step = 9 * c * c + 2 * c
        counts[f"block{k}"] = n_steps * per_step
        c_next = channels[k + 1] if k + 1 < len(channels) else channels[-1]
        counts[f"connector{k}"] = c * c_next + 2 * c_next  # 1×1 conv + batch norm
    counts["pool"] = 0
    return counts


@pytest.mark.parametrize("kind", ["parabolic", "hamiltonian", "second_order"])
def test_jmiv_network_shape_and_parameter_count(kind):
    net = jmiv_network(kind)
    counts = _count_by_hand(kind)
    assert net.layout.names == tuple(counts)
    assert {n: s.stop - s.start for n, s in zip(net.layout.names, net.layout.slices)} == counts
    assert net.n_theta == sum(counts.values())
    assert net.shape_in == (3, 32, 32) and net.shape_out == (112,)
    # units at 32×32, 16×16, 8×8
    assert [b.image_shape for b in net.blocks[1:7:2]] == [(32, 32), (16, 16), (8, 8)]
    rng = np.random.default_rng(10)
    Z = net(net.init_theta(rng=rng), rng.standard_normal((2, 3, 32, 32)))
    assert Z.shape == (2, 112) and np.all(np.isfinite(Z))


@pytest.mark.parametrize("dataset", ["stl10", "cifar10", "cifar100"])
@pytest.mark.parametrize("kind", ["parabolic", "hamiltonian", "second_order"])
def test_jmiv_table1_weight_counts(dataset, kind):
    """Network plus linear classifier have exactly the number of trainable weights of JMIV 2019 Table 1."""
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.networks import JMIV_TABLE1

    cfg = JMIV_TABLE1[dataset]
    net = jmiv_network(kind, **cfg["network"])
    loss = SoftmaxCrossEntropy(net.shape_out, cfg["n_classes"])
    assert net.n_theta + loss.n_w == cfg["weights"][kind]


def test_jmiv_network_docstring_recipe():
    """The few lines in the docstring of ``jmiv_network`` build the same network."""
    blocks = [SingleLayer(Conv2d(3, 32, (32, 32)), activation="relu", bias=False,
                          normalization=BatchNorm((32, 32, 32), affine=True))]
    for k, (c, c_next, s) in enumerate([(32, 64, 32), (64, 112, 16), (112, 112, 8)]):
        blocks.append(ParabolicCNN(c, (s, s), n_steps=3, final_time=3.0))
        blocks.append(Connector(c, c_next, (s, s), pool=2 if k < 2 else 1))
    blocks.append(GlobalAvgPool((112, 8, 8)))
    by_hand = Meganet(blocks)
    net = jmiv_network("parabolic")
    assert [type(b) for b in by_hand.blocks] == [type(b) for b in net.blocks]
    assert [b.n_theta for b in by_hand.blocks] == [b.n_theta for b in net.blocks]
    theta = net.init_theta(rng=11)
    Y = np.random.default_rng(11).standard_normal((2, 3, 32, 32))
    np.testing.assert_array_equal(by_hand(theta, Y), net(theta, Y))


def test_jmiv_network_options():
    net = jmiv_network("second_order", in_channels=1, image_shape=(8, 12), channels=(2, 4), out_channels=3,
                       n_steps=(2, 1), final_time=(1.0, 0.5), reversible=True)
    assert net.shape_in == (1, 8, 12) and net.shape_out == (3,)
    assert [b.n_steps for b in net.blocks[1:4:2]] == [2, 1]
    assert all(b.reversible for b in net.blocks[1:4:2])
    assert isinstance(net.blocks[2].elements[-1], AvgPool2d) and net.blocks[4].pool == 1


# ----------------------------------------------------------------- bad input
def test_bad_input():
    with pytest.raises(ValueError, match=r"channels must be even for a HamiltonianCNN .* got 5"):
        HamiltonianCNN(5, (4, 4), n_steps=2, final_time=1.0)
    with pytest.raises(ValueError, match="channels must be even .* got 63"):
        jmiv_network("hamiltonian", channels=(32, 63, 112))
    for make in (ParabolicCNN, HamiltonianCNN, SecondOrderCNN):
        with pytest.raises(ValueError, match="final_time must be positive, got 0"):
            make(4, (4, 4), n_steps=2, final_time=0)
        with pytest.raises(ValueError, match=r"final_time must be positive, got -1\.0"):
            make(4, (4, 4), n_steps=2, final_time=-1.0)
        with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
            make(4, (4, 4), n_steps=0, final_time=1.0)
        with pytest.raises(ValueError, match=r"normalization must be one of \{'batch', 'tv', 'instance', None\}, "
                                             r"got 'tvv'"):
            make(4, (4, 4), n_steps=2, final_time=1.0, normalization="tvv")
    with pytest.raises(ValueError, match="final_time must be positive, got 0"):
        jmiv_network(final_time=0.0)
    with pytest.raises(ValueError, match="normalization must be one of .* got 'BN'"):
        Connector(4, 6, (4, 4), normalization="BN")
    with pytest.raises(ValueError, match="connector_normalization must be one of .* got 'batchnorm'"):
        jmiv_network(connector_normalization="batchnorm")
    with pytest.raises(ValueError, match=r"image_shape \(height, width\) = \(7, 8\) must be divisible by pool = 2"):
        Connector(4, 6, (7, 8))
    with pytest.raises(ValueError, match=r"image_shape \(height, width\) = \(30, 30\) must be divisible by "
                                         r"2\*\*\(len\(channels\) - 1\) = 4"):
        jmiv_network(image_shape=(30, 30))
    with pytest.raises(ValueError, match="kind must be one of .* got 'resnet'"):
        jmiv_network("resnet")
    with pytest.raises(ValueError, match="reversible=True needs kind 'hamiltonian' or 'second_order'"):
        jmiv_network("parabolic", reversible=True)
    with pytest.raises(ValueError, match="n_steps must be a scalar or have one entry per unit .* got 2 entries"):
        jmiv_network(n_steps=(3, 3))
    with pytest.raises(ValueError, match=r"shape_in must be \(channels, height, width\), got \(4,\)"):
        GlobalAvgPool((4,))
    with pytest.raises(TypeError, match="reversible must be True or False"):
        SecondOrderCNN(4, (4, 4), n_steps=2, final_time=1.0, reversible=1)
