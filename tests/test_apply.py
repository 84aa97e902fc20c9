"""The cache-free forward ``Element.apply``: same value as ``forward`` (generic tests), and no stored states."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from meganet.integrators import AntisymmetricResNet
from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.kernels import _buffers, numba_available
from meganet.networks import Sequential

ENGINES = ["numpy"] + (["numba"] if numba_available() else [])


def _peak(fn):
    fn()  # warm-up (numba: compile or load from cache)
    _buffers.clear()  # the numba sweeps reuse pooled trajectory buffers: count fresh allocations
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("make", [
    lambda e: AntisymmetricResNet(4, n_steps=256, final_time=2.0, engine=e),
    lambda e: HamiltonianVerlet(4, 4, n_steps=256, final_time=2.0, engine=e),
    lambda e: Leapfrog(4, n_steps=256, final_time=2.0, engine=e),
    lambda e: Sequential([AntisymmetricResNet(8, n_steps=128, final_time=1.0, engine=e),
                          AntisymmetricResNet(8, n_steps=128, final_time=1.0, engine=e)]),
], ids=["antisym-resnet", "verlet", "leapfrog", "sequential"])
def test_apply_keeps_no_states(make, engine):
    block = make(engine)
    rng = np.random.default_rng(0)
    theta = 0.1 * rng.standard_normal(block.n_theta)
    Y = rng.standard_normal((1024, *block.shape_in))
    states_bytes = 256 * Y.nbytes  # one copy of Y per step: what forward keeps at least
    np.testing.assert_allclose(block.apply(theta, Y), block.forward(theta, Y)[0], rtol=1e-12, atol=1e-13)
    assert _peak(lambda: block.forward(theta, Y)) >= states_bytes
    assert _peak(lambda: block.apply(theta, Y)) < states_bytes / 16


@pytest.mark.skipif(not numba_available(), reason="the one-sweep jvp kernels are numba kernels")
@pytest.mark.parametrize("make", [
    lambda: AntisymmetricResNet(4, n_steps=256, final_time=2.0, engine="numba"),
    lambda: HamiltonianVerlet(4, 4, n_steps=256, final_time=2.0, engine="numba"),
    lambda: HamiltonianVerlet(4, 4, n_steps=256, final_time=2.0, engine="numba", basis="constant"),
], ids=["antisym-resnet", "verlet", "verlet-constant"])
def test_jvp_keeps_no_states(make):
    """``jvp`` of a fused block with numba: one sweep of state and tangent, no stored states
    (forward + Jmv keeps one copy of Y per step at least), and the values of forward + Jmv."""
    block = make()
    rng = np.random.default_rng(1)
    theta = 0.1 * rng.standard_normal(block.n_theta)
    Y = rng.standard_normal((1024, *block.shape_in))
    dtheta, dY = rng.standard_normal(block.n_theta), rng.standard_normal(Y.shape)
    states_bytes = 256 * Y.nbytes
    Z, cache = block.forward(theta, Y)
    for dth, dy in ((dtheta, dY), (dtheta, None), (None, dY)):
        Zj, dZ = block.jvp(theta, Y, dth, dy)
        np.testing.assert_allclose(Zj, Z, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(dZ, block.Jmv(dth, dy, theta, Y, cache), rtol=1e-11, atol=1e-12)
    assert _peak(lambda: block.forward(theta, Y)) >= states_bytes
    assert _peak(lambda: block.jvp(theta, Y, dtheta)) < states_bytes / 16


@pytest.mark.skipif(not numba_available(), reason="the buffer pool belongs to the numba engine")
def test_release_buffers_gives_back_the_pooled_trajectories():
    from meganet.kernels import release_buffers

    block = HamiltonianVerlet(4, 4, n_steps=64, final_time=2.0, engine="numba")
    rng = np.random.default_rng(1)
    theta = 0.1 * rng.standard_normal(block.n_theta)
    Y = rng.standard_normal((1024, 8))
    release_buffers()
    block.forward(theta, Y)  # its states (64 × 1024 × 4 float64 = 2 MiB each) are freed with the cache
    assert _buffers.pooled_bytes() >= 4 * 64 * 1024 * 4 * 8
    assert release_buffers() >= 4 * 64 * 1024 * 4 * 8
    assert _buffers.pooled_bytes() == 0


@pytest.mark.parametrize("activation, keeps_dsigma", [("tanh", False), ("relu", False), ("smooth_relu", True)])
def test_symmetric_layer_keeps_sigma_prime_only_when_needed(activation, keeps_dsigma):
    from meganet.layers.symmetric import SymmetricLayer
    from meganet.transforms.conv2d import Conv2d

    layer = SymmetricLayer(Conv2d(3, 4, (5, 5)), activation=activation)
    rng = np.random.default_rng(2)
    theta = layer.init_theta(rng=rng)
    Y = rng.standard_normal((2, 3, 5, 5))
    _, cache = layer.forward(theta, Y)
    assert cache.U is None and cache.V is None  # no normalization: K Y + b is not kept
    assert (cache.sigma is not None) == keeps_dsigma  # tanh/relu: σ' recomputed from S in the products
    np.testing.assert_allclose(layer._dsigma(cache), layer.activation.derivative(
        Conv2d(3, 4, (5, 5))._apply(theta[:layer.transform.n_theta], Y) + theta[layer.transform.n_theta:][None, :, None, None]),
        rtol=1e-12, atol=1e-14)
