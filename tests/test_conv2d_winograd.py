"""The numba engine's Winograd F(2×2, 3×3) convolutions (meganet.kernels._winograd_numba).

Forced with ``METHOD = 'winograd'`` and compared with the numpy reference convolution computed in
float64: the error must stay within a small multiple of the rounding-error scale
``ε · max Σ|K||Y|`` and within a few times the direct stencil's own error; the epilogues, the
symmetric step, the adjoint pair (dot test) and the ``'auto'`` rule are checked as well.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.kernels import conv2d as C
from meganet.kernels import numba_available
from meganet.kernels.epilogue import Epilogue

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba not installed")

DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
CASES = [  # (n, C_in, C_out, H, W, boundary): odd and even sizes, 1- and 2-pixel images, C mod 4 ≠ 0
    (2, 3, 5, 5, 6, "zero"),
    (3, 2, 3, 6, 6, "periodic"),
    (2, 5, 7, 7, 5, "periodic"),
    (1, 1, 1, 1, 1, "zero"),
    (2, 4, 4, 1, 1, "periodic"),
    (2, 6, 2, 2, 3, "periodic"),
    (2, 9, 6, 3, 2, "zero"),
    (3, 8, 8, 16, 9, "zero"),
    (2, 33, 34, 10, 12, "periodic"),
]
IDS = [f"{c[1]}to{c[2]}-{c[3]}x{c[4]}-{c[5]}" for c in CASES]


@pytest.fixture(params=["one_block", "row_blocks"])
def winograd(request, monkeypatch):
    """METHOD = 'winograd'; ``row_blocks``: a block budget so small that every tile row is its own block
    (the path large images take)."""
    from meganet.kernels import _conv2d_numba as CN
    from meganet.kernels import _winograd_numba as WN

    monkeypatch.setattr(CN, "METHOD", "winograd")
    if request.param == "row_blocks":
        monkeypatch.setattr(WN, "BLOCK_BYTES", 1)
        assert WN.block_rows(8, 8, 16, 16, 8) == 1
    else:
        assert WN.block_rows(8, 8, 16, 16, 8) == 8
    return CN


def _direct(fn, *args, **kw):
    from meganet.kernels import _conv2d_numba as CN

    old, CN.METHOD = CN.METHOD, "direct"
    try:
        return fn(*args, engine="numba", **kw)
    finally:
        CN.METHOD = old


def _check(got, X, K, bd, adjoint, dtype, direct):
    """``got`` against the float64 reference: error ≤ 16 ε · max Σ|K||X| and ≤ 4× the direct
    kernel's error (+ 4 ε · scale, for the cases where the direct error is tiny by chance)."""
    fn = C.conv2d_adjoint_input if adjoint else C.conv2d_forward
    want = fn(X.astype(np.float64), K.astype(np.float64), bd, engine="numpy")
    scale = fn(np.abs(X.astype(np.float64)), np.abs(K.astype(np.float64)), bd, engine="numpy").max()
    eps = np.finfo(dtype).eps
    err = np.abs(got.astype(np.float64) - want).max()
    err_direct = np.abs(direct.astype(np.float64) - want).max()
    assert got.dtype == dtype and got.shape == want.shape
    assert err <= 16 * eps * scale, f"error {err:.2e} > 16 eps x scale {scale:.2e}"
    assert err <= 4 * err_direct + 4 * eps * scale, f"error {err:.2e} vs direct {err_direct:.2e}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_adjoint_match_reference(case, dtype, winograd):
    n, ci, co, H, W, bd = case
    rng = np.random.default_rng(11)
    Y = rng.standard_normal((n, ci, H, W)).astype(dtype)
    K = rng.standard_normal((co, ci, 3, 3)).astype(dtype)
    Z = rng.standard_normal((n, co, H, W)).astype(dtype)
    assert winograd._use_winograd(3, 3, ci, co, H, W)
    _check(C.conv2d_forward(Y, K, bd, engine="numba"), Y, K, bd, False, dtype, _direct(C.conv2d_forward, Y, K, bd))
    _check(C.conv2d_adjoint_input(Z, K, bd, engine="numba"), Z, K, bd, True, dtype,
           _direct(C.conv2d_adjoint_input, Z, K, bd))


