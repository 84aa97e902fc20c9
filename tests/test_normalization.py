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


# ------------------------------------------- BatchNorm evaluation mode, running statistics
from meganet.normalization import (estimate_running_statistics, load_running_statistics, named_elements,  # noqa: E402
                                   normalizations, reset_running_statistics, running_statistics_state,
                                   set_training, track_running_statistics)


def _eval_bn(shape, affine=False, seed=30, **kw):
    bn = BatchNorm(shape, affine=affine, **kw)
    rng = np.random.default_rng(seed)
    bn.running_mean = rng.standard_normal(bn.n_channels)
    bn.running_var = 0.5 + rng.random(bn.n_channels)
    bn.training = False
    return bn


def _batch_stats(Y):
    axes = (0,) + tuple(range(2, Y.ndim))
    M = Y.size // Y.shape[1]
    return Y.mean(axis=axes), Y.var(axis=axes) * M / (M - 1)


@pytest.mark.parametrize("shape", [IMG, VEC])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_batchnorm_eval_mode_is_the_running_statistics_formula(shape, dtype, tol):
    bn = _eval_bn(shape, affine=True, eps=1e-3)
    rng = np.random.default_rng(31)
    theta = np.concatenate([1 + rng.random(bn.n_channels), rng.standard_normal(bn.n_channels)])
    Y = _data(shape, n=3, seed=32)
    nd = 1 + len(shape)
    s, b = _bc(theta[:bn.n_channels], nd), _bc(theta[bn.n_channels:], nd)
    r = 1 / np.sqrt(_bc(bn.running_var, nd) + 1e-3)
    expected = s * (Y - _bc(bn.running_mean, nd)) * r + b
    Z = bn(theta.astype(dtype), Y.astype(dtype))
    assert Z.dtype == dtype
    np.testing.assert_allclose(Z, expected, rtol=0, atol=tol * np.abs(expected).max())
    # the Jacobian in Y is r·s·dY, symmetric in both modes' caches
    dY = rng.standard_normal(Y.shape)
    np.testing.assert_allclose(bn.JYmv(dY, theta, Y), s * r * dY, rtol=1e-14)
    np.testing.assert_allclose(bn.JYTmv(dY, theta, Y), s * r * dY, rtol=1e-14)


@pytest.mark.parametrize("shape", [IMG, VEC])
def test_batchnorm_eval_mode_does_not_couple_examples(shape):
    bn = _eval_bn(shape, affine=True)
    theta = np.random.default_rng(33).standard_normal(bn.n_theta)
    Y = _data(shape, n=4, seed=34)
    Z = bn(theta, Y)
    for i in range(4):
        np.testing.assert_array_equal(bn(theta, Y[i:i + 1]), Z[i:i + 1])
    W = np.random.default_rng(35).standard_normal(Y.shape)
    g = bn.JthetaTmv(W, theta, Y, per_example=True)
    for i in range(4):
        np.testing.assert_allclose(bn.JthetaTmv(W[i:i + 1], theta, Y[i:i + 1]), g[i], rtol=1e-13)


def test_batchnorm_cache_keeps_the_mode_it_was_made_in():
    bn = BatchNorm(IMG)
    Y = _data(IMG, n=3, seed=36)
    dY = np.random.default_rng(37).standard_normal(Y.shape)
    _, cache = bn.forward(None, Y)
    J_train = bn.JYmv(dY, None, Y, cache)
    bn.training = False
    np.testing.assert_array_equal(bn.JYmv(dY, None, Y, cache), J_train)  # the train-mode cache
    np.testing.assert_allclose(bn.JYmv(dY, None, Y), dY / np.sqrt(1 + bn.eps))  # recomputed: eval, defaults 0/1


