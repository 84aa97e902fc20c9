"""Tests of the 2-D convolutions: kernels (meganet.kernels.conv2d) and the
transforms Conv2d and Conv2dFFT.

Known answers come from scipy.signal (single-channel correlate2d/convolve2d,
summed over channels by hand); the FFT versions are compared with the direct
ones; adjoints are checked with dot tests (and one dot test is shown to fail
for a wrong adjoint).  The generic element tests run on the cases of
tests/cases/conv.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve2d, correlate2d

from meganet.backend import to_backend, to_numpy
from meganet.kernels.conv2d import (
    conv2d_adjoint_input,
    conv2d_adjoint_weight,
    conv2d_fft_adjoint_input,
    conv2d_fft_adjoint_weight,
    conv2d_fft_forward,
    conv2d_forward,
)
from meganet.testing import dot_test, taylor_test
from meganet.transforms.conv2d import Conv2d
from meganet.transforms.conv2d_fft import Conv2dFFT
from tests.conftest import DTYPE_PARAMS, XP_PARAMS, get_xp

SCIPY_BOUNDARY = {"zero": "fill", "periodic": "wrap"}
KERNEL_SIZES = [(3, 3), (1, 1), (5, 3), (3, 5)]


def _rand(rng, shape, dtype=np.float64, xp=np):
    return to_backend(rng.standard_normal(shape).astype(dtype), xp)


def _rel(a, b):
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


# ------------------------------------------------------------ known answers
@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("boundary", ["zero", "periodic"])
@pytest.mark.parametrize("ks", KERNEL_SIZES)
def test_forward_matches_scipy_correlate2d(ks, boundary, xp_name):
    xp = get_xp(xp_name)
    rng = np.random.default_rng(0)
    Y, K = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((2, 3, *ks))
    ref = np.array([[sum(correlate2d(Y[s, i], K[o, i], mode="same", boundary=SCIPY_BOUNDARY[boundary])
                         for i in range(3)) for o in range(2)] for s in range(2)])
    Z = conv2d_forward(to_backend(Y, xp), to_backend(K, xp), boundary)
    assert Z.shape == (2, 2, 5, 6)
    np.testing.assert_allclose(to_numpy(Z), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("boundary", ["zero", "periodic"])
@pytest.mark.parametrize("ks", KERNEL_SIZES)
def test_adjoint_input_matches_scipy_convolve2d(ks, boundary, xp_name):
    # Kᵀ is the convolution (flipped stencil) with swapped channels.
    xp = get_xp(xp_name)
    rng = np.random.default_rng(1)
    Z, K = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((2, 3, *ks))
    ref = np.array([[sum(convolve2d(Z[s, o], K[o, i], mode="same", boundary=SCIPY_BOUNDARY[boundary])
                         for o in range(2)) for i in range(3)] for s in range(2)])
    A = conv2d_adjoint_input(to_backend(Z, xp), to_backend(K, xp), boundary)
    assert A.shape == (2, 3, 6, 5)
    np.testing.assert_allclose(to_numpy(A), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("boundary", ["zero", "periodic"])
@pytest.mark.parametrize("ks", KERNEL_SIZES)
def test_adjoint_weight_matches_scipy_valid_correlation(ks, boundary, xp_name):
    # dK[o, i] = Σ_s correlate2d(Ypad[s, i], W[s, o], 'valid') with Ypad padded by (p, q).
    xp = get_xp(xp_name)
    rng = np.random.default_rng(2)
    p, q = (ks[0] - 1) // 2, (ks[1] - 1) // 2
    Y, W = rng.standard_normal((3, 2, 5, 6)), rng.standard_normal((3, 4, 5, 6))
    Ypad = np.pad(Y, ((0, 0), (0, 0), (p, p), (q, q)), mode="wrap" if boundary == "periodic" else "constant")
    per = np.array([[[correlate2d(Ypad[s, i], W[s, o], mode="valid") for i in range(2)] for o in range(4)]
                    for s in range(3)])
    Yx, Wx = to_backend(Y, xp), to_backend(W, xp)
    dK = conv2d_adjoint_weight(Yx, Wx, ks, boundary)
    dKs = conv2d_adjoint_weight(Yx, Wx, ks, boundary, per_example=True)
    assert dK.shape == (4, 2, *ks) and dKs.shape == (3, 4, 2, *ks)
    np.testing.assert_allclose(to_numpy(dKs), per, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(dK), per.sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("boundary", ["zero", "periodic"])
def test_delta_stencil_shifts_the_image(boundary):
    """Cross-correlation convention: a one at (a, b) gives Z[x, y] = Y[x + a − p, y + b − q]."""
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((1, 1, 5, 6))
    K = np.zeros((1, 1, 5, 3))
    K[0, 0, 4, 0] = 1.0  # (a − p, b − q) = (2, −1)
    Z = conv2d_forward(Y, K, boundary)[0, 0]
    if boundary == "periodic":
        expected = np.roll(Y[0, 0], shift=(-2, 1), axis=(0, 1))
    else:
        expected = np.zeros((5, 6))
        expected[:3, 1:] = Y[0, 0, 2:, :-1]
    np.testing.assert_array_equal(Z, expected)


# ------------------------------------------------------- FFT = direct
FFT_CONFIGS = [
    # (C_in, C_out, image, kernel)
    (2, 3, (5, 6), (3, 3)),
    (3, 2, (6, 5), (5, 3)),
    (1, 4, (5, 7), (5, 5)),  # stencil as tall as the image, odd width
    (4, 1, (4, 6), (1, 1)),
    (2, 2, (3, 3), (3, 3)),  # stencil as large as the image
]


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", FFT_CONFIGS, ids=lambda c: f"{c[0]}to{c[1]}-{c[2]}-{c[3]}")
def test_conv2dfft_equals_periodic_conv2d(cfg, dtype, xp_name):
    xp = get_xp(xp_name)
    cin, cout, image, ks = cfg
    direct = Conv2d(cin, cout, image, kernel_size=ks, boundary="periodic").to(xp)
    fft = Conv2dFFT(cin, cout, image, kernel_size=ks).to(xp)
    rng = np.random.default_rng(4)
    theta = direct.init_theta(rng=rng, dtype=dtype, xp=xp)
    Y = _rand(rng, (3, cin, *image), dtype, xp)
    Z = _rand(rng, (3, cout, *image), dtype, xp)
    pairs = [
        (fft.apply(theta, Y), direct.apply(theta, Y)),
        (fft.apply_T(theta, Z), direct.apply_T(theta, Z)),
        (fft.dK_adj(theta, Y, Z), direct.dK_adj(theta, Y, Z)),
        (fft.dK_adj(theta, Y, Z, per_example=True), direct.dK_adj(theta, Y, Z, per_example=True)),
    ]
    for got, ref in pairs:
        assert got.dtype == dtype and got.shape == ref.shape
        assert _rel(got, ref) <= _tol(dtype)


# ------------------------------------------------------------ dot tests
def _kernel_ops(kind, boundary, ks):
    """(forward, adjoint_input, adjoint_weight) of one kernel family."""
    if kind == "fft":
        return (conv2d_fft_forward, conv2d_fft_adjoint_input,
                lambda Y, W, per_example=False: conv2d_fft_adjoint_weight(Y, W, ks, per_example))
    return (lambda Y, K: conv2d_forward(Y, K, boundary),
            lambda Z, K: conv2d_adjoint_input(Z, K, boundary),
            lambda Y, W, per_example=False: conv2d_adjoint_weight(Y, W, ks, boundary, per_example))


KINDS = [("direct", "zero"), ("direct", "periodic"), ("fft", "periodic")]


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("ks", KERNEL_SIZES)
@pytest.mark.parametrize("kind,boundary", KINDS)
def test_kernel_dot_tests(kind, boundary, ks, dtype):
    fwd, adj_in, adj_w = _kernel_ops(kind, boundary, ks)
    rng = np.random.default_rng(5)
    Y, K = _rand(rng, (2, 3, 6, 5), dtype), _rand(rng, (4, 3, *ks), dtype)
    W = _rand(rng, (2, 4, 6, 5), dtype)
    rep_Y = dot_test(lambda v: fwd(v, K), lambda w: adj_in(w, K), Y, W, name="K Y vs K^T Z")
    rep_K = dot_test(lambda v: fwd(Y, v), lambda w: adj_w(Y, w), K, W, name="K -> K Y vs weight adjoint")
    assert rep_Y.ok, str(rep_Y)
    assert rep_K.ok, str(rep_K)


def test_dot_test_detects_a_wrong_adjoint():
    """Negative control: correlating with the unflipped stencil is not the adjoint."""
    rng = np.random.default_rng(6)
    Y, K, W = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 5, 6))
    wrong = dot_test(lambda v: conv2d_forward(v, K, "zero"),
                     lambda w: conv2d_forward(w, np.ascontiguousarray(K.transpose(1, 0, 2, 3)), "zero"), Y, W)
    assert not wrong.ok


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("kind,boundary", KINDS)
def test_per_example_weight_adjoint_sums_to_reduced(kind, boundary, dtype):
    _, _, adj_w = _kernel_ops(kind, boundary, (5, 3))
    rng = np.random.default_rng(7)
    Y, W = _rand(rng, (4, 2, 6, 5), dtype), _rand(rng, (4, 3, 6, 5), dtype)
    G, g = adj_w(Y, W, per_example=True), adj_w(Y, W)
    assert G.shape == (4, 3, 2, 5, 3) and G.dtype == dtype and g.dtype == dtype
    assert _rel(G.sum(axis=0), g) <= 10 * _tol(dtype)
    # each example's gradient is the reduced gradient of that example alone
    assert _rel(G[1], adj_w(Y[1:2], W[1:2])) <= 10 * _tol(dtype)


# ------------------------------------------------- transform-level checks
TRANSFORMS = [
    lambda: Conv2d(2, 3, (5, 6), kernel_size=3),
    lambda: Conv2d(3, 2, (6, 6), kernel_size=(5, 3), boundary="periodic"),
    lambda: Conv2d(4, 4, (5, 6), kernel_size=1),
    lambda: Conv2dFFT(2, 3, (5, 6), kernel_size=(3, 5)),
]
TRANSFORM_IDS = ["direct-zero-3x3", "direct-periodic-5x3", "direct-zero-1x1", "fft-3x5"]


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("make", TRANSFORMS, ids=TRANSFORM_IDS)
def test_dKT_mv_taylor_and_dot(make, dtype):
    T = make()
    rng = np.random.default_rng(8)
    theta = T.init_theta(rng=rng, dtype=dtype)
    dtheta = _rand(rng, (T.n_theta,), dtype)
    Z = _rand(rng, (3, *T.shape_out), dtype)
    W = _rand(rng, (3, *T.shape_in), dtype)
    # θ ↦ K(θ)ᵀZ is linear: its derivative along dθ is dKT_mv(θ, dθ, Z)
    rep = taylor_test(lambda th: T.apply_T(th, Z), theta, dtheta, T.dKT_mv(theta, dtheta, Z))
    assert rep.ok, rep.table()
    # adjoint of dθ ↦ (∂K[dθ])ᵀZ is W ↦ dK_adj(θ, W, Z)
    rep = dot_test(lambda v: T.dKT_mv(theta, v, Z), lambda w: T.dK_adj(theta, w, Z), dtheta, W)
    assert rep.ok, str(rep)
    # and dK_mv is the forward map with the perturbed stencil
    assert _rel(T.dK_mv(theta, dtheta, W), T.apply(dtheta, W)) == 0.0


def test_taylor_of_dKT_mv_detects_a_wrong_derivative():
    """Negative control for the Taylor test above: a scaled derivative fails."""
    T = Conv2d(2, 3, (5, 6), kernel_size=3)
    rng = np.random.default_rng(9)
    theta, dtheta, Z = T.init_theta(rng=rng), rng.standard_normal(T.n_theta), rng.standard_normal((2, 3, 5, 6))
    rep = taylor_test(lambda th: T.apply_T(th, Z), theta, dtheta, 1.01 * T.dKT_mv(theta, dtheta, Z))
    assert not rep.ok


def test_stencil_is_a_view_and_layout():
    T = Conv2d(2, 3, (5, 6), kernel_size=(5, 3))
    theta = np.arange(T.n_theta, dtype=np.float64)
    K = T.stencil(theta)
    assert T.n_theta == 3 * 2 * 5 * 3 and K.shape == (3, 2, 5, 3)
    assert np.shares_memory(K, theta)
    assert K[1, 0, 2, 1] == theta[((1 * 2 + 0) * 5 + 2) * 3 + 1]
    assert T.shape_in == (2, 5, 6) and T.shape_out == (3, 5, 6)


def test_init_theta_he_scaling():
    T = Conv2d(16, 16, (5, 5), kernel_size=3)
    theta = T.init_theta(rng=0)
    std = float(np.std(theta))
    assert abs(std / np.sqrt(2.0 / (9 * 16)) - 1.0) < 0.05  # 2304 samples: sampling error ≈ 1.5%


def test_conv2dfft_is_the_periodic_conv2d_with_same_layout():
    fft = Conv2dFFT(2, 3, (5, 6), kernel_size=(5, 3))
    assert fft.boundary == "periodic" and fft.kernel_size == (5, 3)
    assert fft.layout.size == Conv2d(2, 3, (5, 6), kernel_size=(5, 3), boundary="periodic").n_theta


# ------------------------------------------------------- buffers, dtype, engine
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_out_buffers_and_dtype(dtype):
    rng = np.random.default_rng(10)
    Y, K, W = _rand(rng, (2, 3, 5, 6), dtype), _rand(rng, (2, 3, 3, 5), dtype), _rand(rng, (2, 2, 5, 6), dtype)
    calls = [
        (lambda **o: conv2d_forward(Y, K, "zero", **o), (2, 2, 5, 6)),
        (lambda **o: conv2d_forward(Y, K[:, :, :1, :1].copy(), "zero", **o), (2, 2, 5, 6)),
        (lambda **o: conv2d_adjoint_input(W, K, "periodic", **o), (2, 3, 5, 6)),
        (lambda **o: conv2d_adjoint_weight(Y, W, (3, 5), "zero", **o), (2, 3, 3, 5)),
        (lambda **o: conv2d_adjoint_weight(Y, W, (3, 5), "periodic", True, **o), (2, 2, 3, 3, 5)),
        (lambda **o: conv2d_fft_forward(Y, K, **o), (2, 2, 5, 6)),
        (lambda **o: conv2d_fft_adjoint_input(W, K, **o), (2, 3, 5, 6)),
        (lambda **o: conv2d_fft_adjoint_weight(Y, W, (3, 5), **o), (2, 3, 3, 5)),
        (lambda **o: conv2d_fft_adjoint_weight(Y, W, (3, 5), True, **o), (2, 2, 3, 3, 5)),
    ]
    for f, shape in calls:
        ref = f()
        assert ref.dtype == dtype and ref.shape == shape
        out = np.full(shape, np.nan, dtype=dtype)
        res = f(out=out)
        assert res is out
        np.testing.assert_array_equal(out, ref)
    with pytest.raises(ValueError, match="out must have shape"):
        conv2d_forward(Y, K, "zero", out=np.empty((2, 2, 5, 5), dtype=dtype))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        conv2d_forward(Y, K, "zero", out=np.empty((2, 2, 6, 5), dtype=dtype).transpose(0, 1, 3, 2))


def test_engines():
    rng = np.random.default_rng(11)
    Y, K = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((2, 3, 3, 3))
    # 'auto' may pick a compiled engine (numba): same map up to round-off
    np.testing.assert_allclose(conv2d_forward(Y, K, "zero"), conv2d_forward(Y, K, "zero", engine="numpy"), rtol=1e-12)
    np.testing.assert_allclose(conv2d_fft_forward(Y, K), conv2d_fft_forward(Y, K, engine="numpy"), rtol=1e-12)
    with pytest.raises(ValueError, match="engine must be one of"):
        conv2d_forward(Y, K, "zero", engine="fast")


def test_engine_without_kernel_falls_back_only_for_auto(monkeypatch):
    """An engine that resolves but has no kernel for an operation: 'auto' uses the
    reference, asking for it explicitly raises."""
    import meganet.kernels.conv2d as kc

    monkeypatch.setattr(kc, "resolve_engine", lambda engine, xp=None: "numpy" if engine == "numpy" else "numba")
    monkeypatch.setitem(kc._IMPLEMENTATIONS, "forward", {"numpy": kc._IMPLEMENTATIONS["forward"]["numpy"]})
    monkeypatch.setattr(kc, "_LOADERS", {})  # no module that would register a numba kernel
    rng = np.random.default_rng(12)
    Y, K = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((2, 3, 3, 3))
    np.testing.assert_array_equal(conv2d_forward(Y, K, "zero", engine="auto"),
                                  conv2d_forward(Y, K, "zero", engine="numpy"))
    with pytest.raises(NotImplementedError, match="forward has no 'numba' kernel yet"):
        conv2d_forward(Y, K, "zero", engine="numba")


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(kernel_size=4), ValueError, "kernel_size must be odd, got 4"),
    (dict(kernel_size=(3, 2)), ValueError, r"kernel_size\[1\] must be odd, got 2"),
    (dict(kernel_size=0), ValueError, "kernel_size must be >= 1, got 0"),
    (dict(kernel_size=(3, 3, 3)), ValueError, "kernel_size must be an odd int or a tuple"),
    (dict(kernel_size=2.5), TypeError, "kernel_size must be an odd int or a tuple"),
    (dict(boundary="zeros"), ValueError, r"boundary must be one of \{'zero', 'periodic'\}, got 'zeros'"),
    (dict(boundary="periodic", kernel_size=7), ValueError,
     r"kernel_size \(7, 7\) must not exceed image_shape \(5, 6\) for a periodic boundary"),
    (dict(in_channels=0), ValueError, "in_channels must be >= 1, got 0"),
    (dict(out_channels=2.0), TypeError, "out_channels must be an integer, got 2.0"),
    (dict(image_shape=(5, 6, 1)), ValueError, "image_shape must be a tuple"),
    (dict(image_shape=(5, 0)), ValueError, r"image_shape\[1\] must be >= 1, got 0"),
    (dict(image_shape=5), TypeError, "image_shape must be a tuple"),
])
def test_conv2d_constructor_rejects_bad_options(kwargs, exc, msg):
    args = dict(in_channels=2, out_channels=3, image_shape=(5, 6))
    args.update(kwargs)
    pos = [args.pop(k) for k in ("in_channels", "out_channels", "image_shape")]
    with pytest.raises(exc, match=msg):
        Conv2d(*pos, **args)


def test_conv2dfft_constructor_rejects_bad_options():
    with pytest.raises(ValueError, match=r"kernel_size \(5, 3\) must not exceed image_shape \(4, 6\)"):
        Conv2dFFT(1, 1, (4, 6), kernel_size=(5, 3))
    with pytest.raises(ValueError, match="kernel_size must be odd, got 2"):
        Conv2dFFT(1, 1, (4, 6), kernel_size=2)
    with pytest.raises(TypeError, match="boundary"):
        Conv2dFFT(1, 1, (4, 6), boundary="zero")  # periodic only: no such option


@pytest.mark.parametrize("make", TRANSFORMS, ids=TRANSFORM_IDS)
def test_wrong_image_shape_in_calls(make):
    T = make()
    theta = T.init_theta(rng=0)
    C, H, W = T.shape_in
    Y_bad = np.zeros((2, C, H + 1, W))
    with pytest.raises(ValueError, match=rf"Y must have shape \(n_examples, {C}, {H}, {W}\) for {type(T).__name__}, "
                                         rf"got \(2, {C}, {H + 1}, {W}\)"):
        T.forward(theta, Y_bad)
    Co = T.shape_out[0]
    with pytest.raises(ValueError, match=rf"Z must have shape \(n_examples, {Co}, {H}, {W}\)"):
        T.apply_T(theta, np.zeros((2, Co + 1, H, W)))


def test_kernels_reject_bad_input():
    Y, K = np.zeros((2, 3, 5, 6)), np.zeros((2, 3, 3, 3))
    with pytest.raises(ValueError, match="boundary must be one of"):
        conv2d_forward(Y, K, "reflect")
    with pytest.raises(ValueError, match="Y must have 3 input channels"):
        conv2d_forward(np.zeros((2, 4, 5, 6)), K, "zero")
    with pytest.raises(ValueError, match="kernel_shape must be two odd positive ints"):
        conv2d_forward(Y, np.zeros((2, 3, 2, 3)), "zero")
    with pytest.raises(ValueError, match="Z must have 2 output channels"):
        conv2d_adjoint_input(Y, K, "zero")
    with pytest.raises(TypeError, match="dtype"):
        conv2d_forward(Y.astype(np.float32), K, "zero")
    with pytest.raises(ValueError, match="must not exceed the image"):
        conv2d_fft_forward(np.zeros((1, 3, 2, 6)), K)
    with pytest.raises(ValueError, match="W must have shape"):
        conv2d_adjoint_weight(Y, np.zeros((1, 2, 5, 6)), (3, 3), "zero")


def test_antisymmetric_conv2d_is_antisymmetric_and_matches_dense_operator():
    """A = ½(K − Kᵀ) as a matrix (from Conv2d applied to unit images) is antisymmetric, and with γ its
    symmetric part is −sγI; AntisymmetricConv2d applies exactly that matrix."""
    from meganet.transforms import AntisymmetricConv2d

    rng = np.random.default_rng(3)
    for gamma, bd in [(0.0, "zero"), (0.3, "periodic")]:
        T = AntisymmetricConv2d(2, (3, 4), gamma=gamma, boundary=bd)
        theta = rng.standard_normal(T.n_theta)
        n = 2 * 3 * 4
        E = np.eye(n).reshape(n, 2, 3, 4)
        A = T.apply(theta, E).reshape(n, n).T  # column j = A e_j
        np.testing.assert_allclose(A + A.T, -2 * 0.5 * gamma * np.eye(n), atol=1e-13)
        Kc = Conv2d(2, 2, (3, 4), boundary=bd).apply(theta, E).reshape(n, n).T
        np.testing.assert_allclose(A, 0.5 * (Kc - Kc.T - gamma * np.eye(n)), atol=1e-13)