@pytest.mark.parametrize("bd", ["zero", "periodic"])
def test_adjoint_pair_dot_test(bd, winograd):
    """``<K y, w> = <y, Kᵀ w>`` to rounding in float64, both through the Winograd kernels."""
    rng = np.random.default_rng(12)
    Y = rng.standard_normal((3, 6, 9, 8))
    K = rng.standard_normal((5, 6, 3, 3))
    Wc = rng.standard_normal((3, 5, 9, 8))
    lhs = np.vdot(C.conv2d_forward(Y, K, bd, engine="numba"), Wc)
    rhs = np.vdot(Y, C.conv2d_adjoint_input(Wc, K, bd, engine="numba"))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["act_add", "dsigma_add", "inplace"])
def test_epilogues(kind, dtype, winograd):
    """The fused epilogue on the way out of the Winograd output transform."""
    rng = np.random.default_rng(13)
    Y = rng.standard_normal((3, 5, 7, 6)).astype(dtype)
    K = rng.standard_normal((6, 5, 3, 3)).astype(dtype)
    A = rng.standard_normal((3, 6, 7, 6)).astype(dtype)
    S = np.tanh(rng.standard_normal((3, 6, 7, 6))).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    conv = C.conv2d_forward(Y.astype(np.float64), K.astype(np.float64), "zero", engine="numpy")
    bb = b.reshape(1, -1, 1, 1).astype(np.float64)
    out = None
    if kind == "act_add":
        ep, want = Epilogue(alpha=-0.3, add=A, bias=b, activation="tanh"), np.tanh(-0.3 * conv + A + bb)
    elif kind == "dsigma_add":
        ep = Epilogue(alpha=0.7, add=A, activation="tanh", dsigma_from=S)
        want = (1 - S.astype(np.float64) ** 2) * (0.7 * conv + A)
    else:
        out = A.copy()
        ep, want = Epilogue(alpha=2.0, add=out), 2.0 * conv + A
    got = C.conv2d_forward(Y, K, "zero", engine="numba", epilogue=ep, out=out)
    assert out is None or got is out
    tol = 1e-13 if dtype == np.float64 else 4e-6
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [(3, 4, 6, 7, 6, "zero"), (2, 5, 3, 6, 5, "periodic"), (2, 1, 1, 1, 2, "zero")],
                         ids=lambda c: f"{c[1]}to{c[2]}-{c[3]}x{c[4]}-{c[5]}")
def test_symmetric_step(case, dtype, winograd):
    """``Z = Y − h Kᵀtanh(KY + b)`` through the Winograd step kernel: S stored or not, in place, no bias."""
    n, c, cm, H, W, bd = case
    rng = np.random.default_rng(14)
    Y = rng.standard_normal((n, c, H, W)).astype(dtype)
    K = (0.5 * rng.standard_normal((cm, c, 3, 3))).astype(dtype)
    b = rng.standard_normal(cm).astype(dtype)
    tol = 1e-13 if dtype == np.float64 else 4e-6
    for bias in (b, None):
        S = np.tanh(C.conv2d_forward(Y.astype(np.float64), K.astype(np.float64), bd, engine="numpy")
                    + (0 if bias is None else bias.reshape(1, -1, 1, 1)))
        Z = Y - 0.3 * C.conv2d_adjoint_input(S, K.astype(np.float64), bd, engine="numpy")
        got_Z, got_S = C.conv2d_symmetric_step(Y, K, bias, "tanh", 0.3, bd, store_S=True, engine="numba")
        assert np.linalg.norm(got_Z - Z) / np.linalg.norm(Z) <= tol
        assert np.linalg.norm(got_S - S) / np.linalg.norm(S) <= tol
        inplace = Y.copy()
        res, none = C.conv2d_symmetric_step(inplace, K, bias, "tanh", 0.3, bd, out=inplace, engine="numba")
        assert res is inplace and none is None
        assert np.linalg.norm(inplace - Z) / np.linalg.norm(Z) <= tol