def test_eval_mode_before_any_statistics_uses_defaults():
    bn = BatchNorm(VEC, eps=1e-3)
    np.testing.assert_array_equal(bn.running_mean, np.zeros(4))
    np.testing.assert_array_equal(bn.running_var, np.ones(4))
    Y = _data(VEC, n=2)
    np.testing.assert_allclose(set_training(bn, False)(None, Y), Y / np.sqrt(1 + 1e-3), rtol=1e-15)


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("shape", [IMG, VEC])
def test_tracking_updates_follow_the_momentum_formula(shape, momentum):
    bn = BatchNorm(shape, momentum=momentum)
    mean, var = np.zeros(shape[0]), np.ones(shape[0])
    with track_running_statistics(bn) as net:
        assert net is bn
        for k in range(3):
            Y = _data(shape, n=3 + k, seed=40 + k)
            bn.forward(None, Y)
            bm, bv = _batch_stats(Y)
            mean, var = (1 - momentum) * mean + momentum * bm, (1 - momentum) * var + momentum * bv
            np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(bn.running_var, var, rtol=1e-13)
    assert bn.num_batches_tracked == 3 and not bn._tracking


def test_momentum_none_is_the_cumulative_average_and_explicit_update_matches():
    bn, bn2 = BatchNorm(IMG, momentum=None), BatchNorm(IMG, momentum=None)
    Ys = [_data(IMG, n=3, seed=50 + k) for k in range(4)]
    with track_running_statistics(bn):
        for Y in Ys:
            bn.apply(None, Y)
    stats = [_batch_stats(Y) for Y in Ys]
    np.testing.assert_allclose(bn.running_mean, np.mean([m for m, _ in stats], axis=0), rtol=1e-13)
    np.testing.assert_allclose(bn.running_var, np.mean([v for _, v in stats], axis=0), rtol=1e-13)
    for Y in Ys:  # the explicit update from forward caches gives the same estimates
        bn2.update_running_statistics(bn2.forward(None, Y)[1])
    np.testing.assert_allclose(bn2.running_mean, bn.running_mean, rtol=1e-15)
    np.testing.assert_allclose(bn2.running_var, bn.running_var, rtol=1e-15)


def test_forward_outside_the_context_leaves_the_buffers_unchanged():
    bn = _eval_bn(IMG, affine=True)
    bn.training = True
    mean, var = bn.running_mean.copy(), bn.running_var.copy()
    theta = bn.init_theta()
    Y = _data(IMG, n=3, seed=60)
    dY = np.ones_like(Y)
    _, cache = bn.forward(theta, Y)
    bn.Jmv(None, dY, theta, Y)
    bn.JTmv(dY, theta, Y)
    bn.jvp(theta, Y, dY=dY)
    with track_running_statistics(bn):
        pass
    bn.apply(theta, Y)
    np.testing.assert_array_equal(bn.running_mean, mean)
    np.testing.assert_array_equal(bn.running_var, var)
    assert bn.num_batches_tracked == 0
    # evaluation mode does not update, even inside the context
    bn.training = False
    with track_running_statistics(bn):
        bn.forward(theta, Y)
    np.testing.assert_array_equal(bn.running_mean, mean)
    with pytest.raises(ValueError, match="made in evaluation mode"):
        bn.update_running_statistics(bn.forward(theta, Y)[1])


def test_tracking_a_single_vector_example_raises():
    bn = BatchNorm(VEC)
    with pytest.raises(ValueError, match=r"running variance needs at least 2 values per channel \(got 1\)"):
        with track_running_statistics(bn):
            bn.forward(None, _data(VEC, n=1))
    assert not bn._tracking


def _jmiv_net():
    from meganet.networks import jmiv_network
    return jmiv_network("parabolic", in_channels=2, image_shape=(4, 4), channels=(2, 4), n_steps=1,
                        normalization="batch")


