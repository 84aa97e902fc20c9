"""Generic tests run on every element of the registry (tests/registry.py).

For each registered case, in float64 and float32, on numpy and cupy:
Taylor test w.r.t. θ, Y and both; dot test for J_θ, J_Y and J; per-example
θ-gradients sum to the reduced one; Jmv/JTmv without a cache equal those with
the cache; dtype and backend are preserved; read-only inputs (memory-mapped
data, ``np.frombuffer``) give the same results as writable ones; bad input
raises early.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.backend import get_array_module
from meganet.testing import check_element
from tests.conftest import DTYPE_PARAMS, XP_PARAMS, get_xp
from tests.registry import all_cases

CASES = all_cases()


def _has_theta(case):
    return case.make().n_theta > 0


def _case_params(require_theta=False):
    out = []
    for c in CASES:
        if require_theta and not _has_theta(c):
            continue
        marks = [pytest.mark.slow] if c.slow else []
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


def _case_wrt_params():
    """(case, wrt) pairs; parameter-free elements are tested w.r.t. Y only."""
    out = []
    for c in CASES:
        has = _has_theta(c)
        for w in ("theta", "Y", "both"):
            if w != "Y" and not has:
                continue
            marks = [pytest.mark.slow] if c.slow else []
            out.append(pytest.param(c, w, id=f"{c.name}-{w}", marks=marks))
    return out


def _setup(case, dtype, xp_name, seed=0):
    if dtype == np.float32 and not case.float32:
        pytest.skip(f"{case.name} is registered float64-only")
    xp = get_xp(xp_name)
    el = case.make()
    theta, Y = case.data(el, dtype, xp, seed)
    return el, theta, Y, xp


def _rel(a, b):
    xp = get_array_module(a, b)
    na = float(xp.linalg.norm((a - b).ravel()))
    nb = float(xp.linalg.norm(b.ravel()))
    return na / max(nb, 1e-300)


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-4


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case,wrt", _case_wrt_params())
def test_taylor(case, wrt, dtype, xp_name):
    el, theta, Y, xp = _setup(case, dtype, xp_name)
    rep = check_element(el, theta, Y, wrt=[wrt], dot=False, rel_step=case.rel_step, rng=1, **case.taylor_kwargs)
    assert rep.ok, "\n" + str(rep)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case,wrt", _case_wrt_params())
def test_adjoint(case, wrt, dtype, xp_name):
    el, theta, Y, xp = _setup(case, dtype, xp_name)
    rep = check_element(el, theta, Y, wrt=[wrt], taylor=False, rng=2)
    assert rep.ok, "\n" + str(rep)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _case_params(require_theta=True))
def test_per_example_gradients_sum(case, dtype, xp_name):
    el, theta, Y, xp = _setup(case, dtype, xp_name)
    Z, cache = el.forward(theta, Y)
    W = xp.asarray(np.random.default_rng(3).standard_normal(Z.shape).astype(dtype))
    g = el.JthetaTmv(W, theta, Y, cache)
    G = el.JthetaTmv(W, theta, Y, cache, per_example=True)
    assert G.shape == (Y.shape[0], el.n_theta)
    assert G.dtype == dtype
    assert _rel(G.sum(axis=0), g) <= _tol(dtype) * 10


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _case_params())
def test_cache_free_and_dtype(case, dtype, xp_name):
    el, theta, Y, xp = _setup(case, dtype, xp_name)
    Z, cache = el.forward(theta, Y)
    assert get_array_module(Z) is xp
    assert Z.dtype == dtype and Z.shape == (Y.shape[0], *el.shape_out)
    # the cache-free forward (apply / __call__) gives the same Z and leaves its inputs alone
    Y0, theta0 = Y.copy(), theta.copy()
    Za = el.apply(theta, Y)
    assert bool((Y == Y0).all()) and bool((theta == theta0).all())
    assert get_array_module(Za) is xp and Za.dtype == dtype and Za.shape == Z.shape
    assert _rel(Za, Z) <= _tol(dtype)
    rng = np.random.default_rng(4)
    dth = xp.asarray(rng.standard_normal(el.n_theta).astype(dtype)) if el.n_theta else None
    dY = xp.asarray(rng.standard_normal(Y.shape).astype(dtype))
    W = xp.asarray(rng.standard_normal(Z.shape).astype(dtype))
    dZ1 = el.Jmv(dth, dY, theta, Y, cache)
    dZ2 = el.Jmv(dth, dY, theta, Y)
    assert dZ1.dtype == dtype and dZ1.shape == Z.shape
    assert _rel(dZ2, dZ1) <= _tol(dtype)
    # the one-off forward-mode product (jvp) gives forward + Jmv
    Zj, dZj = el.jvp(theta, Y, dth, dY)
    assert get_array_module(dZj) is xp and dZj.dtype == dtype and dZj.shape == Z.shape
    assert _rel(Zj, Z) <= _tol(dtype) and _rel(dZj, dZ1) <= _tol(dtype)
    if el.n_theta:
        assert _rel(el.jvp(theta, Y, dth)[1], el.Jthetamv(dth, theta, Y, cache)) <= _tol(dtype)
    a1 = el.JTmv(W, theta, Y, cache)
    a2 = el.JTmv(W, theta, Y)
    assert a1[1].dtype == dtype and a1[1].shape == Y.shape
    assert _rel(a2[1], a1[1]) <= _tol(dtype)
    if el.n_theta:
        assert a1[0].dtype == dtype and a1[0].shape == (el.n_theta,)
        assert _rel(a2[0], a1[0]) <= _tol(dtype)
    # one-sided products agree with the combined ones
    only_theta, only_Y = el.JTmv(W, theta, Y, cache, wrt="theta"), el.JTmv(W, theta, Y, cache, wrt="Y")
    assert only_theta[1] is None and only_Y[0] is None
    assert _rel(only_Y[1], a1[1]) <= _tol(dtype)
    if el.n_theta:
        assert _rel(only_theta[0], a1[0]) <= _tol(dtype)
        sum_parts = el.Jthetamv(dth, theta, Y, cache) + el.JYmv(dY, theta, Y, cache)
        assert _rel(sum_parts, dZ1) <= 10 * _tol(dtype)


def _read_only(a, frombuffer=False):
    """A read-only copy of ``a``: ``flags.writeable = False``, or (``frombuffer``)
    an array over an immutable ``bytes`` object, like ``np.frombuffer`` or a
    memory map opened with ``mode='r'`` (no writable view of it can be made)."""
    if a is None:
        return None
    if frombuffer:
        r = np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)
    else:
        r = a.copy()
        r.flags.writeable = False
    assert not r.flags.writeable
    return r


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _case_params())
def test_read_only_inputs(case, dtype):
    """θ, Y, dθ, dY and W read-only (on every engine the case selects) give the
    results of writable inputs, and stay untouched."""
    el, theta, Y, xp = _setup(case, dtype, "numpy")
    rng = np.random.default_rng(5)
    dth = rng.standard_normal(el.n_theta).astype(dtype) if el.n_theta else None
    dY = rng.standard_normal(Y.shape).astype(dtype)
    W = rng.standard_normal((Y.shape[0], *el.shape_out)).astype(dtype)

    def products(theta, Y, dth, dY, W):
        Z, cache = el.forward(theta, Y)
        return [Z, el.apply(theta, Y), el.Jmv(dth, dY, theta, Y, cache), *el.jvp(theta, Y, dth, dY),
                *[g for g in el.JTmv(W, theta, Y, cache) if g is not None], el.JTmv(W, theta, Y)[1]]

    expected = products(theta, Y, dth, dY, W)
    ro = [_read_only(theta), _read_only(Y, frombuffer=True), _read_only(dth), _read_only(dY), _read_only(W)]
    got = products(*ro)
    for a, b in zip(got, expected):
        assert a.dtype == dtype and a.shape == b.shape
        assert _rel(a, b) <= _tol(dtype)
    for r, a in zip(ro, (theta, Y, dth, dY, W)):
        assert r is None or bool((r == a).all())


@pytest.mark.parametrize("case", _case_params())
def test_bad_input(case):
    el = case.make()
    theta, Y = case.data(el, np.float64, np)
    # wrong theta length
    with pytest.raises(ValueError, match="theta must have shape"):
        el.forward(np.zeros(el.n_theta + 1), Y)
    with pytest.raises(ValueError, match="theta must have shape"):
        el.apply(np.zeros(el.n_theta + 1), Y)
    with pytest.raises(ValueError, match="dY must have shape"):
        el.jvp(theta, Y, None, Y[:1] if Y.shape[0] > 1 else np.concatenate([Y, Y]))
    # wrong Y shape: one feature axis too few / wrong size
    with pytest.raises(ValueError, match="Y must have shape"):
        el.forward(theta, Y[..., :-1] if Y.shape[-1] > 1 else np.concatenate([Y, Y], axis=-1))
    with pytest.raises(ValueError, match="Y must have shape"):
        el.forward(theta, Y.reshape(-1))
    # dtype mismatch
    if el.n_theta:
        with pytest.raises(TypeError, match="dtype"):
            el.forward(theta.astype(np.float32), Y)
    # non-finite data and parameters
    Ybad = Y.copy()
    Ybad.flat[0] = np.nan
    with pytest.raises(ValueError, match="Y contains 1 non-finite"):
        el.forward(theta, Ybad)
    if el.n_theta:
        tbad = theta.copy()
        tbad[-1] = np.inf
        with pytest.raises(ValueError, match="theta contains 1 non-finite"):
            el.forward(tbad, Y)
    # wrong container type and unknown options
    with pytest.raises(TypeError, match="Y must be a numpy.ndarray or cupy.ndarray"):
        el.forward(theta, Y.tolist())
    with pytest.raises(ValueError, match="wrt must be one of"):
        el.JTmv(np.zeros((Y.shape[0], *el.shape_out)), theta, Y, wrt="thetas")
    with pytest.raises(ValueError, match="W must have shape"):
        el.JTmv(np.zeros((Y.shape[0] + 1, *el.shape_out)), theta, Y)
