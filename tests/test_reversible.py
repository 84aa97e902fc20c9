"""Hamiltonian/Verlet and leapfrog blocks: reversible backpropagation,
backward recomputation of the states, discrete energy, known answers, bad input.

The generic derivative/adjoint tests of both blocks in both modes run from the
registry (tests/cases/integrators_reversible.py); this file checks what is
specific to exactly invertible integrators.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from meganet.kernels import release_buffers
from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.time_basis import TimeBasis
from meganet.integrators.verlet import HamiltonianVerlet


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _pair(make):
    """The same block in stored and in reversible mode."""
    return make(False), make(True)


DEEP = {
    # T chosen so the dynamics is far from the identity map (‖Y_N − Y_0‖ ~ ‖Y_0‖)
    "verlet": lambda r: HamiltonianVerlet(3, 5, n_steps=512, final_time=20.0, bias="vector", reversible=r),
    "leapfrog": lambda r: Leapfrog(4, n_steps=512, final_time=6.0, reversible=r),
}


# --------------------------------------------------------------- reversible == stored
@pytest.mark.parametrize("name", list(DEEP))
def test_reversible_gradient_equals_stored_deep(name):
    """Depth 512, float64: JTmv (θ and Y parts, summed and per example) and Jmv
    agree between the stored and the reversible mode to ≤ 1e-10 relative."""
    stored, rev = _pair(DEEP[name])
    rng = np.random.default_rng(0)
    theta = stored.init_theta(rng=rng)
    Y = rng.standard_normal((3, stored.n_in))
    Z1, c1 = stored.forward(theta, Y)
    Z2, c2 = rev.forward(theta, Y)
    np.testing.assert_array_equal(Z1, Z2)  # same arithmetic
    assert _rel(Z1, Y) > 0.3, "the block should move the data"
    assert c2.steps is None and c1.steps is not None and len(c1.steps) == stored.n_steps
    W = rng.standard_normal(Z1.shape)
    g1, dY1 = stored.JTmv(W, theta, Y, c1)
    g2, dY2 = rev.JTmv(W, theta, Y, c2)
    assert _rel(g2, g1) <= 1e-10
    assert _rel(dY2, dY1) <= 1e-10
    G1 = stored.JthetaTmv(W, theta, Y, c1, per_example=True)
    G2 = rev.JthetaTmv(W, theta, Y, c2, per_example=True)
    assert G2.shape == (3, stored.n_theta)
    assert _rel(G2, G1) <= 1e-10
    dth, dY = rng.standard_normal(theta.shape), rng.standard_normal(Y.shape)
    assert _rel(rev.Jmv(dth, dY, theta, Y, c2), stored.Jmv(dth, dY, theta, Y, c1)) <= 1e-12


def test_reversible_gradient_with_shared_weights():
    """Constant basis (identical layers): the reversible adjoint accumulates all
    steps into one weight set, as the stored one does."""
    stored, rev = _pair(lambda r: HamiltonianVerlet(4, 2, n_steps=300, final_time=15.0, basis="constant",
                                                    reversible=r))
    rng = np.random.default_rng(1)
    theta = stored.init_theta(rng=rng)
    Y = np.hstack([rng.standard_normal((2, 4)), np.zeros((2, 2))])
    W = rng.standard_normal(Y.shape)
    g1, d1 = stored.JTmv(W, theta, Y)
    g2, d2 = rev.JTmv(W, theta, Y)
    assert g1.shape == (4 * 2 + 1,)
    assert _rel(g2, g1) <= 1e-10 and _rel(d2, d1) <= 1e-10


# ------------------------------------------------------------ backward recompute
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_verlet_backward_recompute_reproduces_states(dtype, tol):
    el = HamiltonianVerlet(3, 2, n_steps=64, final_time=4.0, reversible=True)
    rng = np.random.default_rng(2)
    theta = el.init_theta(rng=rng, dtype=dtype)
    Y = rng.standard_normal((5, 5)).astype(dtype)
    y_fw, z_fw = el.trajectory(theta, Y)
    assert y_fw.shape == (65, 5, 3) and z_fw.shape == (65, 5, 2) and y_fw.dtype == dtype
    Z, cache = el.forward(theta, Y)
    np.testing.assert_array_equal(np.hstack([y_fw[-1], z_fw[-1]]), Z)
    y_bw, z_bw = el.reconstruct_trajectory(theta, cache)
    assert y_bw.dtype == dtype
    for j in range(65):
        assert _rel(y_bw[j], y_fw[j]) <= tol and _rel(z_bw[j], z_fw[j]) <= tol
    # the input, without storing states
    Y0 = el.reconstruct_input(theta, cache)
    assert Y0.dtype == dtype and _rel(Y0, Y) <= tol
    np.testing.assert_array_equal(Y0, np.hstack([y_bw[0], z_bw[0]]))


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_leapfrog_backward_recompute_reproduces_states(dtype, tol):
    el = Leapfrog(4, n_steps=64, final_time=3.0, activation="sigmoid", reversible=True)
    rng = np.random.default_rng(3)
    theta = el.init_theta(rng=rng, dtype=dtype)
    Y = rng.standard_normal((3, 4)).astype(dtype)
    fw = el.trajectory(theta, Y)
    Z, cache = el.forward(theta, Y)
    np.testing.assert_array_equal(fw[-1], Z)
    np.testing.assert_array_equal(cache.final.prev, fw[-2])  # the cache keeps (Y_{N−1}, Y_N) only
    bw = el.reconstruct_trajectory(theta, cache)
    assert bw.shape == (66, 3, 4)
    assert _rel(bw[0], Y) <= tol  # Y_{−1} = Y_0 comes back out of the backward recursion
    for j in range(65):
        assert _rel(bw[j + 1], fw[j]) <= tol
    assert _rel(el.reconstruct_input(theta, cache), Y) <= tol


def test_reconstruct_rejects_foreign_cache():
    el = Leapfrog(3, n_steps=16, final_time=1.0)
    theta = el.init_theta(rng=0)
    with pytest.raises(TypeError, match="cache must be the IntegratorCache"):
        el.reconstruct_input(theta, {"final": None})


# ------------------------------------------------------------------ known answers
def test_verlet_two_steps_by_hand():
    """Eq. 4.15 written out in column-vector form for N = 2, scalar biases, K non-square (2 × 3)."""
    rng = np.random.default_rng(4)
    el = HamiltonianVerlet(2, 3, n_steps=2, final_time=0.6)
    h = 0.3
    K = [rng.standard_normal((2, 3)) for _ in range(2)]
    b = [0.2, -0.1]
    theta = np.concatenate([np.append(K[0].ravel(), b[0]), np.append(K[1].ravel(), b[1])])
    y0, z0 = rng.standard_normal(2), rng.standard_normal(3)
    y, z = y0, z0
    for j in range(2):
        z = z - h * np.tanh(K[j].T @ y + b[j])
        y = y + h * np.tanh(K[j] @ z + b[j])
    out = el(theta, np.concatenate([y0, z0])[None, :])
    np.testing.assert_allclose(out[0], np.concatenate([y, z]), rtol=1e-14, atol=1e-15)


def test_leapfrog_by_hand():
    """Eq. 4.16 for N = 3 with Y_{−1} = Y_0, vector bias, K applied as K y."""
    rng = np.random.default_rng(5)
    el = Leapfrog(3, n_steps=3, final_time=0.9, activation="sigmoid")
    h2 = 0.3 ** 2
    K = [rng.standard_normal((3, 3)) for _ in range(3)]
    b = [rng.standard_normal(3) for _ in range(3)]
    theta = np.concatenate([np.concatenate([Kj.ravel(), bj]) for Kj, bj in zip(K, b)])
    y0 = rng.standard_normal(3)
    prev, cur = y0, y0
    for j in range(3):
        prev, cur = cur, 2 * cur - prev + h2 / (1 + np.exp(-(K[j] @ cur + b[j])))
    np.testing.assert_allclose(el(theta, y0[None, :])[0], cur, rtol=1e-14)


def test_layout_matches_time_basis_convention():
    """θ = (θ_0, …, θ_{n_basis−1}), θ_k = (vec K_k, b_k); a hat basis interpolates them."""
    el = HamiltonianVerlet(2, 3, n_steps=4, final_time=1.0, bias="vector", basis=TimeBasis.hat(4, 3))
    assert el.n_theta_layer == 2 * 3 + 5 and el.n_theta == 3 * 11
    assert el.layout.names == ("0", "1", "2")
    theta = np.arange(el.n_theta, dtype=float)
    W = el.step_weights(theta)
    np.testing.assert_allclose(W[1], 0.5 * theta[0:11] + 0.5 * theta[11:22])


# ------------------------------------------------------------------ energy
def _verlet_linear(n_steps, final_time):
    """σ = identity, b = 0, one K for all steps: ẏ = Kz, ż = −Kᵀy, whose energy
    ½(|y|² + |z|²) is conserved by the ODE."""
    return HamiltonianVerlet(3, 2, n_steps=n_steps, final_time=final_time, activation="identity", bias="none",
                             basis="constant")


def _linear_setup():
    rng = np.random.default_rng(6)
    K = rng.standard_normal((3, 2)) / np.sqrt(3)
    Y = np.hstack([rng.standard_normal((4, 3)), np.zeros((4, 2))])
    return K.ravel(), Y


def test_verlet_conserves_modified_energy_exactly():
    """For the linear constant-weight case the Verlet scheme conserves
    Ẽ_j = ½|y_j|² + ½ z_{j−½}·z_{j+½} exactly (derivation in the class
    docstring): up to round-off over 4000 steps, per example."""
    theta, Y = _linear_setup()
    el = _verlet_linear(4000, 400.0)
    y, z = el.trajectory(theta, Y)
    E_mod = 0.5 * (y[:-1] ** 2).sum(-1) + 0.5 * (z[:-1] * z[1:]).sum(-1)  # (N, n_examples)
    assert np.max(np.abs(E_mod - E_mod[0]) / E_mod[0]) <= 1e-11


def test_verlet_energy_error_is_bounded_and_second_order():
    """The ODE energy at the centered states, E_j = ½|y_j|² + ½|½(z_{j−½} + z_{j+½})|²,
    oscillates within O(h²) of E_0 without drift: halving h divides the maximal
    deviation over a long interval by ≈ 4, and the deviation over the second
    half of the interval is no larger than over the first."""
    theta, Y = _linear_setup()
    T = 200.0
    errs = []
    for N in (1000, 2000, 4000):
        y, z = _verlet_linear(N, T).trajectory(theta, Y)
        zc = 0.5 * (z[:-1] + z[1:])
        E = 0.5 * (y[:-1] ** 2).sum(-1) + 0.5 * (zc ** 2).sum(-1)
        dev = np.abs(E - E[0]) / E[0]
        first, second = dev[: N // 2].max(), dev[N // 2 :].max()
        assert second <= 1.2 * first  # bounded oscillation, no drift
        errs.append(dev.max())
    h = T / 1000
    assert errs[0] < h ** 2  # O(h²) with a modest constant
    for a, b in zip(errs, errs[1:]):
        assert 3.5 < a / b < 4.5


def test_energy_check_detects_explicit_euler_drift():
    """Sanity check that the energy test can fail: the same linear dynamics with
    *non-staggered* (explicit Euler) updates drifts by O(1) over the interval."""
    theta, Y = _linear_setup()
    K = theta.reshape(3, 2)
    h, N = 0.2, 1000
    y, z = Y[:, :3].copy(), Y[:, 3:].copy()
    E0 = 0.5 * ((y ** 2).sum(-1) + (z ** 2).sum(-1))
    for _ in range(N):
        y, z = y + h * z @ K.T, z - h * y @ K
    E = 0.5 * ((y ** 2).sum(-1) + (z ** 2).sum(-1))
    assert np.min(E / E0) > 2.0  # forward Euler gains energy: the Verlet bounds above are not trivial


def test_leapfrog_conserves_discrete_energy():
    """σ = identity, b = 0, constant K = −A (A SPD, h²‖A‖ < 4): leapfrog conserves
    |(Y_{j+1} − Y_j)/h|² + Y_{j+1}ᵀ A Y_j exactly (up to round-off)."""
    rng = np.random.default_rng(7)
    C = rng.standard_normal((4, 4))
    A = C.T @ C / 4 + 0.1 * np.eye(4)
    el = Leapfrog(4, n_steps=3000, final_time=150.0, activation="identity", bias="none", basis="constant")
    assert el.h ** 2 * np.linalg.eigvalsh(A).max() < 4
    Y = rng.standard_normal((3, 4))
    traj = el.trajectory((-A).ravel(), Y)
    d = (traj[1:] - traj[:-1]) / el.h
    E = (d ** 2).sum(-1) + np.einsum("jni,ik,jnk->jn", traj[1:], A, traj[:-1])
    assert np.max(np.abs(E - E[0]) / np.abs(E[0])) <= 1e-10


# ------------------------------------------------------------------ memory
def _peak_forward_adjoint(el, theta, Y, W):
    # warm-up outside the measurement: a first call may compile (numba) or load kernels, whose
    # allocations would otherwise count as the element's (seen on a fresh clone with a cold numba cache);
    # an empty buffer pool first, so that the warm-up's buffers are pooled and reused whatever earlier tests
    # in this process left in the pool (a full pool makes every call allocate afresh)
    release_buffers()
    Z, cache = el.forward(theta, Y)
    el.JTmv(W, theta, Y, cache)
    del Z, cache
    # tracemalloc sees every thread's allocations: threads left running by other tests in the same process
    # (e.g. a dask client's event loop) add noise to a single measurement; the minimum of three does not
    peaks = []
    tracemalloc.start()
    try:
        for _ in range(3):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            Z, cache = el.forward(theta, Y)
            el.JTmv(W, theta, Y, cache)
            del Z, cache
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    return min(peaks)


def _depth_peaks():
    rng = np.random.default_rng(8)
    Y = rng.standard_normal((64, 12))
    W = rng.standard_normal(Y.shape)
    peaks = {}
    for rev in (False, True):
        for N in (32, 256):
            el = HamiltonianVerlet(6, 6, n_steps=N, final_time=N / 16, basis="constant", reversible=rev)
            theta = el.init_theta(rng=0)
            peaks[f"{rev}-{N}"] = _peak_forward_adjoint(el, theta, Y, W)
    return peaks


def test_reversible_memory_does_not_grow_with_depth():
    """Peak numpy memory of forward + JTmv (shared weights, so θ has a fixed
    size): flat in depth for the reversible mode, linear for the stored one.
    Measured in a fresh interpreter: tracemalloc counts every allocation of the
    process, and state left by other tests in a long pytest worker added tens of
    kB at N = 256 (seen in the full suite only, not reproduced in isolation)."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys; sys.path.insert(0, {tests!r}); import test_reversible as t; "
            "print(json.dumps(t._depth_peaks()))").format(tests=os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert out.returncode == 0, out.stderr
    p = json.loads(out.stdout.strip().splitlines()[-1])
    assert p["True-256"] <= 1.3 * p["True-32"], p
    assert p["False-256"] >= 5 * p["False-32"], p
    assert p["True-256"] * 20 <= p["False-256"], p


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("cls,args", [(HamiltonianVerlet, (2, 3)), (Leapfrog, (3,))])
def test_bad_step_size(cls, args):
    with pytest.raises(ValueError, match="final_time must be positive, got 0"):
        cls(*args, n_steps=8, final_time=0.0)
    with pytest.raises(ValueError, match="final_time must be positive, got -1"):
        cls(*args, n_steps=8, final_time=-1.0)
    with pytest.raises(TypeError, match="final_time must be a finite real number"):
        cls(*args, n_steps=8, final_time=float("inf"))
    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
        cls(*args, n_steps=0, final_time=1.0)
    with pytest.raises(TypeError, match="n_steps must be an integer"):
        cls(*args, n_steps=8.0, final_time=1.0)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'final_time'"):
        cls(*args, n_steps=8)


@pytest.mark.parametrize("cls,args", [(HamiltonianVerlet, (2, 3)), (Leapfrog, (3,))])
def test_bad_options(cls, args):
    with pytest.raises(ValueError, match="bias must be one of .* got 'vectors'"):
        cls(*args, n_steps=4, final_time=1.0, bias="vectors")
    with pytest.raises(ValueError, match="activation must be one of .* got 'tahn'"):
        cls(*args, n_steps=4, final_time=1.0, activation="tahn")
    with pytest.raises(TypeError, match="reversible must be True or False, got 1"):
        cls(*args, n_steps=4, final_time=1.0, reversible=1)
    with pytest.raises(ValueError, match="basis must have n_steps = 4 rows"):
        cls(*args, n_steps=4, final_time=1.0, basis=TimeBasis.hat(5, 2))
    with pytest.raises(TypeError, match="unexpected keyword argument 'revesible'"):
        cls(*args, n_steps=4, final_time=1.0, revesible=True)


def test_bad_sizes_and_shapes():
    with pytest.raises(ValueError, match="n_z must be >= 1, got 0"):
        HamiltonianVerlet(3, 0, n_steps=4, final_time=1.0)
    with pytest.raises(TypeError, match="n_y must be an integer"):
        HamiltonianVerlet(2.5, 2, n_steps=4, final_time=1.0)
    with pytest.raises(ValueError, match="n_features must be >= 1"):
        Leapfrog(0, n_steps=4, final_time=1.0)
    el = HamiltonianVerlet(3, 2, n_steps=4, final_time=1.0)
    theta = el.init_theta(rng=0)
    # y only, without the auxiliary state: the input must be [y, z] of width n_y + n_z = 5
    with pytest.raises(ValueError, match=r"Y must have shape \(n_examples, 5\) for HamiltonianVerlet, got \(4, 3\)"):
        el.forward(theta, np.zeros((4, 3)))
    # θ of a block with other widths (3 × 3 instead of 3 × 2)
    other = HamiltonianVerlet(3, 3, n_steps=4, final_time=1.0)
    with pytest.raises(ValueError, match=r"theta must have shape \(28,\)"):
        el.forward(other.init_theta(rng=0), np.zeros((4, 5)))
    lf = Leapfrog(3, n_steps=4, final_time=1.0)
    with pytest.raises(ValueError, match=r"W must have shape \(2, 3\)"):
        lf.JTmv(np.zeros((2, 4)), lf.init_theta(rng=0), np.zeros((2, 3)))


def test_verlet_cnn_with_1x1_kernels_on_1x1_images_is_the_dense_verlet():
    """HamiltonianVerletCNN is eq. 4.17 with convolutions: with 1 × 1 stencils on 1 × 1 images its step is
    HamiltonianVerlet's with the same (C_y × C_z) matrix, forward and derivatives."""
    from meganet.integrators import HamiltonianVerlet, HamiltonianVerletCNN

    rng = np.random.default_rng(5)
    cnn = HamiltonianVerletCNN(3, 2, (1, 1), kernel_size=1, n_steps=7, final_time=1.4)
    dense = HamiltonianVerlet(3, 2, n_steps=7, final_time=1.4, engine="numpy")
    theta = rng.standard_normal(cnn.n_theta)
    assert dense.n_theta == cnn.n_theta
    Y = rng.standard_normal((4, 5))
    Z_dense, cd = dense.forward(theta, Y)
    Z_cnn, cc = cnn.forward(theta, Y.reshape(4, 5, 1, 1))
    np.testing.assert_allclose(Z_cnn.reshape(4, 5), Z_dense, rtol=1e-13, atol=1e-14)
    W = rng.standard_normal((4, 5))
    gd, yd = dense.JTmv(W, theta, Y, cd)
    gc, yc = cnn.JTmv(W.reshape(4, 5, 1, 1), theta, Y.reshape(4, 5, 1, 1), cc)
    np.testing.assert_allclose(gc, gd, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(yc.reshape(4, 5), yd, rtol=1e-12, atol=1e-14)
