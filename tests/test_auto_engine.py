"""``engine='auto'`` of the fused time-step sweeps on small problems (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.kernels import numba_available
@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_auto_engine_threshold_in_steps(monkeypatch):
    """engine='auto': Verlet takes the fused numba sweep from 8 steps on, the step loop below (the measured
    crossover); explicit engine='numba' always takes the sweep; the dense ResNet takes it at any depth.
    Both paths give the same products."""
    from meganet.integrators import HamiltonianVerlet, ResNet
    from meganet.layers import SingleLayer
    from meganet.transforms import Dense

    rng = np.random.default_rng(6)
    Y = rng.standard_normal((5, 4))
    for n_steps, fused in ((4, False), (7, False), (8, True), (16, True)):
        auto = HamiltonianVerlet(2, 2, n_steps=n_steps, final_time=1.0)
        numba = HamiltonianVerlet(2, 2, n_steps=n_steps, final_time=1.0, engine="numba")
        assert (auto._fused_engine(Y) == "numba") is fused
        assert numba._fused_engine(Y) == "numba"
        theta = 0.3 * rng.standard_normal(auto.n_theta)
        np.testing.assert_allclose(auto.apply(theta, Y), numba.apply(theta, Y), rtol=1e-12, atol=1e-14)
    big = rng.standard_normal((4096, 4))  # 4096 examples × 4 steps: the sweep's fixed cost no longer dominates
    assert HamiltonianVerlet(2, 2, n_steps=4, final_time=1.0)._fused_engine(big) == "numba"
    assert HamiltonianVerlet(2, 2, n_steps=4, final_time=1.0)._fused_engine(big[:4095]) is None
    dense = ResNet(SingleLayer(Dense(4, 4)), n_steps=2, final_time=1.0)
    assert dense._fused_supported() and dense._fused_engine(Y) == "numba"
