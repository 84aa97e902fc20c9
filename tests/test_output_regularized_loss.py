"""OutputRegularizedLoss (Peters 2020, eqs. 3.2, 4.8-4.9): specific checks.

The generic derivative tests (Taylor tests of value and gradient w.r.t. Y, w
and both, Hessian symmetry, GN vs exact, dtypes) run on the wrapper through
``LOSS_CASES`` in tests/test_losses.py.  Here: known answers, α = 0, masks,
passthrough, validation, and a network objective with the wrapper.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.layers import SingleLayer
from meganet.losses import LeastSquares, LogisticRegression, OutputRegularizedLoss, SoftmaxCrossEntropy
from meganet.objectives import NetworkObjective
from meganet.regularizers import Tikhonov
from meganet.testing import taylor_test
from meganet.transforms import Conv2d


def _problem(n=2, c=2, H=4, W=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    base = SoftmaxCrossEntropy((c, H, W), k, per_pixel=True)
    Y = rng.standard_normal((n, c, H, W))
    w = base.init_w(rng=seed + 1)
    w[base.n_classes * base.n_features:] = 0.3 * rng.standard_normal(base.n_classes)
    C = rng.integers(0, k, size=(n, H, W))
    return base, Y, w, C, rng


@pytest.mark.parametrize("on", ["logits", "probabilities"])
def test_alpha_zero_is_the_base_loss_exactly(on):
    base, Y, w, C, rng = _problem()
    mask = rng.random(C.shape) < 0.5
    mask[0, 0, 0] = True
    loss = OutputRegularizedLoss(base, 0.0, on=on)
    e0, e = base.evaluate(Y, w, C, mask=mask), loss.evaluate(Y, w, C, mask=mask)
    assert float(e.value) == float(e0.value) == float(loss.value(Y, w, C, mask=mask))
    np.testing.assert_array_equal(e.grad_Y, e0.grad_Y)
    np.testing.assert_array_equal(e.grad_w, e0.grad_w)
    dY, dw = rng.standard_normal(Y.shape), rng.standard_normal(w.shape)
    for gn in (False, True):
        for a, b in zip(loss.hess_mv(dY, dw, e, gauss_newton=gn), base.hess_mv(dY, dw, e0, gauss_newton=gn)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("on", ["logits", "probabilities"])
def test_constant_map_has_zero_regularizer(on):
    base, Y, w, C, _ = _problem()
    k = base.n_classes * base.n_features
    w[:k] = 0.0  # logits = μ at every pixel: a constant map (and constant probabilities)
    loss = OutputRegularizedLoss(base, 3.0, on=on)
    e, e0 = loss.evaluate(Y, w, C), base.evaluate(Y, w, C)
    assert float(e.value) == float(e0.value)
    np.testing.assert_allclose(e.grad_Y, e0.grad_Y, rtol=0, atol=1e-15)
    np.testing.assert_allclose(e.grad_w, e0.grad_w, rtol=0, atol=1e-15)


@pytest.mark.parametrize("spacing", [1.0, (0.5, 2.0)])
def test_linear_ramp_known_value(spacing):
    """Logits u = a·i + b·j (i, j the pixel indices): R = ½(a²(H−1)W/h₁² + b²H(W−1)/h₂²) per example and class."""
    n, H, W, a, b, alpha = 3, 4, 6, 0.7, -1.3, 0.25
    base = LeastSquares((1, H, W), 2, bias=False, per_pixel=True)
    loss = OutputRegularizedLoss(base, alpha, spacing=spacing)
    h1, h2 = (spacing, spacing) if np.ndim(spacing) == 0 else spacing
    i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    Y = np.broadcast_to(a * i + b * j, (n, 1, H, W)).astype(np.float64)
    w = np.array([1.0, 2.0])  # class 0 sees the ramp, class 1 twice the ramp
    C = np.zeros((n, 2, H, W))
    R = alpha * 0.5 * (a ** 2 * (H - 1) * W / h1 ** 2 + b ** 2 * H * (W - 1) / h2 ** 2) * (1.0 + 4.0)
    np.testing.assert_allclose(float(loss.value(Y, w, C) - base.value(Y, w, C)), R, rtol=1e-13)
    # the gradient of a ramp is −Δu: zero inside, the boundary flux at the edges (Neumann)
    gZ = loss.evaluate(Y, w, C).grad_Y - base.evaluate(Y, w, C).grad_Y
    np.testing.assert_allclose(gZ[:, :, 1:-1, 1:-1], 0, atol=1e-13)
    np.testing.assert_allclose(gZ.sum(), 0, atol=1e-12)  # a Laplacian of anything sums to zero (zero flux)


@pytest.mark.parametrize("on", ["logits", "probabilities"])
def test_mask_loss_on_labelled_pixels_regularizer_on_all(on):
    base, Y, w, C, rng = _problem(seed=4)
    mask = rng.random(C.shape) < 0.3
    mask[0, 0, 0] = True
    un = ~mask
    loss = OutputRegularizedLoss(base, 0.8, on=on)
    e = loss.evaluate(Y, w, C, mask=mask)
    # labels of unlabelled pixels do not matter (even garbage)
    C2 = np.where(un, -1, C)
    e2 = loss.evaluate(Y, w, C2, mask=mask)
    assert float(e2.value) == float(e.value)
    np.testing.assert_array_equal(e2.grad_Y, e.grad_Y)
    np.testing.assert_array_equal(e2.grad_w, e.grad_w)
    # ... but the predictions there do: R acts on every pixel (the base loss does not see them)
    Y2 = np.where(un[:, None], Y + rng.standard_normal(Y.shape), Y)
    assert float(base.value(Y2, w, C, mask=mask)) == pytest.approx(float(base.value(Y, w, C, mask=mask)), rel=1e-13)
    assert abs(float(loss.value(Y2, w, C, mask=mask)) - float(e.value)) > 1e-3
    gY = np.moveaxis(e.grad_Y, 1, -1)
    assert np.abs(gY[un]).max() > 1e-3  # R's gradient reaches the unlabelled pixels
    assert np.all(np.moveaxis(base.evaluate(Y, w, C, mask=mask).grad_Y, 1, -1)[un] == 0)


def test_passthrough():
    base, Y, w, C, _ = _problem()
    loss = OutputRegularizedLoss(base, 0.5, on="probabilities")
    for name in ("shape_in", "n_classes", "bias", "per_pixel", "n_features", "spatial", "n_pixels", "n_index", "n_w"):
        assert getattr(loss, name) == getattr(base, name), name
    assert loss.layout.size == base.layout.size
    np.testing.assert_array_equal(loss.init_w(rng=3), base.init_w(rng=3))
    assert loss.init_w(dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(loss.logits(Y, w), base.logits(Y, w))
    np.testing.assert_array_equal(loss.probabilities(Y, w), base.probabilities(Y, w))
    np.testing.assert_array_equal(loss.predict(Y, w), base.predict(Y, w))
    assert loss.accuracy(Y, w, C) == base.accuracy(Y, w, C)
    lsq = LeastSquares((2, 3, 3), 2, per_pixel=True)
    wrapped = OutputRegularizedLoss(lsq, 1.0)
    Yl, wl, T = np.ones((1, 2, 3, 3)), lsq.init_w(rng=0), np.zeros((1, 2, 3, 3))
    assert wrapped.relative_error(Yl, wl, T) == lsq.relative_error(Yl, wl, T)
    ev = loss.evaluate(Y, w, C)
    with pytest.raises(NotImplementedError, match="couples neighbouring pixels"):
        loss._curvature_mv(ev.cache.Z, ev.cache.curvature)
    with pytest.raises(TypeError, match="this OutputRegularizedLoss"):
        loss.hess_mv(None, None, base.evaluate(Y, w, C))
    assert "alpha=0.5" in repr(loss) and "probabilities" in repr(loss)


def test_validation():
    base = SoftmaxCrossEntropy((2, 3, 3), 3, per_pixel=True)
    for alpha in (-1.0, np.inf, np.nan, "1"):  # meganet's check: ValueError if negative, TypeError if not finite
        with pytest.raises((ValueError, TypeError), match="alpha"):
            OutputRegularizedLoss(base, alpha)
    with pytest.raises(ValueError, match="on"):
        OutputRegularizedLoss(base, 1.0, on="features")
    with pytest.raises(ValueError, match="per-pixel"):
        OutputRegularizedLoss(SoftmaxCrossEntropy((2, 3, 3), 3), 1.0)
    with pytest.raises(ValueError, match="per-pixel"):
        OutputRegularizedLoss(SoftmaxCrossEntropy((2, 3, 3, 3), 3, per_pixel=True), 1.0)
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy"):
        OutputRegularizedLoss(LogisticRegression((2, 3, 3), per_pixel=True), 1.0, on="probabilities")
    with pytest.raises(TypeError, match="Loss"):
        OutputRegularizedLoss("softmax", 1.0)
    with pytest.raises(TypeError, match="already"):
        OutputRegularizedLoss(OutputRegularizedLoss(base, 1.0), 1.0)
    with pytest.raises(ValueError, match="spacing"):
        OutputRegularizedLoss(base, 1.0, spacing=-1.0)


@pytest.mark.parametrize("on", ["logits", "probabilities"])
def test_network_objective_taylor(on):
    """A conv network trained with the wrapper: the objective's gradient passes the Taylor test and its
    Gauss-Newton product is symmetric."""
    rng = np.random.default_rng(7)
    H, W = 4, 5
    net = SingleLayer(Conv2d(2, 3, (H, W)))
    loss = OutputRegularizedLoss(SoftmaxCrossEntropy((3, H, W), 3, per_pixel=True), 0.5, on=on)
    Y = rng.standard_normal((2, 2, H, W))
    C = rng.integers(0, 3, size=(2, H, W))
    mask = rng.random((2, H, W)) < 0.3
    mask[0, 0, 0] = True
    obj = NetworkObjective(net, loss, Y, C, mask=mask, regularizer=Tikhonov(net.n_theta, alpha=1e-3))
    x = obj.init_x(rng=1)
    _, wv = obj.split(x)
    wv[...] = rng.standard_normal(wv.shape)
    f, g, state = obj.value_and_gradient(x)
    v = rng.standard_normal(obj.n)
    assert taylor_test(lambda z: np.asarray(obj.value(z)[0]), x, v, np.asarray(g @ v)).ok
    u = rng.standard_normal(obj.n)
    Hv, Hu = obj.hessian_matvec(x, v, state), obj.hessian_matvec(x, u, state)
    assert abs(u @ Hv - v @ Hu) < 1e-12 * (abs(u @ Hv) + 1)
    assert v @ Hv >= -1e-12 * np.linalg.norm(v) * np.linalg.norm(Hv)  # GN: PSD
