"""Stability tools (Jacobian spectra, Lemma 1, perturbation growth) and the
Figure 1 / Figure 2 example scripts of Haber & Ruthotto 2017.

Known answers: spectra of linear layers are the eigenvalues of K (repeated per
example); a tanh layer's per-example Jacobian is ``diag(σ'(Ky + b)) K``; a
periodic convolution is diagonalized by the DFT; the per-step growth of a
linear ResNet is ``|1 + hλ|^j`` and of a linear RK4 block ``|R(hλ)|^j``.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

from meganet.integrators import ResNet, RK4ResNet
from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.layers import SingleLayer
from meganet.networks import Meganet
from meganet.stability import block_states, forward_euler_stable, jacobian_spectrum, perturbation_growth
from meganet.transforms import Dense
from meganet.transforms.conv2d import Conv2d

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _linear(n):
    return SingleLayer(Dense(n, n), activation="identity", bias=False)


def _same_multiset(a, b, tol):
    """Every eigenvalue of ``a`` matched to a distinct one of ``b``."""
    a, b = list(np.asarray(a).ravel()), list(np.asarray(b).ravel())
    assert len(a) == len(b)
    for x in a:
        d = [abs(x - y) for y in b]
        i = int(np.argmin(d))
        assert d[i] < tol, (x, b)
        b.pop(i)


# --------------------------------------------------------------- spectrum
def test_spectrum_of_linear_layer_is_eig_of_K_repeated_per_example():
    rng = np.random.default_rng(0)
    K = rng.standard_normal((4, 4))
    lam = np.linalg.eigvals(K)
    Y = rng.standard_normal((3, 4))
    vals = jacobian_spectrum(_linear(4), K.reshape(-1), Y, method="dense")
    assert vals.shape == (12,)
    _same_multiset(vals, np.tile(lam, 3), 1e-10)
    # sorted by decreasing magnitude
    assert np.all(np.diff(np.abs(vals)) <= 1e-12)
    per = jacobian_spectrum(_linear(4), K.reshape(-1), Y, per_example=True)
    assert per.shape == (3, 4)
    for row in per:
        _same_multiset(row, lam, 1e-10)


def test_per_example_spectrum_of_tanh_layer_matches_hand_jacobian():
    rng = np.random.default_rng(1)
    n = 5
    layer = SingleLayer(Dense(n, n), activation="tanh")
    theta = rng.standard_normal(layer.n_theta)
    K, b = theta[: n * n].reshape(n, n), theta[n * n:]
    Y = rng.standard_normal((4, n))
    per = jacobian_spectrum(layer, theta, Y, per_example=True)
    for i in range(4):
        J = np.diag(1.0 - np.tanh(K @ Y[i] + b) ** 2) @ K
        _same_multiset(per[i], np.linalg.eigvals(J), 1e-10)
    # the batch spectrum is the union of the per-example spectra (block diagonal J_Y)
    _same_multiset(jacobian_spectrum(layer, theta, Y), per, 1e-10)


def test_spectrum_of_periodic_convolution_is_its_dft():
    rng = np.random.default_rng(2)
    H = W = 6
    conv = Conv2d(1, 1, (H, W), boundary="periodic")
    K = rng.standard_normal((3, 3))
    # z[x] = Σ_a K[a] y[x + a − 1]: eigenvalue at frequency ω is Σ_a K[a] exp(2πi ω·(a − 1)/N)
    fx, fy = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    lam = sum(K[a, b] * np.exp(2j * np.pi * (fx * (a - 1) / H + fy * (b - 1) / W)) for a in range(3) for b in range(3))
    vals = jacobian_spectrum(conv, K.reshape(-1), np.zeros((1, 1, H, W)))
    _same_multiset(vals, lam.ravel(), 1e-9)


def test_eigs_on_large_jacobian_matches_dense_extremes():
    rng = np.random.default_rng(3)
    n, n_ex = 40, 30  # J_Y is 1200 × 1200 > dense_max_size: 'auto' uses ARPACK
    layer = SingleLayer(Dense(n, n), activation="tanh")
    theta = layer.init_theta(rng=3)
    Y = rng.standard_normal((n_ex, n))
    per = jacobian_spectrum(layer, theta, Y, per_example=True)  # 30 dense 40 × 40 problems
    allv = per.ravel()
    # a fixed start vector: with ARPACK's own random start the result varies between runs (one failure seen)
    v0 = rng.standard_normal(n * n_ex)
    top = jacobian_spectrum(layer, theta, Y, k=4, which="LM", v0=v0)
    assert top.shape == (4,)
    np.testing.assert_allclose(np.abs(top), np.sort(np.abs(allv))[::-1][:4], rtol=1e-8)
    right = jacobian_spectrum(layer, theta, Y, method="eigs", k=3, which="LR", v0=v0)
    np.testing.assert_allclose(np.sort(right.real)[::-1], np.sort(allv.real)[::-1][:3], rtol=1e-8, atol=1e-10)


def test_spectrum_float32_close_to_float64():
    rng = np.random.default_rng(4)
    layer = SingleLayer(Dense(3, 3), activation="tanh")
    theta = layer.init_theta(rng=4)
    Y = rng.standard_normal((2, 3))
    v64 = jacobian_spectrum(layer, theta, Y)
    v32 = jacobian_spectrum(layer, theta.astype(np.float32), Y.astype(np.float32))
    assert v32.dtype == np.complex64
    _same_multiset(v32, v64, 1e-5)


def test_spectrum_bad_input():
    rng = np.random.default_rng(5)
    msg = r"square Jacobian \(shape_in == shape_out\).*shape_in \(3,\) and shape_out \(4,\)"
    with pytest.raises(ValueError, match=msg):
        jacobian_spectrum(Dense(3, 4), np.zeros(12), rng.standard_normal((2, 3)))
    layer = _linear(3)
    with pytest.raises(ValueError, match="method must be one of"):
        jacobian_spectrum(layer, np.zeros(9), np.zeros((1, 3)), method="arpack")
    with pytest.raises(ValueError, match="which must be one of"):
        jacobian_spectrum(layer, np.zeros(9), np.zeros((1, 3)), which="XX")
    with pytest.raises(ValueError, match=r"k must be < size - 1 = 2 for method='eigs'"):
        jacobian_spectrum(layer, np.zeros(9), np.zeros((1, 3)), method="eigs", k=2)
    with pytest.raises(ValueError, match=r"theta must have shape \(9,\)"):
        jacobian_spectrum(layer, np.zeros(8), np.zeros((1, 3)))


# ----------------------------------------------------------------- Lemma 1
def test_forward_euler_stable_known_answers():
    r = forward_euler_stable([-2.0, -1.0], 0.5)
    assert r and r.amplification == pytest.approx(0.5) and r.worst_eigenvalue == -1.0
    r = forward_euler_stable([-2.0], 1.1)
    assert not r and r.amplification == pytest.approx(1.2)
    assert forward_euler_stable([-2.0], 1.0)  # boundary |1 − 2| = 1 is stable
    r = forward_euler_stable(np.array([1j, -1j]), 0.1)  # imaginary: unstable for every h > 0
    assert not r and r.amplification == pytest.approx(np.sqrt(1.01))
    assert forward_euler_stable(np.array([1j]), 0.1, tol=0.01)
    assert "UNSTABLE" in str(forward_euler_stable([3.0], 0.1))
    with pytest.raises(ValueError, match="h must be positive, got -0.1"):
        forward_euler_stable([1.0], -0.1)
    with pytest.raises(ValueError, match="at least one eigenvalue"):
        forward_euler_stable([], 0.1)


# ------------------------------------------------------ perturbation growth
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_perturbation_growth_linear_resnet_known_answer(dtype):
    # y' = K y with K = [[−a, −w], [w, −a]]: I + hK = r·rotation, r = |1 + hλ|, λ = −a ± iw,
    # so every perturbation grows by exactly r^j after j steps
    a, w, N, T = 0.5, 2.0, 20, 2.0
    h = T / N
    K = np.array([[-a, -w], [w, -a]])
    block = ResNet(_linear(2), n_steps=N, final_time=T, basis="constant")
    Y0 = np.random.default_rng(0).standard_normal((4, 2)).astype(dtype)
    res = perturbation_growth(block, K.reshape(-1).astype(dtype), Y0, delta=1e-2, rng=1, n_trials=3)
    r = abs(1 + h * complex(-a, w))
    rtol = 1e-10 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(res.ratio, r ** N, rtol=rtol)
    np.testing.assert_allclose(res.ratio_per_example, r ** N, rtol=rtol)
    assert res.ratio_per_step.shape == (3, N + 1)
    np.testing.assert_allclose(res.ratio_per_step, np.tile(r ** np.arange(N + 1), (3, 1)), rtol=rtol)
    assert res.max_ratio == pytest.approx(r ** N, rel=rtol)


def test_perturbation_growth_rk4_stability_polynomial():
    lam, N, T = -3.0, 10, 2.0
    z = lam * T / N
    R = 1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24
    block = RK4ResNet(_linear(1), n_steps=N, final_time=T, basis="constant")
    res = perturbation_growth(block, np.array([lam]), np.ones((2, 1)), rng=0)
    np.testing.assert_allclose(res.ratio_per_step[0], abs(R) ** np.arange(N + 1), rtol=1e-10)


def test_perturbation_growth_unstable_vs_stable_and_networks():
    rng = np.random.default_rng(6)
    Y0 = rng.standard_normal((5, 2))
    Kp = np.array([[2.0, -2.0], [0.0, 2.0]])
    unstable = ResNet(SingleLayer(Dense(2, 2), bias=False), n_steps=40, final_time=2.0, basis="constant")
    g = perturbation_growth(unstable, Kp.reshape(-1), 0.05 * Y0, rng=0)
    assert g.ratio[0] > 5 and np.all(np.diff(g.ratio_per_step[0]) > 0)
    Km = np.array([[-2.0, 0.0], [2.0, -2.0]])
    g = perturbation_growth(unstable, Km.reshape(-1), 0.05 * Y0, rng=0)
    assert g.ratio[0] < 0.2
    verlet = HamiltonianVerlet(1, 1, n_steps=400, final_time=40.0, bias="none", basis="constant")
    g = perturbation_growth(verlet, np.array([2.0]), np.hstack([Y0[:, :1], np.zeros((5, 1))]), rng=0)
    assert g.ratio_per_step.shape == (1, 401) and g.ratio_per_step.max() < 30  # bounded (at most linear drift)
    lf = Leapfrog(2, n_steps=50, final_time=5.0, bias="none", basis="constant")
    assert perturbation_growth(lf, -np.eye(2).reshape(-1), Y0, rng=0).ratio_per_step.shape == (1, 51)
    net = Meganet([unstable, SingleLayer(Dense(2, 3))])
    theta = np.concatenate([Kp.reshape(-1), np.zeros(9)])
    theta[4:10] = rng.standard_normal(6)
    g = perturbation_growth(net, theta, Y0, rng=0, n_trials=2)
    assert g.ratio_per_step is None and g.ratio.shape == (2,) and g.ratio_per_example.shape == (2, 5)
    with pytest.raises(ValueError, match="delta must be positive"):
        perturbation_growth(lf, np.zeros(lf.n_theta), Y0, delta=0.0)


def test_block_states_match_a_manual_loop():
    rng = np.random.default_rng(7)
    block = ResNet(SingleLayer(Dense(3, 3)), n_steps=5, final_time=1.0)
    theta = block.init_theta(rng=7)
    Y = rng.standard_normal((2, 3))
    states = block_states(block, theta, Y)
    C = block.coefficients(theta)
    Yj = Y
    for j in range(5):
        np.testing.assert_allclose(states[j], Yj, rtol=1e-14)
        Yj = Yj + block.h * block.layer(C[j], Yj)
    np.testing.assert_allclose(states[5], Yj, rtol=1e-14)
    assert block_states(SingleLayer(Dense(3, 3)), theta[:12], Y) is None


# ---------------------------------------------------------------- examples
def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _assert_png(path):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_example_figure1(tmp_path):
    """Example 1: eq. (3.10) matrices, N = 10, h = 0.1, tanh, b = 0, y₁ = [0.1, 0.1], y₂ = −y₁, y₃ = [0, 0.5]."""
    mod = _load("stability_figure1")
    np.testing.assert_array_equal(mod.MATRICES["K+"], [[2, -2], [0, 2]])
    np.testing.assert_array_equal(mod.MATRICES["K-"], [[-2, 0], [2, -2]])
    np.testing.assert_array_equal(mod.MATRICES["K0"], [[0, -1], [1, 0]])
    np.testing.assert_array_equal(mod.START_POINTS, [[0.1, 0.1], [-0.1, -0.1], [0.0, 0.5]])
    res = mod.main(["--out", str(tmp_path / "f1")])
    _assert_png(res["png"])
    Kp, Km, K0 = res["K+"], res["K-"], res["K0"]
    for r in (Kp, Km, K0):
        assert r["states"].shape == (11, 3, 2) and r["euler"].h == pytest.approx(0.1)
        np.testing.assert_allclose(r["states"][:, 1], -r["states"][:, 0])  # tanh is odd: y₂ = −y₁ throughout
    np.testing.assert_allclose(np.sort_complex(Kp["eigenvalues"]), [2, 2], atol=1e-6)
    np.testing.assert_allclose(np.sort_complex(Km["eigenvalues"]), [-2, -2], atol=1e-6)
    np.testing.assert_allclose(np.sort_complex(K0["eigenvalues"]), [-1j, 1j], atol=1e-12)
    # K₊ diverges: every feature grows, and y₁, y₂ depart in opposite directions
    assert Kp["norm_ratio"].min() > 2.5 and Kp["distance_ratio_12"] > 4.0
    # K₋ contracts to the origin: differences between features are annihilated
    assert Km["norm_ratio"].max() < 0.35 and Km["distance_ratio_12"] < 0.3
    # K₀ rotates and preserves norms up to the forward Euler drift √(1 + h²) per step (≈ 1.01⁵ = 1.051 over 10 steps)
    assert np.all(K0["norm_ratio"] > 1.0) and np.all(K0["norm_ratio"] < 1.06)
    angle = np.arctan2(K0["states"][-1, 2, 1], K0["states"][-1, 2, 0])  # y₃ = [0, 0.5] turned clockwise
    assert 0.4 < angle < np.pi / 2 - 0.4
    drift_fine = np.abs(mod.run(n_steps=40, h=0.025)["K0"]["hamiltonian_ratio"] - 1).max()
    assert drift_fine < 0.35 * np.abs(K0["hamiltonian_ratio"] - 1).max()  # h / 4 → drift / 4: Euler's O(h)
    assert not Kp["euler"] and Km["euler"] and not K0["euler"]
    assert [r["euler_label"][0] for r in (Kp, Km, K0)] == ["unstable", "stable", "marginal"]


def test_example_figure2(tmp_path):
    """Example 2: leapfrog K = K₋, h = 1; Verlet K_v (3 × 2), h = 0.1; y₁ = ±[0.1, 0.1]; N = 500 and 5000."""
    mod = _load("stability_figure2")
    np.testing.assert_array_equal(mod.K_MINUS, [[-2, 0], [2, -2]])
    np.testing.assert_array_equal(mod.K_VERLET, [[2, 1], [-1, 2], [0, 1]])
    assert (mod.H_LEAPFROG, mod.H_VERLET) == (1.0, 0.1)
    np.testing.assert_allclose(np.linalg.eigvals(mod.K_MINUS), [-2, -2])
    res = mod.main(["--out", str(tmp_path / "f2")])
    _assert_png(res["png"])
    y0 = np.sqrt(2) * 0.1
    for N in (500, 5000):
        v = res[f"verlet_N{N}"]
        assert v["states"].shape == (N + 1, 2, 2)
        # Verlet: neither explodes nor vanishes, also over 5000 layers
        assert v["max_norm"] < 1.05 * y0 and v["max_norm_second_half"] > 0.95 * v["max_norm_first_half"]
        lf = res[f"leapfrog_N{N}"]
        assert np.all(np.isfinite(lf["states"])) and lf["max_norm_second_half"] > y0  # does not vanish
    # leapfrog with the defective K₋: secular (about linear), not exponential growth over 10× the depth
    ratio = res["leapfrog_N5000"]["max_norm"] / res["leapfrog_N500"]["max_norm"]
    assert 3 < ratio < 100


def test_stability_tools_on_backend(xp):
    """numpy always; cupy when a GPU is present (conftest ``xp`` fixture): same numbers as numpy."""
    from meganet.backend import to_backend

    rng = np.random.default_rng(8)
    layer = SingleLayer(Dense(3, 3), activation="tanh")
    theta = layer.init_theta(rng=8)
    Y = rng.standard_normal((2, 3))
    ref = jacobian_spectrum(layer, theta, Y)
    got = jacobian_spectrum(layer, to_backend(theta, xp), to_backend(Y, xp))
    assert isinstance(got, np.ndarray)
    _same_multiset(got, ref, 1e-10)
    block = ResNet(layer, n_steps=6, final_time=1.0)
    th = block.init_theta(rng=9)
    g_ref = perturbation_growth(block, th, Y, rng=3)
    g = perturbation_growth(block, to_backend(th, xp), to_backend(Y, xp), rng=3)
    np.testing.assert_allclose(g.ratio_per_step, g_ref.ratio_per_step, rtol=1e-10)