def test_repeated_calls_reuse_the_workspace_safely(winograd):
    """Two calls with different data through the pooled workspace give independent, correct results;
    read-only inputs are accepted."""
    rng = np.random.default_rng(15)
    K = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    K.flags.writeable = False
    Y1, Y2 = (rng.standard_normal((4, 32, 32, 32)).astype(np.float32) for _ in range(2))
    Z1 = C.conv2d_forward(Y1, K, "zero", engine="numba").copy()
    Z2 = C.conv2d_forward(Y2, K, "zero", engine="numba")
    np.testing.assert_array_equal(C.conv2d_forward(Y1, K, "zero", engine="numba"), Z1)
    _check(Z2, Y2, K, "zero", False, np.float32, _direct(C.conv2d_forward, Y2, K, "zero"))


def test_auto_rule_and_method_switch(monkeypatch):
    from meganet.kernels import _conv2d_numba as CN

    monkeypatch.setattr(CN, "METHOD", "auto")
    assert CN._use_winograd(3, 3, 32, 32, 32, 32)  # B2's shape
    assert not CN._use_winograd(3, 3, 16, 32, 32, 32)  # too few channels
    assert not CN._use_winograd(3, 3, 32, 32, 16, 16)  # too small an image
    assert not CN._use_winograd(5, 5, 64, 64, 64, 64)  # not a 3×3 stencil
    monkeypatch.setattr(CN, "METHOD", "direct")
    assert not CN._use_winograd(3, 3, 64, 64, 64, 64)
    monkeypatch.setattr(CN, "METHOD", "winograd")
    assert CN._use_winograd(3, 3, 1, 1, 1, 1) and not CN._use_winograd(3, 1, 64, 64, 64, 64)
    monkeypatch.setattr(CN, "METHOD", "fast")
    with pytest.raises(ValueError, match=r"MEGANET_CONV2D_METHOD / METHOD must be one of .*'fast'"):
        C.conv2d_forward(np.ones((1, 32, 32, 32)), np.ones((32, 32, 3, 3)), "zero", engine="numba")


@pytest.mark.parametrize("method", ["direct", "winograd"])
@pytest.mark.parametrize("parts", [2, 3])
def test_output_channel_split_for_small_batches(parts, method, monkeypatch):
    """Batches smaller than the thread count share each example's output-channel blocks out over work
    items (``_work_split``): forced to 2 and 3 items per chunk, the forward, the adjoint, the epilogue
    and the θ-adjoint (summed and per example) still match the reference."""
    from meganet.kernels import _conv2d_numba as CN

    monkeypatch.setattr(CN, "METHOD", method)
    monkeypatch.setattr(CN, "_work_split", lambda n_chunks, c_out, macs: parts)
    rng = np.random.default_rng(16)
    Y = rng.standard_normal((1, 6, 7, 9))
    K = rng.standard_normal((10, 6, 3, 3))
    Wc = rng.standard_normal((1, 10, 7, 9))
    b = rng.standard_normal(10)
    for bd in ("zero", "periodic"):
        Z = C.conv2d_forward(Y, K, bd, engine="numpy")
        np.testing.assert_allclose(C.conv2d_forward(Y, K, bd, engine="numba"), Z, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(C.conv2d_forward(Y, K, bd, engine="numba", epilogue=Epilogue(bias=b,
                                   activation="tanh")), np.tanh(Z + b.reshape(1, -1, 1, 1)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(C.conv2d_adjoint_input(Wc, K, bd, engine="numba"),
                                   C.conv2d_adjoint_input(Wc, K, bd, engine="numpy"), rtol=1e-12, atol=1e-12)
        for pe in (False, True):
            np.testing.assert_allclose(C.conv2d_adjoint_weight(Y, Wc, (3, 3), bd, pe, engine="numba"),
                                       C.conv2d_adjoint_weight(Y, Wc, (3, 3), bd, pe, engine="numpy"),
                                       rtol=1e-12, atol=1e-12)


def test_work_split_rule(monkeypatch):
    """One item per chunk when the batch fills the threads or the example is small; else the output
    blocks of an example are shared out, at most one block of four channels per item."""
    from meganet.kernels import _conv2d_numba as CN

    monkeypatch.setattr(CN.numba, "get_num_threads", lambda: 4)
    big = CN.SPLIT_MIN_MACS
    assert CN._work_split(4, 64, big) == 1  # as many chunks as threads
    assert CN._work_split(1, 64, big - 1) == 1  # too little work per example
    assert CN._work_split(1, 64, big) == 4
    assert CN._work_split(2, 64, big) == 2
    assert CN._work_split(1, 8, big) == 2  # two blocks of four channels