def test_set_training_reaches_nested_normalizations():
    from meganet.layers import SingleLayer
    from meganet.networks import Meganet
    from meganet.transforms import Dense

    net = _jmiv_net()
    bns = [el for el in normalizations(net) if isinstance(el, BatchNorm)]
    # opening layer, the blocks' layers and the connectors all hold one
    assert len(bns) >= 4 and all(bn.training for bn in bns)
    set_training(net, False)
    assert not any(el.training for el in normalizations(net))
    paths = [p for p, el in named_elements(net) if isinstance(el, BatchNorm)]
    assert len(paths) == len(set(paths)) == len(bns)
    assert set_training(net, True) is net and all(el.training for el in normalizations(net))

    bn, inn = BatchNorm(6), InstanceNorm(6)
    layer = Meganet([SingleLayer(Dense(4, 6), normalization=bn), SingleLayer(Dense(6, 6), normalization=inn)])
    assert list(normalizations(layer)) == [bn, inn]  # each once, although also in the layers' elements
    set_training(layer, False)
    assert not bn.training and not inn.training
    with pytest.raises(TypeError, match="flag must be True or False, got 0"):
        set_training(layer, 0)
    with pytest.raises(TypeError, match="element must be a meganet Element"):
        set_training("net", True)


def test_eval_network_does_not_couple_examples():
    net = _jmiv_net()
    theta = net.init_theta(rng=70)
    Y = np.random.default_rng(71).standard_normal((4, *net.shape_in))
    estimate_running_statistics(net, theta, Y, batch_size=2)
    set_training(net, False)
    Z = net(theta, Y)
    np.testing.assert_allclose(net(theta, Y[1:2]), Z[1:2], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", [IMG, VEC])
def test_estimate_on_one_batch_equals_the_batch_statistics(shape):
    bn = BatchNorm(shape, momentum=0.3)
    bn.training = False
    Y = _data(shape, n=5, seed=80)
    assert estimate_running_statistics(bn, None, Y, batch_size=5) is bn
    mean, var = _batch_stats(Y)
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-13)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-13)
    assert not bn.training and bn.num_batches_tracked == 1 and bn._accumulator is None
    # in chunks (incl. a last chunk of one example): the pooled statistics of the whole set
    reset_running_statistics(bn)
    estimate_running_statistics(bn, None, Y, batch_size=2)
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-13)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-13)
    assert bn.num_batches_tracked == 3


def test_estimate_in_a_network_uses_the_layer_inputs():
    from meganet.layers import SingleLayer
    from meganet.transforms import Dense

    bn = BatchNorm(6)
    layer = SingleLayer(Dense(4, 6), normalization=bn, bias=False)
    theta = layer.init_theta(rng=90)
    Y = np.random.default_rng(91).standard_normal((7, 4))
    estimate_running_statistics(layer, theta, Y, batch_size=3)
    U = layer.elements[0](layer.split(theta).K, Y)  # the input of the BatchNorm
    np.testing.assert_allclose(bn.running_mean, U.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bn.running_var, U.var(axis=0, ddof=1), rtol=1e-12)
    with pytest.raises(ValueError, match=r"batch_size must be"):
        estimate_running_statistics(layer, theta, Y, batch_size=0)


def test_running_statistics_state_round_trip(tmp_path):
    net = _jmiv_net()
    theta = net.init_theta(rng=100)
    Y = np.random.default_rng(101).standard_normal((3, *net.shape_in))
    with track_running_statistics(net):
        net.apply(theta, Y)
    state = running_statistics_state(net)
    n_bn = sum(isinstance(el, BatchNorm) for el in normalizations(net))
    assert len(state) == 3 * n_bn
    assert all(isinstance(v, np.ndarray) for v in state.values())
    np.savez(tmp_path / "stats.npz", **state)
    Z_ref = set_training(net, False)(theta, Y)

    net2 = _jmiv_net()
    with np.load(tmp_path / "stats.npz") as saved:
        load_running_statistics(net2, saved)
    for k, v in running_statistics_state(net2).items():
        np.testing.assert_array_equal(v, state[k])
    np.testing.assert_array_equal(set_training(net2, False)(theta, Y), Z_ref)
    reset_running_statistics(net2)
    assert all(np.all(v == 0) for k, v in running_statistics_state(net2).items() if k.endswith("running_mean"))

    key = next(k for k in state if k.endswith("running_var"))
    bad = dict(state)
    bad[key] = -np.ones_like(state[key])
    before = running_statistics_state(net2)
    with pytest.raises(ValueError, match=r"running_var of BatchNorm.* must be non-negative.*state key prefix"):
        load_running_statistics(net2, bad)
    for k, v in running_statistics_state(net2).items():  # nothing changed
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match=r"missing keys \['" + key.replace(".", r"\.") + r"'\]"):
        load_running_statistics(net2, {k: v for k, v in state.items() if k != key})
    with pytest.raises(ValueError, match=r"unexpected keys \['extra'\]"):
        load_running_statistics(net2, {**state, "extra": np.zeros(1)})


