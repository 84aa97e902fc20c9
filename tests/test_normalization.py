"""Known-answer tests of the normalization elements (meganet.normalization).

The generic Taylor/dot/per-example tests run on the registry cases in
tests/cases/normalization.py; here the maps, their Jacobians and θ-gradients
are compared with statistics and formulas computed directly with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.normalization import AffineScaling, BatchNorm, InstanceNorm, TVNorm

IMG = (3, 4, 5)
VEC = (4,)


def _data(shape, n=3, seed=0, loc=2.0, scale=3.0):
    """Data with channel-dependent mean and scale (so wrong axes show up)."""
    rng = np.random.default_rng(seed)
    C = shape[0]
    mu = _bc(loc * np.arange(1, C + 1), 1 + len(shape))
    sd = _bc(scale * np.linspace(0.5, 1.5, C), 1 + len(shape))
    return mu + sd * rng.standard_normal((n, *shape))


def _bc(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


# ----------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("shape, axes", [(IMG, (0, 2, 3)), (VEC, (0,))])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_batchnorm_matches_hand_statistics(shape, axes, dtype, tol):
    Y = _data(shape, n=4)
    eps = 1e-3
    mu = Y.mean(axis=axes, keepdims=True)
    var = ((Y - mu) ** 2).mean(axis=axes, keepdims=True)
    expected = (Y - mu) / np.sqrt(var + eps)
    Z = BatchNorm(shape, eps=eps)(None, Y.astype(dtype))
    assert Z.dtype == dtype
    np.testing.assert_allclose(Z, expected, rtol=0, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("shape, axes", [(IMG, (0, 2, 3)), (VEC, (0,))])
def test_batchnorm_output_zero_mean_unit_variance_per_channel(shape, axes):
    Y = _data(shape, n=6, seed=1)
    eps = 1e-2
    var_in = Y.var(axis=axes)
    Z = BatchNorm(shape, eps=eps)(None, Y)
    np.testing.assert_allclose(Z.mean(axis=axes), 0.0, atol=1e-14)
    # biased output variance is exactly σ²/(σ² + ε) per channel (→ 1 as ε → 0)
    np.testing.assert_allclose(Z.var(axis=axes), var_in / (var_in + eps), rtol=1e-13)
    Z0 = BatchNorm(shape, eps=1e-12)(None, Y)
    np.testing.assert_allclose(Z0.var(axis=axes), 1.0, rtol=1e-10)


def test_batchnorm_couples_examples_instancenorm_does_not():
    Y = _data(IMG, n=3, seed=2)
    Y2 = Y.copy()
    Y2[1] += 5.0 * np.random.default_rng(3).standard_normal(IMG)
    bn, inn = BatchNorm(IMG), InstanceNorm(IMG)
    assert not np.allclose(bn(None, Y)[0], bn(None, Y2)[0])
    np.testing.assert_array_equal(inn(None, Y)[0], inn(None, Y2)[0])
    np.testing.assert_array_equal(inn(None, Y)[2], inn(None, Y2)[2])


def test_batchnorm_float32_large_mean_two_pass_variance():
    """Data with mean 1000 and unit spread: a one-pass E[Y²] − E[Y]² variance
    would lose every digit in float32; the two-pass variance keeps ~1e-4."""
    rng = np.random.default_rng(4)
    Y = 1000.0 + rng.standard_normal((8, *IMG))
    Z64 = BatchNorm(IMG)(None, Y)
    Z32 = BatchNorm(IMG)(None, Y.astype(np.float32))
    assert Z32.dtype == np.float32
    np.testing.assert_allclose(Z32, Z64, atol=1e-3)


# -------------------------------------------------------------- InstanceNorm
def test_instancenorm_images_per_example_and_channel():
    Y = _data(IMG, n=3, seed=5)
    eps = 1e-3
    Z = InstanceNorm(IMG, eps=eps)(None, Y)
    for i in range(Y.shape[0]):
        for c in range(IMG[0]):
            y = Y[i, c]
            np.testing.assert_allclose(Z[i, c], (y - y.mean()) / np.sqrt(y.var() + eps), rtol=0, atol=1e-13)
    np.testing.assert_allclose(Z.mean(axis=(2, 3)), 0.0, atol=1e-14)
    v = Y.var(axis=(2, 3))
    np.testing.assert_allclose(Z.var(axis=(2, 3)), v / (v + eps), rtol=1e-13)


def test_instancenorm_vectors_is_layer_norm():
    Y = _data((6,), n=4, seed=6)
    eps = 1e-3
    Z = InstanceNorm(6, eps=eps)(None, Y)
    mu = Y.mean(axis=1, keepdims=True)
    expected = (Y - mu) / np.sqrt(Y.var(axis=1, keepdims=True) + eps)
    np.testing.assert_allclose(Z, expected, rtol=0, atol=1e-13)


# -------------------------------------------------------------------- TVNorm
@pytest.mark.parametrize("shape", [IMG, VEC])
def test_tvnorm_pixel_norms(shape):
    Y = _data(shape, n=3, seed=7, loc=0.0, scale=0.2)  # small values: ε visibly matters
    eps = 1e-2
    Z = TVNorm(shape, eps=eps)(None, Y)
    S = (Y**2).sum(axis=1)
    np.testing.assert_allclose((Z**2).sum(axis=1), S / (S + eps), rtol=1e-13)
    # each pixel's channel vector keeps its direction
    np.testing.assert_allclose(Z, Y / np.sqrt(S + eps)[:, None], rtol=1e-13)


# ------------------------------------------------- affine scale and bias
@pytest.mark.parametrize("cls", [BatchNorm, InstanceNorm, TVNorm])
@pytest.mark.parametrize("shape", [IMG, VEC])
def test_affine_variant_is_scale_and_bias_of_plain(cls, shape):
    Y = _data(shape, n=3, seed=8)
    C = shape[0]
    rng = np.random.default_rng(9)
    s, b = rng.standard_normal(C), rng.standard_normal(C)
    plain, aff = cls(shape), cls(shape, affine=True)
    assert plain.n_theta == 0 and aff.n_theta == 2 * C
    Z = aff(np.concatenate([s, b]), Y)
    np.testing.assert_allclose(Z, _bc(s, Y.ndim) * plain(None, Y) + _bc(b, Y.ndim), rtol=1e-13, atol=1e-14)
    # initial θ = (1, 0) reproduces the plain normalization
    np.testing.assert_array_equal(aff.init_theta(), np.concatenate([np.ones(C), np.zeros(C)]))
    np.testing.assert_allclose(aff(aff.init_theta(), Y), plain(None, Y), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [IMG, VEC])
def test_affine_scaling_direct_formula_and_gradients(shape):
    rng = np.random.default_rng(10)
    Y = rng.standard_normal((3, *shape))
    C = shape[0]
    s, b = rng.standard_normal(C), rng.standard_normal(C)
    el = AffineScaling(shape)
    theta = np.concatenate([s, b])
    Z, cache = el.forward(theta, Y)
    np.testing.assert_allclose(Z, _bc(s, Y.ndim) * Y + _bc(b, Y.ndim), rtol=1e-15)
    W = rng.standard_normal(Z.shape)
    axes = tuple(range(2, Y.ndim))
    G = el.JthetaTmv(W, theta, Y, cache, per_example=True)
    ps = (W * Y).sum(axis=axes) if axes else W * Y
    pb = W.sum(axis=axes) if axes else W
    np.testing.assert_allclose(G, np.concatenate([ps, pb], axis=1), rtol=1e-13)
    np.testing.assert_allclose(el.JYTmv(W, theta, Y, cache), _bc(s, Y.ndim) * W, rtol=1e-15)


def test_batchnorm_per_example_theta_gradient():
    """Row i is (Σ_pixels W_i ⊙ N(Y)_i, Σ_pixels W_i) per channel, although N couples the examples."""
    Y = _data(IMG, n=4, seed=11)
    el = BatchNorm(IMG, affine=True)
    rng = np.random.default_rng(12)
    theta = np.concatenate([1 + rng.standard_normal(IMG[0]), rng.standard_normal(IMG[0])])
    Z, cache = el.forward(theta, Y)
    W = rng.standard_normal(Z.shape)
    Yhat = BatchNorm(IMG)(None, Y)
    G = el.JthetaTmv(W, theta, Y, cache, per_example=True)
    expected = np.concatenate([(W * Yhat).sum(axis=(2, 3)), W.sum(axis=(2, 3))], axis=1)
    np.testing.assert_allclose(G, expected, rtol=1e-13)
    np.testing.assert_allclose(el.JthetaTmv(W, theta, Y, cache), expected.sum(axis=0), rtol=1e-13)


# ------------------------------------------------------------- Jacobians
_PLAIN = [
    pytest.param(lambda s: BatchNorm(s, eps=1e-3), id="batchnorm"),
    pytest.param(lambda s: InstanceNorm(s, eps=1e-3), id="instancenorm"),
    pytest.param(lambda s: TVNorm(s, eps=1e-2), id="tvnorm"),
]


@pytest.mark.parametrize("make", _PLAIN)
@pytest.mark.parametrize("shape", [(2, 2, 3), (4,)])
def test_parameter_free_jacobian_is_symmetric(make, shape):
    el = make(shape)
    Y = _data(shape, n=3, seed=13)
    J = el.jacobian(None, Y, wrt="Y").todense()
    assert J.shape == (Y.size, Y.size)
    # a genuine coupling (not a diagonal matrix, which would be trivially symmetric)
    assert np.abs(J - np.diag(np.diag(J))).max() > 0.05 * np.abs(J).max() > 0
    np.testing.assert_allclose(J, J.T, rtol=0, atol=1e-14 * np.abs(J).max())


def test_batchnorm_dense_jacobian_known_answer():
    """Per feature c: J_c = (I − 11ᵀ/n − x̂x̂ᵀ/n)/sqrt(σ_c² + ε) over the n examples, no coupling across features."""
    n, F, eps = 5, 3, 1e-3
    Y = _data((F,), n=n, seed=14)
    J = BatchNorm(F, eps=eps).jacobian(None, Y, wrt="Y").todense()
    ref = np.zeros((n * F, n * F))
    for c in range(F):
        y = Y[:, c]
        r = 1 / np.sqrt(y.var() + eps)
        xh = (y - y.mean()) * r
        idx = np.arange(n) * F + c  # flat index of Y[i, c] is i*F + c
        ref[np.ix_(idx, idx)] = r * (np.eye(n) - np.ones((n, n)) / n - np.outer(xh, xh) / n)
    np.testing.assert_allclose(J, ref, rtol=0, atol=1e-14)


def test_tvnorm_dense_jacobian_known_answer():
    """Per example and pixel: J = (I − ŷŷᵀ)/r over the channels, ŷ = Y/r."""
    shape, eps = (3, 1, 2), 1e-2
    Y = _data(shape, n=2, seed=15, loc=0.0, scale=0.5)
    J = TVNorm(shape, eps=eps).jacobian(None, Y, wrt="Y").todense()
    ref = np.zeros_like(J)
    flat = np.arange(Y.size).reshape(Y.shape)
    for i in range(Y.shape[0]):
        for p in np.ndindex(*shape[1:]):
            y = Y[(i, slice(None)) + p]
            r = np.sqrt(y @ y + eps)
            yh = y / r
            idx = flat[(i, slice(None)) + p]
            ref[np.ix_(idx, idx)] = (np.eye(shape[0]) - np.outer(yh, yh)) / r
    np.testing.assert_allclose(J, ref, rtol=0, atol=1e-14)


@pytest.mark.parametrize("cls, axes", [(BatchNorm, (0, 2, 3)), (InstanceNorm, (2, 3))])
def test_standardization_null_space_and_scaling_direction(cls, axes):
    """Shift invariance: J·1 = 0.  Scaling: J·(Y − μ) = N(Y)·ε/(σ² + ε)."""
    eps = 1e-2
    Y = _data(IMG, n=3, seed=16, loc=0.0, scale=0.3)
    el = cls(IMG, eps=eps)
    Z, cache = el.forward(None, Y)
    np.testing.assert_allclose(el.JYmv(np.ones_like(Y), None, Y, cache), 0.0, atol=1e-13)
    Xc = Y - Y.mean(axis=axes, keepdims=True)
    var = (Xc**2).mean(axis=axes, keepdims=True)
    np.testing.assert_allclose(el.JYmv(Xc, None, Y, cache), Z * eps / (var + eps), rtol=1e-12, atol=1e-15)


def test_tvnorm_radial_direction():
    """J·Y = N(Y)·ε/r²: only ε keeps the map from being scale invariant."""
    eps = 1e-2
    Y = _data(IMG, n=2, seed=17, loc=0.0, scale=0.2)
    el = TVNorm(IMG, eps=eps)
    Z, cache = el.forward(None, Y)
    r2 = (Y**2).sum(axis=1, keepdims=True) + eps
    np.testing.assert_allclose(el.JYmv(Y, None, Y, cache), Z * eps / r2, rtol=1e-12, atol=1e-15)


def test_empty_dtheta_of_parameter_free_element_is_ignored():
    Y = _data(IMG, n=2, seed=18)
    dY = np.random.default_rng(19).standard_normal(Y.shape)
    el = BatchNorm(IMG)
    np.testing.assert_array_equal(el.Jmv(np.zeros(0), dY, None, Y), el.JYmv(dY, None, Y))


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("cls", [BatchNorm, InstanceNorm, TVNorm])
def test_bad_constructor_arguments(cls):
    with pytest.raises(ValueError, match=r"eps must be positive, got 0"):
        cls(IMG, eps=0)
    with pytest.raises(ValueError, match=r"eps must be positive, got -1e-05"):
        cls(IMG, eps=-1e-5)
    with pytest.raises(TypeError, match=r"eps must be a finite real number, got nan"):
        cls(IMG, eps=float("nan"))
    with pytest.raises(TypeError, match=r"eps must be a finite real number, got '1e-5'"):
        cls(IMG, eps="1e-5")
    with pytest.raises(ValueError, match=r"shape must be a non-empty tuple of positive ints, got \(3, 0, 4\)"):
        cls((3, 0, 4))
    with pytest.raises(ValueError, match=r"shape must be a non-empty tuple of positive ints, got \(\)"):
        cls(())
    with pytest.raises(TypeError, match=r"affine must be True or False, got 1"):
        cls(IMG, affine=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'epsilon'"):
        cls(IMG, epsilon=1e-3)
    with pytest.raises(TypeError, match="positional argument"):
        cls(IMG, 1e-3)


def test_bad_affine_scaling_arguments():
    with pytest.raises(ValueError, match=r"shape must be a non-empty tuple of positive ints, got \(0,\)"):
        AffineScaling(0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'affine'"):
        AffineScaling(3, affine=False)


def test_instancenorm_rejects_single_value_statistics():
    with pytest.raises(ValueError, match=r"InstanceNorm statistics over 1 value \(features\); need at least 2"):
        InstanceNorm(1)
    with pytest.raises(ValueError, match=r"over 1 value \(pixels per channel\); need at least 2"):
        InstanceNorm((3, 1, 1))


@pytest.mark.parametrize("el", [BatchNorm(IMG), TVNorm(IMG, affine=True), AffineScaling(IMG)], ids=repr)
def test_wrong_data_shape_is_rejected(el):
    theta = el.init_theta()
    with pytest.raises(ValueError, match=r"Y must have shape \(n_examples, 3, 4, 5\) for " + type(el).__name__):
        el.forward(theta, np.zeros((2, 3, 5, 4)))
    with pytest.raises(ValueError, match=r"Y must have shape \(n_examples, 3, 4, 5\)"):
        el.forward(theta, np.zeros((3, 4, 5)))


def test_repr_and_layout():
    assert repr(BatchNorm(IMG)) == "BatchNorm(shape=(3, 4, 5), eps=1e-05, affine=False)"
    assert repr(TVNorm(4, eps=1e-3, affine=True)) == "TVNorm(shape=(4,), eps=0.001, affine=True)"
    assert repr(AffineScaling(IMG)) == "AffineScaling(shape=(3, 4, 5))"
    el = InstanceNorm(IMG, affine=True)
    assert el.layout.names == ("s", "b") and el.n_theta == 6
    assert el.shape_in == el.shape_out == IMG


# ------------------------------------------------------ overflowing statistics
_ENGINES = ["numpy"] + (["numba"] if __import__("meganet.kernels", fromlist=["x"]).numba_available() else [])


@pytest.mark.parametrize("engine", _ENGINES)
@pytest.mark.parametrize("dtype, big", [(np.float64, 1e300), (np.float32, 1e30)])
@pytest.mark.parametrize("cls, shape", [(BatchNorm, IMG), (BatchNorm, VEC), (InstanceNorm, IMG),
                                        (InstanceNorm, VEC)])
def test_overflowing_variance_raises_instead_of_returning_zeros(cls, shape, dtype, big, engine):
    """|Y| ≈ 1e300 squares to inf: σ² = inf would give N(Y) = 0 silently (it did on the numba engine)."""
    el = cls(shape, affine=True, engine=engine)
    Y = (big * _data(shape, n=4)).astype(dtype)
    assert np.isfinite(Y).all()
    theta = el.init_theta().astype(dtype)
    for call in (lambda: el.forward(theta, Y), lambda: el.apply(theta, Y)):
        with pytest.raises(FloatingPointError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith(f"{cls.__name__}(shape=") and "variance" in msg and "not finite" in msg
        amax = float(np.abs(Y).max())
        assert f"the data reach |Y| = {amax:.3g}" in msg and "rescale the input" in msg  # the scale, what to do


@pytest.mark.parametrize("engine", _ENGINES)
def test_overflowing_mean_raises(engine):
    el = BatchNorm(VEC, engine=engine)
    Y = np.full((4, *VEC), 1.7e308)  # finite values whose sum is not
    with pytest.raises(FloatingPointError, match=r"BatchNorm\(shape=\(4,\).*: the mean .* is not finite"):
        el.forward(np.zeros(0), Y)


@pytest.mark.parametrize("engine", _ENGINES)
def test_large_but_representable_statistics_still_work(engine):
    Y = 1e150 * _data(IMG, n=4)  # variance ≈ 1e300: finite
    Z = BatchNorm(IMG, engine=engine).apply(np.zeros(0), Y)
    np.testing.assert_allclose(Z.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(Z.var(axis=(0, 2, 3)), 1, rtol=1e-10)


@pytest.mark.parametrize("dtype, big", [(np.float64, 1e300), (np.float32, 1e30)])
def test_tvnorm_overflowing_pixel_norm_raises(dtype, big):
    el = TVNorm(IMG)
    Y = (big * _data(IMG)).astype(dtype)
    with pytest.raises(FloatingPointError, match=r"TVNorm\(shape=\(3, 4, 5\).*: the squared norm .* not finite"
                                                 r".*rescale"):
        el.forward(np.zeros(0, dtype=dtype), Y)
