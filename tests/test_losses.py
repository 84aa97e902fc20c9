"""Losses: generic derivative checks on every registered configuration, known
answers, partial labels (masks) and bad input.

Losses are not Elements, so they have their own small registry (``LOSS_CASES``
below); every case runs the generic tests in float64 and float32 (and on cupy
when a GPU is present):

* Taylor test of the value against ``<∇Φ, v>`` w.r.t. Y, w and both;
* Taylor test of the gradient against the Hessian product w.r.t. Y, w and both
  (this covers all four blocks, the mixed ones included);
* symmetry of the Hessian (dot test) and adjointness of the mixed blocks;
* the Gauss-Newton variant: symmetric, positive semidefinite, and differing
  from the exact Hessian by exactly the bilinear term;
* dtype/backend preservation, masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest
import scipy.special

from meganet.backend import get_array_module, to_backend, to_numpy
from meganet.losses import LeastSquares, LogisticRegression, LossEval, OutputRegularizedLoss, SoftmaxCrossEntropy
from meganet.testing import dot_test, taylor_test_line
from tests.conftest import DTYPE_PARAMS, XP_PARAMS, get_xp


# --------------------------------------------------------------------------- registry
@dataclass
class LossCase:
    """One loss configuration.

    labels : 'index' (integer class indices) or 'target' (float rows: one-hot,
        probabilities, [0, 1] values or regression values, per the loss)
    mask : None, 'example' or 'pixel'
    local : the value at a sample depends on that sample only (False for
        OutputRegularizedLoss: R couples all pixels, labelled or not)
    gn_bilinear : exact − Gauss-Newton is the bilinear term ``G dW`` alone and
        the exact one-sided blocks are PSD (False for R on probabilities,
        whose GN form also drops the softmax curvature)
    """

    name: str
    make: Callable
    n_examples: int = 5
    labels: str = "index"
    mask: Optional[str] = None
    taylor_kwargs: dict = field(default_factory=dict)
    local: bool = True
    gn_bilinear: bool = True

    def data(self, loss, dtype, xp, seed=0):
        rng = np.random.default_rng(seed)
        base = loss.loss if isinstance(loss, OutputRegularizedLoss) else loss
        n = self.n_examples
        Y = rng.standard_normal((n, *loss.shape_in))
        w = to_numpy(loss.init_w(rng=rng))
        w[loss.n_classes * loss.n_features:] = 0.3 * rng.standard_normal(loss.n_w - loss.n_classes * loss.n_features)
        lab_shape = (n, *loss.spatial)
        if self.labels == "index":
            C = rng.integers(0, loss.n_index, size=lab_shape)
        else:
            T = rng.random((n, loss.n_classes, *loss.spatial))
            if isinstance(base, SoftmaxCrossEntropy):
                T = T / T.sum(axis=1, keepdims=True)
            elif isinstance(base, LeastSquares):
                T = 2 * T - 1
            C = T.astype(dtype)
        mask = None
        if self.mask == "example":
            mask = np.arange(n) % 2 == 0
        elif self.mask == "pixel":
            mask = rng.random(lab_shape) < 0.4
            mask.flat[0] = True
        mv = lambda a: None if a is None else to_backend(a, xp)  # noqa: E731
        return mv(Y.astype(dtype)), mv(w.astype(dtype)), mv(C), mv(mask)


LOSS_CASES = [
    LossCase("softmax-4-3", lambda: SoftmaxCrossEntropy(4, 3)),
    LossCase("softmax-4-3-soft-masked", lambda: SoftmaxCrossEntropy(4, 3), labels="target", mask="example"),
    LossCase("softmax-5-4-nobias", lambda: SoftmaxCrossEntropy(5, 4, bias=False), n_examples=3),
    LossCase("softmax-image-flat-2x3x3-3", lambda: SoftmaxCrossEntropy((2, 3, 3), 3), labels="target"),
    LossCase("softmax-perpixel-2x3x4-3", lambda: SoftmaxCrossEntropy((2, 3, 4), 3, per_pixel=True),
             n_examples=2, mask="pixel"),
    LossCase("logistic-4-1", lambda: LogisticRegression(4)),
    LossCase("logistic-4-3-multilabel-masked", lambda: LogisticRegression(4, 3), labels="target", mask="example"),
    LossCase("logistic-perpixel-3x2x2-1", lambda: LogisticRegression((3, 2, 2), per_pixel=True), n_examples=3),
    LossCase("lsq-4-2", lambda: LeastSquares(4, 2), labels="target"),
    LossCase("lsq-4-3-index-nobias-masked", lambda: LeastSquares(4, 3, bias=False), mask="example"),
    LossCase("lsq-perpixel-2x3x3-2", lambda: LeastSquares((2, 3, 3), 2, per_pixel=True), n_examples=2,
             labels="target", mask="example"),
    # Peters' output regularization on the map the loss sees (eqs. 3.2, 4.8-4.9)
    LossCase("outreg-logits-softmax-2x3x4-3",
             lambda: OutputRegularizedLoss(SoftmaxCrossEntropy((2, 3, 4), 3, per_pixel=True), 0.3), n_examples=2,
             local=False),
    LossCase("outreg-logits-softmax-2x3x4-3-masked",
             lambda: OutputRegularizedLoss(SoftmaxCrossEntropy((2, 3, 4), 3, per_pixel=True), 0.3,
                                           spacing=(0.5, 2.0)), n_examples=2, mask="pixel", local=False),
    LossCase("outreg-logits-lsq-2x3x3-2-nobias-masked",
             lambda: OutputRegularizedLoss(LeastSquares((2, 3, 3), 2, bias=False, per_pixel=True), 0.5),
             n_examples=2, labels="target", mask="example", local=False),
    LossCase("outreg-prob-softmax-2x3x4-3",
             lambda: OutputRegularizedLoss(SoftmaxCrossEntropy((2, 3, 4), 3, per_pixel=True), 2.0,
                                           on="probabilities"), n_examples=2, local=False, gn_bilinear=False),
    LossCase("outreg-prob-softmax-3x4x3-4-soft-masked",
             lambda: OutputRegularizedLoss(SoftmaxCrossEntropy((3, 4, 3), 4, per_pixel=True), 2.0,
                                           on="probabilities"), n_examples=2, labels="target", mask="pixel",
             local=False, gn_bilinear=False),
]

WRT = ("Y", "w", "both")


def _params(with_wrt=True):
    out = []
    for c in LOSS_CASES:
        if with_wrt:
            out += [pytest.param(c, w, id=f"{c.name}-{w}") for w in WRT]
        else:
            out.append(pytest.param(c, id=c.name))
    return out


def _setup(case, dtype, xp_name, seed=0):
    xp = get_xp(xp_name)
    loss = case.make()
    Y, w, C, mask = case.data(loss, dtype, xp, seed)
    return loss, Y, w, C, mask, xp


def _directions(wrt, Y, w, seed=7, rel=0.5):
    """Random directions (dY, dw), zero (None) for the part not tested; sized relative to Y and w."""
    rng = np.random.default_rng(seed)
    xp = get_array_module(Y)

    def draw(x):
        v = rng.standard_normal(x.shape)
        v *= rel * max(np.linalg.norm(to_numpy(x)), 1.0) / np.linalg.norm(v)
        return to_backend(v.astype(x.dtype), xp)

    dY = draw(Y) if wrt in ("Y", "both") else None
    dw = draw(w) if wrt in ("w", "both") else None
    return dY, dw


def _off_null_cone(loss, ev, dY, dw):
    """Sign of ``dw`` that keeps the direction away from the null cone of the Hessian.

    The full Hessian is indefinite (mixed blocks), so for a random direction
    ``v = (dY, dw)`` the quadratic term ``vᵀHv = a + 2b + c`` of the Taylor
    remainder can nearly vanish; the remainder is then cubic down to the
    float32 round-off floor and the test sees no order-2 range (this happened
    for ~5% of random directions).  ``a, c ≥ 0`` (PSD diagonal blocks), so the
    sign of ``dw`` that makes ``2b`` non-negative gives ``|vᵀHv| ≥ a + c``.
    The check itself is unchanged: ``<∇Φ, v>`` is tested along the chosen ``v``.
    """
    b = _vdot(loss.hess_Yw_mv(dw, ev), dY)
    return dw if b >= 0 else -dw


def _step(x, h, d):
    return x if d is None else x + h * d


def _flat(a, b):
    xp = get_array_module(a, b)
    return xp.concatenate([a.reshape(-1), b.reshape(-1)])


def _vdot(a, b):
    return float(np.vdot(to_numpy(a).reshape(-1).astype(np.float64), to_numpy(b).reshape(-1).astype(np.float64)))


# ------------------------------------------------------------------ generic tests
@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case,wrt", _params())
def test_taylor_value_gradient(case, wrt, dtype, xp_name):
    loss, Y, w, C, mask, xp = _setup(case, dtype, xp_name)
    ev = loss.evaluate(Y, w, C, mask=mask)
    # value() has its own, cheaper path (no gradient factors): the same number
    v = loss.value(Y, w, C, mask=mask)
    assert v.dtype == dtype and abs(float(v) - float(ev.value)) <= 8 * np.finfo(dtype).eps * max(1.0, abs(float(ev.value)))
    dY, dw = _directions(wrt, Y, w)
    if wrt == "both":
        dw = _off_null_cone(loss, ev, dY, dw)
    Jv = (_vdot(ev.grad_Y, dY) if dY is not None else 0.0) + (_vdot(ev.grad_w, dw) if dw is not None else 0.0)
    # taylor_test_line needs arrays with a shape: the scalar value as a vector of length 1
    rep = taylor_test_line(lambda h: loss.value(_step(Y, h, dY), _step(w, h, dw), C, mask=mask).reshape(1),
                           ev.value.reshape(1), xp.asarray([Jv], dtype=dtype), name=f"{case.name} value wrt {wrt}",
                           **case.taylor_kwargs)
    assert rep.ok, "\n" + str(rep)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case,wrt", _params())
def test_taylor_gradient_hessian(case, wrt, dtype, xp_name):
    loss, Y, w, C, mask, xp = _setup(case, dtype, xp_name)
    ev = loss.evaluate(Y, w, C, mask=mask)
    dY, dw = _directions(wrt, Y, w)
    HY, Hw = loss.hess_mv(dY, dw, ev)

    def grad(h):
        e = loss.evaluate(_step(Y, h, dY), _step(w, h, dw), C, mask=mask, need=("grad_Y", "grad_w"))
        return _flat(e.grad_Y, e.grad_w)

    rep = taylor_test_line(grad, _flat(ev.grad_Y, ev.grad_w), _flat(HY, Hw), name=f"{case.name} gradient wrt {wrt}",
                           **case.taylor_kwargs)
    assert rep.ok, "\n" + str(rep)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("gauss_newton", [False, True], ids=["exact", "gn"])
@pytest.mark.parametrize("case,wrt", _params())
def test_hessian_symmetric(case, wrt, gauss_newton, dtype, xp_name):
    loss, Y, w, C, mask, xp = _setup(case, dtype, xp_name)
    ev = loss.evaluate(Y, w, C, mask=mask)
    nY = Y.size

    def H(v):
        dY = v[:nY].reshape(Y.shape) if wrt != "w" else None
        dw = (v[nY:] if wrt == "both" else v) if wrt != "Y" else None
        HY, Hw = loss.hess_mv(dY, dw, ev, gauss_newton=gauss_newton)
        return {"Y": HY.reshape(-1), "w": Hw, "both": _flat(HY, Hw)}[wrt]

    n = {"Y": nY, "w": loss.n_w, "both": nY + loss.n_w}[wrt]
    rng = np.random.default_rng(3)
    u, v = (to_backend(rng.standard_normal(n).astype(dtype), xp) for _ in range(2))
    rep = dot_test(H, H, u, v, name=f"{case.name} Hessian wrt {wrt}")
    assert rep.ok, str(rep)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _params(with_wrt=False))
def test_mixed_blocks_and_one_sided_products(case, dtype):
    loss, Y, w, C, mask, xp = _setup(case, dtype, "numpy")
    ev = loss.evaluate(Y, w, C, mask=mask)
    dY, dw = _directions("both", Y, w, seed=11)
    for gn in (False, True):
        rep = dot_test(lambda v: loss.hess_Yw_mv(v, ev, gauss_newton=gn),
                       lambda u: loss.hess_wY_mv(u, ev, gauss_newton=gn), dw, dY, name=f"{case.name} mixed gn={gn}")
        assert rep.ok, str(rep)
    # the one-sided products are the blocks of the full product
    HY, Hw = loss.hess_mv(dY, dw, ev)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(loss.hess_Y_mv(dY, ev) + loss.hess_Yw_mv(dw, ev), HY, rtol=tol, atol=tol * np.abs(HY).max())
    np.testing.assert_allclose(loss.hess_wY_mv(dY, ev) + loss.hess_w_mv(dw, ev), Hw, rtol=tol, atol=tol * np.abs(Hw).max())
    HY_gn, Hw_gn = loss.hess_mv(dY, dw, ev, gauss_newton=True)
    if case.gn_bilinear:
        _check_gn_bilinear(loss, ev, Y, dY, dw, HY, Hw, HY_gn, Hw_gn, tol)
    # Gauss-Newton is positive semidefinite; so are the exact Y- and w-blocks (but for R on probabilities)
    rng = np.random.default_rng(5)
    for _ in range(3):
        dY, dw = (rng.standard_normal(Y.shape).astype(dtype), rng.standard_normal(w.shape).astype(dtype))
        a, b = loss.hess_mv(dY, dw, ev, gauss_newton=True)
        assert _vdot(a, dY) + _vdot(b, dw) >= -1e-6 * (np.linalg.norm(a) * np.linalg.norm(dY) + np.linalg.norm(b) * np.linalg.norm(dw))
        if case.gn_bilinear:
            assert _vdot(loss.hess_Y_mv(dY, ev), dY) >= -1e-6 * np.linalg.norm(dY) ** 2
            assert _vdot(loss.hess_w_mv(dw, ev), dw) >= -1e-6 * np.linalg.norm(dw) ** 2


def _check_gn_bilinear(loss, ev, Y, dY, dw, HY, Hw, HY_gn, Hw_gn, tol):
    """Gauss-Newton differs by the bilinear term only: Hʏ − Hʏ_GN = G dW,  H_w − H_w,GN = (Gᵀ dY, 0)."""
    G = ev.cache.G
    k = loss.n_classes * loss.n_features
    GdW = loss._from_samples(G @ dw[:k].reshape(loss.n_classes, loss.n_features), Y.shape[0], np)
    np.testing.assert_allclose(HY - HY_gn, GdW, rtol=tol, atol=tol * np.abs(HY).max())
    GtdY = (G.T @ loss._to_samples(dY, np)).reshape(-1)
    np.testing.assert_allclose((Hw - Hw_gn)[:k], GtdY, rtol=tol, atol=tol * np.abs(Hw).max())
    np.testing.assert_array_equal((Hw - Hw_gn)[k:], 0)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _params(with_wrt=False))
def test_dtype_backend_and_need(case, dtype, xp_name):
    loss, Y, w, C, mask, xp = _setup(case, dtype, xp_name)
    ev = loss.evaluate(Y, w, C, mask=mask)
    assert isinstance(ev, LossEval)
    assert ev.value.shape == () and ev.value.dtype == dtype and get_array_module(ev.value) is xp
    assert ev.grad_Y.shape == Y.shape and ev.grad_Y.dtype == dtype
    assert ev.grad_w.shape == (loss.n_w,) and ev.grad_w.dtype == dtype
    dY, dw = _directions("both", Y, w)
    for out in (*loss.hess_mv(dY, dw, ev), loss.hess_Y_mv(dY, ev), loss.hess_w_mv(dw, ev),
                loss.hess_Yw_mv(dw, ev), loss.hess_wY_mv(dY, ev), loss.hess_mv(None, None, ev)[0]):
        assert out.dtype == dtype and get_array_module(out) is xp
    only = loss.evaluate(Y, w, C, mask=mask, need=("grad_w",))
    assert only.value is None and only.grad_Y is None
    assert float(xp.abs(only.grad_w - ev.grad_w).max()) == 0.0
    assert loss.evaluate(Y, w, C, mask=mask, need="value").grad_w is None
    assert loss.logits(Y, w).shape == (Y.shape[0], loss.n_classes, *loss.spatial)
    assert 0.0 <= loss.accuracy(Y, w, C, mask=mask) <= 1.0


@pytest.mark.parametrize("case", [c for c in _params(with_wrt=False) if c.values[0].mask and c.values[0].local])
def test_mask_unlabelled_do_not_matter(case):
    """Unlabelled samples change neither the value nor the gradients; their labels may be garbage."""
    loss, Y, w, C, mask, xp = _setup(case, np.float64, "numpy")
    ev = loss.evaluate(Y, w, C, mask=mask)
    un = ~mask  # unlabelled examples (or pixels)
    rng = np.random.default_rng(9)
    # 1. other outputs at the unlabelled samples
    Y2 = Y.copy()
    if mask.ndim == 1:
        Y2[un] = 10 * rng.standard_normal(Y2[un].shape)
    else:  # per pixel: change all channels at the unlabelled pixels
        Y2 = np.where(un[:, None], 10 * rng.standard_normal(Y.shape), Y)
    # 2. garbage labels there
    C2 = C.copy()
    if C.dtype.kind in "iu":
        C2[un] = -1
    elif mask.ndim == 1:
        C2[un] = np.nan
    ev2 = loss.evaluate(Y2, w, C2, mask=mask)
    assert ev2.n_labelled == ev.n_labelled == int(mask.sum()) * (loss.n_pixels if mask.ndim == 1 else 1)
    np.testing.assert_allclose(ev2.value, ev.value, rtol=1e-13)
    np.testing.assert_allclose(ev2.grad_w, ev.grad_w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ev2.grad_Y, ev.grad_Y, rtol=1e-12, atol=1e-15)
    gY = ev.grad_Y if mask.ndim == 1 else np.moveaxis(ev.grad_Y, 1, -1)
    assert np.all(gY[un] == 0)
    # 3. the Hessian products ignore them too
    dY = rng.standard_normal(Y.shape)
    np.testing.assert_allclose(loss.hess_mv(dY, None, ev2)[1], loss.hess_mv(dY, None, ev)[1], rtol=1e-12, atol=1e-15)
    # 4. with a per-example mask the loss equals the loss of the labelled examples alone
    if mask.ndim == 1:
        ev_sub = loss.evaluate(Y[mask], w, C[mask])
        np.testing.assert_allclose(ev.value, ev_sub.value, rtol=1e-13)
        np.testing.assert_allclose(ev.grad_w, ev_sub.grad_w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(ev.grad_Y[mask], ev_sub.grad_Y, rtol=1e-12, atol=1e-15)
    # a 0/1 float mask is the same as a boolean one
    ev_f = loss.evaluate(Y, w, C, mask=mask.astype(np.float64))
    assert float(ev_f.value) == float(ev.value)


def test_mask_normalization_pixels():
    """A per-example mask on a per-pixel loss counts every pixel of the labelled examples."""
    loss = SoftmaxCrossEntropy((2, 3, 3), 3, per_pixel=True)
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((4, 2, 3, 3))
    w = loss.init_w(rng=1)
    C = rng.integers(0, 3, size=(4, 3, 3))
    m_ex = np.array([True, False, True, False])
    m_px = np.broadcast_to(m_ex[:, None, None], (4, 3, 3)).copy()
    a, b = loss.evaluate(Y, w, C, mask=m_ex), loss.evaluate(Y, w, C, mask=m_px)
    assert a.n_labelled == b.n_labelled == 18
    np.testing.assert_allclose(a.value, b.value, rtol=1e-14)
    np.testing.assert_allclose(a.grad_w, b.grad_w, rtol=1e-13)


# ------------------------------------------------------------------ known answers
def _cross_entropy_numpy(Z, c):
    return -np.mean(scipy.special.log_softmax(Z, axis=1)[np.arange(len(c)), c])


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_softmax_uniform_logits_is_log_n_classes(n_classes):
    for loss, Y, C in [
        (SoftmaxCrossEntropy(4, n_classes), np.random.default_rng(0).standard_normal((6, 4)), np.arange(6) % n_classes),
        (SoftmaxCrossEntropy((2, 3, 3), n_classes, per_pixel=True), np.ones((2, 2, 3, 3)),
         np.arange(18).reshape(2, 3, 3) % n_classes),
    ]:
        w = np.zeros(loss.n_w)
        assert abs(float(loss.value(Y, w, C)) - np.log(n_classes)) < 1e-14
        for dt in (np.float32,):
            v = loss.value(Y.astype(dt), w.astype(dt), C)
            assert v.dtype == dt and abs(float(v) - np.log(n_classes)) < 1e-6


def test_softmax_against_scipy_and_gradient_rows():
    rng = np.random.default_rng(1)
    loss = SoftmaxCrossEntropy(5, 4)
    Y, w, C = rng.standard_normal((8, 5)), loss.init_w(rng=2), rng.integers(0, 4, 8)
    w[-4:] = rng.standard_normal(4)
    W, mu = w[:20].reshape(4, 5), w[20:]
    Z = Y @ W.T + mu
    ev = loss.evaluate(Y, w, C)
    np.testing.assert_allclose(ev.value, _cross_entropy_numpy(Z, C), rtol=1e-14)
    P = scipy.special.softmax(Z, axis=1)
    np.testing.assert_allclose(loss.probabilities(Y, w), P, rtol=1e-14)
    np.testing.assert_allclose(loss.probabilities(Y, w).sum(axis=1), 1.0, rtol=1e-15)
    # ∂Φ/∂Z = (P − onehot)/n: rows sum to zero over the classes, so the μ-gradient sums to zero
    G = (P - np.eye(4)[C]) / 8
    np.testing.assert_allclose(ev.cache.G, G, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(ev.cache.G.sum(axis=1), 0.0, atol=1e-16)
    assert abs(ev.grad_w[20:].sum()) < 1e-15
    np.testing.assert_allclose(ev.grad_w[:20], (G.T @ Y).ravel(), rtol=1e-13)
    np.testing.assert_allclose(ev.grad_Y, G @ W, rtol=1e-13)
    # soft labels given as one-hot rows are the same as class indices
    ev1 = loss.evaluate(Y, w, np.eye(4)[C])
    np.testing.assert_allclose(ev1.value, ev.value, rtol=1e-15)
    np.testing.assert_allclose(ev1.grad_Y, ev.grad_Y, rtol=1e-15)
    assert loss.predict(Y, w).tolist() == Z.argmax(axis=1).tolist()
    assert loss.accuracy(Y, w, C) == np.mean(Z.argmax(axis=1) == C)


def test_softmax_log_sum_exp_stable_for_large_logits():
    loss = SoftmaxCrossEntropy(2, 2, bias=False)
    w = np.eye(2).ravel()  # logits = Y
    Y = np.array([[1000.0, 0.0], [1000.0, 0.0], [1e3, 1e3 - 1.0], [-1e3, 1e3]])
    C = np.array([0, 1, 1, 1])
    expected = np.mean([np.log1p(np.exp(-1000.0)), 1000.0, 1.0 + np.log1p(np.exp(-1.0)), np.log1p(np.exp(-2000.0))])
    for dt in (np.float64, np.float32):
        ev = loss.evaluate(Y.astype(dt), w.astype(dt), C)
        assert np.isfinite(float(ev.value)) and np.all(np.isfinite(ev.grad_Y))
        np.testing.assert_allclose(float(ev.value), expected, rtol=1e-14 if dt == np.float64 else 1e-6)
        HY = loss.hess_Y_mv(np.ones_like(Y, dtype=dt), ev)
        assert np.all(np.isfinite(HY))


def test_least_squares_against_numpy():
    rng = np.random.default_rng(2)
    loss = LeastSquares(4, 3)
    Y, w, T = rng.standard_normal((6, 4)), rng.standard_normal(loss.n_w), rng.standard_normal((6, 3))
    W, mu = w[:12].reshape(3, 4), w[12:]
    R = Y @ W.T + mu - T
    ev = loss.evaluate(Y, w, T)
    np.testing.assert_allclose(ev.value, 0.5 / 6 * np.sum(R ** 2), rtol=1e-14)
    np.testing.assert_allclose(ev.grad_Y, R @ W / 6, rtol=1e-13)
    np.testing.assert_allclose(ev.grad_w, np.concatenate([(R.T @ Y).ravel(), R.sum(axis=0)]) / 6, rtol=1e-13)
    # Hessian w.r.t. w is (1/n) [Y 1]ᵀ[Y 1] ⊗ I in the (W, μ) ordering: compare with the dense matrix
    Yb = np.hstack([Y, np.ones((6, 1))])
    M = Yb.T @ Yb / 6  # (5, 5)
    dw = rng.standard_normal(loss.n_w)
    dWb = np.hstack([dw[:12].reshape(3, 4), dw[12:, None]])  # (3, 5)
    HWb = dWb @ M
    Hw = loss.hess_w_mv(dw, ev)
    np.testing.assert_allclose(Hw, np.concatenate([HWb[:, :4].ravel(), HWb[:, 4]]), rtol=1e-13)
    dY = rng.standard_normal(Y.shape)
    np.testing.assert_allclose(loss.hess_Y_mv(dY, ev), dY @ W.T @ W / 6, rtol=1e-13)
    np.testing.assert_allclose(loss.predict(Y, w), Y @ W.T + mu, rtol=1e-14)
    np.testing.assert_allclose(loss.relative_error(Y, w, T), np.linalg.norm(R) / np.linalg.norm(T), rtol=1e-13)
    # class indices are one-hot targets
    c = rng.integers(0, 3, 6)
    np.testing.assert_allclose(loss.value(Y, w, c), loss.value(Y, w, np.eye(3)[c]), rtol=1e-15)
    assert loss.accuracy(Y, w, c) == np.mean((Y @ W.T + mu).argmax(axis=1) == c)


def test_logistic_against_direct_formula_and_stability():
    rng = np.random.default_rng(3)
    loss = LogisticRegression(3)
    Y, w = rng.standard_normal((7, 3)), rng.standard_normal(4)
    c = rng.integers(0, 2, 7)
    z = Y @ w[:3] + w[3]
    s = 1 / (1 + np.exp(-z))
    direct = -np.mean(c * np.log(s) + (1 - c) * np.log(1 - s))
    ev = loss.evaluate(Y, w, c)
    np.testing.assert_allclose(ev.value, direct, rtol=1e-14)
    np.testing.assert_allclose(ev.grad_w, np.concatenate([(s - c) @ Y, [(s - c).sum()]]) / 7, rtol=1e-13)
    np.testing.assert_allclose(loss.probabilities(Y, w)[:, 0], s, rtol=1e-14)
    assert loss.predict(Y, w).tolist() == (z > 0).astype(int).tolist()
    # float targets of shape (n, 1) are the same as 0/1 labels
    np.testing.assert_allclose(loss.value(Y, w, c[:, None].astype(np.float64)), ev.value, rtol=1e-15)
    # large logits: log(1 + e^{±800}) without overflow
    big = LogisticRegression(1, bias=False)
    Yb = np.array([[800.0], [-800.0], [800.0]])
    val = big.value(Yb, np.ones(1), np.array([1, 0, 0]))
    np.testing.assert_allclose(float(val), 800.0 / 3, rtol=1e-14)
    # several outputs with class indices: one-vs-rest with one-hot targets, arg-max prediction
    ovr = LogisticRegression(3, 4)
    w4 = rng.standard_normal(ovr.n_w)
    ci = rng.integers(0, 4, 7)
    np.testing.assert_allclose(ovr.value(Y, w4, ci), ovr.value(Y, w4, np.eye(4)[ci]), rtol=1e-15)
    assert ovr.predict(Y, w4).tolist() == ovr.logits(Y, w4).argmax(axis=1).tolist()


def test_per_pixel_equals_loss_on_pixels_as_examples():
    rng = np.random.default_rng(4)
    pix = SoftmaxCrossEntropy((2, 3, 4), 3, per_pixel=True)
    vec = SoftmaxCrossEntropy(2, 3)
    Y = rng.standard_normal((2, 2, 3, 4))
    C = rng.integers(0, 3, (2, 3, 4))
    w = rng.standard_normal(pix.n_w)
    Yv = np.transpose(Y, (0, 2, 3, 1)).reshape(-1, 2)
    a, b = pix.evaluate(Y, w, C), vec.evaluate(Yv, w, C.ravel())
    np.testing.assert_allclose(a.value, b.value, rtol=1e-14)
    np.testing.assert_allclose(a.grad_w, b.grad_w, rtol=1e-13)
    np.testing.assert_allclose(np.transpose(a.grad_Y, (0, 2, 3, 1)).reshape(-1, 2), b.grad_Y, rtol=1e-13)
    assert pix.predict(Y, w).shape == (2, 3, 4)
    assert pix.accuracy(Y, w, C) == vec.accuracy(Yv, w, C.ravel())
    assert pix.logits(Y, w).shape == (2, 3, 3, 4)


def test_init_w():
    loss = SoftmaxCrossEntropy(4, 3)
    w = loss.init_w(rng=0, dtype=np.float32)
    assert w.shape == (15,) and w.dtype == np.float32 and np.all(w[12:] == 0)
    np.testing.assert_array_equal(loss.init_w(rng=0), loss.init_w(rng=0))
    assert loss.split_w(w).mu.shape == (3,) and loss.matrix(w).shape == (3, 4)


# ------------------------------------------------------------------ bad input
def test_bad_labels():
    loss = SoftmaxCrossEntropy(4, 3)
    Y, w = np.zeros((5, 4)), np.zeros(loss.n_w)
    with pytest.raises(ValueError, match=r"C must hold the labels of the 5 examples of Y \(axis 0\), got 4 examples"):
        loss.evaluate(Y, w, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=r"C holds class index 3 at sample 2, but SoftmaxCrossEntropy with n_classes=3 accepts indices 0..2"):
        loss.evaluate(Y, w, np.array([0, 1, 3, 0, 0]))
    with pytest.raises(ValueError, match="C holds class index -1 at sample 0"):
        loss.evaluate(Y, w, np.array([-1, 1, 2, 0, 0]))
    with pytest.raises(TypeError, match="are read as class indices and must have an integer dtype, got float64"):
        loss.evaluate(Y, w, np.array([0.0, 1, 2, 0, 0]))
    T = np.eye(3)[[0, 1, 2, 0, 1]]
    T[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"C contains 1 non-finite value\(s\)"):
        loss.evaluate(Y, w, T)
    with pytest.raises(ValueError, match="rows of C must sum to 1.*row 0 sums to 0.5"):
        loss.evaluate(Y, w, 0.5 * np.eye(3)[[0, 1, 2, 0, 1]])
    with pytest.raises(ValueError, match="non-negative"):
        loss.evaluate(Y, w, np.array([[2.0, -1, 0]] * 5))
    with pytest.raises(ValueError, match=r"C must have shape \(5,\) \(class indices\) or \(5, 3\)"):
        loss.evaluate(Y, w, np.zeros((5, 4)))
    with pytest.raises(TypeError, match="C has dtype float32 but Y is float64"):
        loss.evaluate(Y, w, np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]])
    with pytest.raises(TypeError, match="C must be a numpy.ndarray or cupy.ndarray, got list"):
        loss.evaluate(Y, w, [0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"targets C of LogisticRegression must lie in \[0, 1\]"):
        LogisticRegression(4).evaluate(Y, np.zeros(5), np.full((5, 1), 2.0))
    with pytest.raises(ValueError, match="accepts indices 0..1"):
        LogisticRegression(4).evaluate(Y, np.zeros(5), np.array([0, 1, 2, 0, 1]))


def test_bad_mask_Y_w_and_options():
    loss = SoftmaxCrossEntropy(4, 3)
    Y, w, C = np.zeros((5, 4)), np.zeros(loss.n_w), np.array([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"mask must have shape \(5,\) \(one entry per example\), got \(4,\)"):
        loss.evaluate(Y, w, C, mask=np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="mask selects no labelled sample"):
        loss.evaluate(Y, w, C, mask=np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        loss.evaluate(Y, w, C, mask=np.array([0.5, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match=r"Y must have shape \(n_examples, 4\) for SoftmaxCrossEntropy, got \(5, 3\)"):
        loss.evaluate(np.zeros((5, 3)), w, C)
    with pytest.raises(ValueError, match=r"w must have shape \(15,\)"):
        loss.evaluate(Y, np.zeros(14), C)
    with pytest.raises(TypeError, match="w has dtype float32 but the other arguments are float64"):
        loss.evaluate(Y, w.astype(np.float32), C)
    Ybad = Y.copy()
    Ybad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"Y contains 1 non-finite value\(s\)"):
        loss.evaluate(Ybad, w, C)
    with pytest.raises(ValueError, match=r"need must be one of \{'value', 'grad_Y', 'grad_w'\}, got 'grad'"):
        loss.evaluate(Y, w, C, need=("value", "grad"))
    ev = loss.evaluate(Y, w, C)
    with pytest.raises(ValueError, match=r"dY must have shape \(5, 4\), got \(4, 4\)"):
        loss.hess_Y_mv(np.zeros((4, 4)), ev)
    with pytest.raises(ValueError, match="dw must be an array of shape"):
        loss.hess_w_mv(None, ev)
    with pytest.raises(TypeError, match="ev must be the LossEval returned by evaluate"):
        loss.hess_Y_mv(Y, {"value": 1.0})
    with pytest.raises(ValueError, match="n_classes must be >= 2, got 1"):
        SoftmaxCrossEntropy(4, 1)
    with pytest.raises(ValueError, match="per_pixel=True needs an image-shaped output"):
        SoftmaxCrossEntropy(4, 3, per_pixel=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bais'"):
        SoftmaxCrossEntropy(4, 3, bais=False)
    with pytest.raises(TypeError, match="bias must be True or False"):
        LeastSquares(4, 3, bias=1)
    with pytest.raises(ValueError, match="shape_in must be a non-empty tuple of positive ints"):
        LeastSquares((4, 0), 3)