def test_bad_momentum_and_running_statistics_raise():
    for m in (0, 0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"momentum must be in \(0, 1\] or None \(cumulative average\), got "):
            BatchNorm(IMG, momentum=m)
    for m in (float("nan"), "0.1", True):
        with pytest.raises(TypeError, match=r"momentum must be a real number in \(0, 1\] or None, got "):
            BatchNorm(IMG, momentum=m)
    assert BatchNorm(IMG, momentum=None).momentum is None and BatchNorm(IMG, momentum=1).momentum == 1.0
    bn = BatchNorm(IMG)
    with pytest.raises(ValueError, match=r"running_mean of BatchNorm\(shape=\(3, 4, 5\).* must have shape \(3,\) "
                                         r"\(one value per channel\), got \(4,\)"):
        bn.running_mean = np.zeros(4)
    with pytest.raises(ValueError, match=r"running_var of .* must have shape \(3,\).*got \(1, 3\)"):
        bn.running_var = np.ones((1, 3))
    with pytest.raises(ValueError, match=r"running_var of .* contains 1 non-finite value\(s\)"):
        bn.running_var = np.array([1.0, np.inf, 1.0])
    with pytest.raises(ValueError, match=r"running_mean of .* contains 1 non-finite value\(s\)"):
        bn.running_mean = np.array([0.0, np.nan, 0.0])
    with pytest.raises(ValueError, match=r"running_var of .* must be non-negative, got minimum -1"):
        bn.running_var = np.array([1.0, -1.0, 1.0])
    with pytest.raises(TypeError, match=r"training must be True or False, got 'yes'"):
        bn.training = "yes"
    with pytest.raises(TypeError, match="cache must be the cache of a training-mode forward"):
        bn.update_running_statistics(object())
    np.testing.assert_array_equal(bn.running_mean, 0.0)  # unchanged by the failed assignments
    src = np.arange(3.0)
    bn.running_mean = src
    src[0] = 7.0
    assert bn.running_mean[0] == 0.0  # a copy, not an alias


def test_repr_shows_momentum_and_eval_mode():
    assert repr(BatchNorm(IMG, momentum=None)) == "BatchNorm(shape=(3, 4, 5), eps=1e-05, momentum=None, affine=False)"
    assert repr(_eval_bn(VEC)) == "BatchNorm(shape=(4,), eps=1e-05, training=False, affine=False)"


@pytest.mark.parametrize("shape", [IMG, VEC])
def test_engines_agree_on_batch_statistics_and_eval_mode(shape):
    Y = _data(shape, n=3, seed=110)
    results = []
    for engine in _ENGINES:
        bn = BatchNorm(shape, engine=engine)
        bn.update_running_statistics(bn.forward(None, Y)[1])
        Z = set_training(bn, False)(None, Y)
        results.append((bn.running_mean, bn.running_var, Z))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_instancenorm_eval_mode_equals_train_mode():
    inn = InstanceNorm(IMG, affine=True)
    theta = np.random.default_rng(120).standard_normal(inn.n_theta)
    Y = _data(IMG, n=2, seed=121)
    Z = inn(theta, Y)
    set_training(inn, False)
    assert not inn.training and not hasattr(inn, "running_mean")
    np.testing.assert_array_equal(inn(theta, Y), Z)
