"""Exact Hessian products of the training objective by second-order adjoints (issue 15).

``NetworkObjective.hessian_matvec(x, v, kind='exact')`` is checked like a
derivative: Taylor test of the hand-coded gradient (order 2, the verdict logic
of :func:`meganet.testing.taylor_test`), symmetry ``⟨u, H v⟩ = ⟨H u, v⟩``, in
float64 and float32; independently, on a small network the Hessian assembled
column by column equals the central-difference Jacobian of the gradient and is
symmetric; Gauss-Newton equals exact at zero residual; the default product is
still Gauss-Newton; networks with elements lacking second-order products say so.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.integrators import AntisymmetricResNet, ResNet, RK4ResNet, TimeBasis
from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.layers import SingleLayer, SymmetricLayer
from meganet.losses import LeastSquares, LogisticRegression, SoftmaxCrossEntropy
from meganet.networks import Meganet
from meganet.objectives import NetworkObjective
from meganet.regularizers import Tikhonov
from meganet.regularizers.feature_smoothness import FeatureSmoothness
from meganet.testing import taylor_test
from meganet.testing.second_order import symmetry_test
from meganet.transforms import Dense
from meganet.transforms.conv2d import Conv2d


def _net(act="tanh"):
    return Meganet([
        ResNet(SingleLayer(Dense(3, 3), activation=act), n_steps=4, final_time=1.0),
        SingleLayer(Dense(3, 4), activation="sigmoid"),
        AntisymmetricResNet(4, n_steps=3, final_time=1.0, gamma=0.1, basis=TimeBasis.hat(3, 2)),
    ])


def _objective(loss_name, dtype=np.float64, n=7, seed=0, **kw):
    rng = np.random.default_rng(seed)
    net = kw.pop("network", None) or _net()
    Y = rng.standard_normal((n, *net.shape_in)).astype(dtype)
    if loss_name == "softmax":
        loss, C = SoftmaxCrossEntropy(net.shape_out, 3), np.arange(n) % 3
    elif loss_name == "logistic":
        loss, C = LogisticRegression(net.shape_out), np.arange(n) % 2
    else:
        loss, C = LeastSquares(net.shape_out, 2), rng.standard_normal((n, 2)).astype(dtype)
    return NetworkObjective(net, loss, Y, C, **kw)


def _point(obj, seed=1):
    x = obj.init_x(rng=seed)
    rng = np.random.default_rng(seed + 10)
    return (x + 0.3 * rng.standard_normal(x.shape).astype(x.dtype)).astype(x.dtype)


def _direction(obj, x, seed, rel=0.5):
    v = np.random.default_rng(seed).standard_normal(obj.n)
    return (rel * np.linalg.norm(x) / np.linalg.norm(v) * v).astype(x.dtype)


def _hv(obj, kind="exact"):
    def hv(x, v):
        return obj.hessian_matvec(x, v, obj.value(x)[1], kind=kind)
    return hv


CONFIGS = {
    "softmax": dict(),
    "softmax-tikhonov": dict(regularizer="tikhonov", classifier_regularizer="tikhonov"),
    "logistic": dict(),
    "least_squares": dict(),
    "least_squares-output-smoothness": dict(output_regularizer=True),
    "softmax-chunked": dict(chunk_size=3),
}


def _make(name, dtype=np.float64):
    loss_name = name.split("-")[0]
    opts = dict(CONFIGS[name])
    probe = _net()
    if opts.get("regularizer") == "tikhonov":
        opts["regularizer"] = Tikhonov(probe.n_theta, alpha=1e-2)
        opts["classifier_regularizer"] = Tikhonov({"softmax": SoftmaxCrossEntropy(4, 3)}[loss_name].n_w, alpha=1e-3)
    if opts.get("output_regularizer"):  # an image network: the smoother acts on feature maps
        opts["output_regularizer"] = FeatureSmoothness((2, 4, 4), alpha=0.1)
        opts["network"] = Meganet([ResNet(SingleLayer(Conv2d(2, 2, (4, 4))), n_steps=2, final_time=1.0),
                                   SingleLayer(Conv2d(2, 2, (4, 4)), activation="sigmoid")])
        opts["n"] = 3
    return _objective(loss_name, dtype, **opts)


@pytest.mark.parametrize("dtype", [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_exact_hessian_taylor_and_symmetry(name, dtype):
    obj = _make(name, dtype)
    x = _point(obj)
    for seed in (2, 3):
        v = _direction(obj, x, seed)
        rep = taylor_test(obj.gradient, x, v, jmv=_hv(obj))
        assert rep.ok, "\n" + rep.table()
    u, w = _direction(obj, x, 4, 1.0), _direction(obj, x, 5, 1.0)
    sym = symmetry_test(lambda a: _hv(obj)(x, a), u, w)
    assert sym.ok, str(sym)


def test_gauss_newton_fails_the_taylor_test_where_exact_passes():
    """The Taylor test can tell: with a nonzero residual the Gauss-Newton product is not ∇²f."""
    obj = _make("softmax")
    x = _point(obj)
    v = _direction(obj, x, 2)
    assert taylor_test(obj.gradient, x, v, jmv=_hv(obj, "exact")).ok
    assert not taylor_test(obj.gradient, x, v, jmv=_hv(obj, "gauss_newton")).ok


def _assemble(obj, x, kind):
    state = obj.value(x)[1]
    eye = np.eye(obj.n, dtype=x.dtype)
    return np.stack([obj.hessian_matvec(x, eye[i], state, kind=kind) for i in range(obj.n)], axis=1)


@pytest.mark.parametrize("block", ["resnet", "rk4", "parabolic", "verlet", "leapfrog-reversible"])
@pytest.mark.parametrize("loss_name", ["softmax", "least_squares"])
def test_assembled_hessian_equals_finite_difference_jacobian_of_gradient(loss_name, block):
    if block == "verlet":
        first = HamiltonianVerlet(1, 1, n_steps=3, final_time=1.0, bias="vector")
    elif block == "leapfrog-reversible":
        first = Leapfrog(2, n_steps=3, final_time=1.0, basis=TimeBasis.hat(3, 2), reversible=True)
    else:
        integrator = {"resnet": ResNet, "rk4": RK4ResNet, "parabolic": ResNet}[block]
        layer = SymmetricLayer(Dense(2, 3)) if block == "parabolic" else SingleLayer(Dense(2, 2))
        first = integrator(layer, n_steps=3, final_time=1.0, basis=TimeBasis.hat(3, 2))
    net = Meganet([first, SingleLayer(Dense(2, 3), activation="sigmoid")])
    obj = _objective(loss_name, network=net, n=5, regularizer=Tikhonov(net.n_theta, alpha=1e-2))
    x = _point(obj)
    H = _assemble(obj, x, "exact")
    assert np.linalg.norm(H - H.T) <= 1e-13 * np.linalg.norm(H)
    step = 1e-5
    eye = np.eye(obj.n)
    FD = np.stack([(obj.gradient(x + step * eye[i]) - obj.gradient(x - step * eye[i])) / (2 * step)
                   for i in range(obj.n)], axis=1)
    assert np.linalg.norm(H - FD) <= 1e-8 * np.linalg.norm(H)
    # the exact Hessian is not the Gauss-Newton one here (nonzero residual), and it is indefinite for softmax
    G = _assemble(obj, x, "gauss_newton")
    assert np.linalg.norm(H - G) > 1e-3 * np.linalg.norm(H)


def test_conv_network_assembled_hessian():
    net = Meganet([ResNet(SingleLayer(Conv2d(1, 1, (4, 4))), n_steps=2, final_time=1.0)])
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((3, 1, 4, 4))
    obj = NetworkObjective(net, SoftmaxCrossEntropy((1, 4, 4), 2), Y, np.arange(3) % 2)
    x = _point(obj)
    H = _assemble(obj, x, "exact")
    assert np.linalg.norm(H - H.T) <= 1e-13 * np.linalg.norm(H)
    step, eye = 1e-5, np.eye(obj.n)
    FD = np.stack([(obj.gradient(x + step * eye[i]) - obj.gradient(x - step * eye[i])) / (2 * step)
                   for i in range(obj.n)], axis=1)
    assert np.linalg.norm(H - FD) <= 1e-8 * np.linalg.norm(H)


def test_gauss_newton_equals_exact_at_zero_residual():
    """Least squares with targets the model's own output (an interpolating network): ∇_Z L = 0 and the
    residual terms of the classifier vanish, so the exact Hessian is the Gauss-Newton one."""
    net = _net()
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((6, 3))
    loss = LeastSquares(net.shape_out, 2)
    probe = NetworkObjective(net, loss, Y, np.zeros((6, 2)))
    x = _point(probe)
    theta, w = probe.split(x)
    C = loss.logits(net.apply(theta, Y), w)
    obj = NetworkObjective(net, loss, Y, C, regularizer=Tikhonov(net.n_theta, alpha=1e-2))
    assert np.linalg.norm(obj.gradient(x)) < 1e-1  # the loss gradient is zero; only the regularizer remains
    state = obj.value(x)[1]
    for seed in (2, 3, 4):
        v = _direction(obj, x, seed)
        He = obj.hessian_matvec(x, v, state, kind="exact")
        Hg = obj.hessian_matvec(x, v, state, kind="gauss_newton")
        assert np.linalg.norm(He - Hg) <= 1e-13 * np.linalg.norm(Hg)
    # and off the interpolating point they differ
    x2 = x + 0.1 * _direction(obj, x, 7)
    s2 = obj.value(x2)[1]
    v = _direction(obj, x, 2)
    assert np.linalg.norm(obj.hessian_matvec(x2, v, s2, kind="exact") - obj.hessian_matvec(x2, v, s2)) > \
        1e-6 * np.linalg.norm(obj.hessian_matvec(x2, v, s2))


def test_default_is_gauss_newton_and_hessian_kind_option():
    obj = _make("softmax")
    x = _point(obj)
    state = obj.value(x)[1]
    v = _direction(obj, x, 2)
    gn = obj.hessian_matvec(x, v, state, kind="gauss_newton")
    assert obj.hessian == "gauss_newton" and obj.hessian_kind == "gauss_newton"
    np.testing.assert_array_equal(obj.hessian_matvec(x, v, state), gn)
    ex = obj.hessian_matvec(x, v, state, kind="exact")
    obj.hessian_kind = "exact"
    assert obj.hessian == "exact"
    np.testing.assert_array_equal(obj.hessian_matvec(x, v, state), ex)
    np.testing.assert_array_equal(obj.hessian_matvec(x, v, state, kind="gauss_newton"), gn)
    with pytest.raises(ValueError, match="kind must be one of"):
        obj.hessian_matvec(x, v, state, kind="newton")
    with pytest.raises(ValueError, match="hessian_kind must be one of"):
        obj.hessian_kind = "full"
    obj2 = _objective("softmax", hessian_kind="exact")
    assert obj2.hessian == "exact"


def test_exact_work_units():
    """An exact product counts two linearized forward and two adjoint passes (GN: one and one)."""
    obj = _make("softmax")
    x = _point(obj)
    state = obj.value(x)[1]
    v = _direction(obj, x, 2)
    f0, a0 = obj.counter.forward, obj.counter.adjoint
    obj.hessian_matvec(x, v, state, kind="exact")
    assert (obj.counter.forward - f0, obj.counter.adjoint - a0) == (2, 2)
    f0, a0 = obj.counter.forward, obj.counter.adjoint
    obj.hessian_matvec(x, v, state)
    assert (obj.counter.forward - f0, obj.counter.adjoint - a0) == (1, 1)


def test_network_without_second_order_products_is_named():
    from meganet.activations import Activation

    class Softsign(Activation):
        def value(self, x):
            return x / (1 + abs(x))

        def derivative(self, x):
            return 1 / (1 + abs(x)) ** 2

    net = Meganet([ResNet(SingleLayer(Dense(3, 3), activation=Softsign()), n_steps=2, final_time=1.0),
                   SingleLayer(Dense(3, 4))])
    obj = _objective("softmax", network=net)
    x = obj.init_x(rng=0)
    with pytest.raises(NotImplementedError, match="Pointwise with Softsign"):
        obj.hessian_matvec(x, x, kind="exact")
    obj.hessian_matvec(x, x)  # Gauss-Newton still works


def test_trust_region_solvers_escape_a_saddle_with_the_exact_hessian():
    """Near the saddle x = 0 (zero weights: every prediction is 1/2, f = ln 2) Gauss-Newton sees only
    nonnegative curvature and stalls; with hessian_kind='exact' Steihaug-CG stops at negative curvature and
    both trust-region solvers leave the saddle."""
    from meganet.optimizers import minimize_trust_region_krylov, minimize_trust_region_steihaug

    rng = np.random.default_rng(0)
    Y = rng.standard_normal((40, 2))
    Y[:20] *= 0.5
    C = (np.arange(40) >= 20).astype(int)
    net = Meganet([SingleLayer(Dense(2, 4), bias=False),
                   ResNet(SingleLayer(Dense(4, 4), bias=False), n_steps=2, final_time=1.0)])
    for solver in (minimize_trust_region_steihaug, minimize_trust_region_krylov):
        final = {}
        for kind in ("gauss_newton", "exact"):
            obj = NetworkObjective(net, SoftmaxCrossEntropy(4, 2, bias=False), Y, C, hessian_kind=kind)
            x0 = 1e-4 * np.random.default_rng(3).standard_normal(obj.n)
            res = solver(obj, x0, max_iter=10)
            final[kind] = res.fun
            assert ("Gauss-Newton" in res.solver) == (kind == "gauss_newton")
            if kind == "exact" and solver is minimize_trust_region_steihaug:
                assert "negative_curvature" in res.history["cg_info"]
        assert final["gauss_newton"] > np.log(2) - 1e-4
        assert final["exact"] < np.log(2) - 0.05


# ------------------------------------------------------------------ VarPro's reduced objective
def _varpro(loss_name, dtype=np.float64, **kw):
    from meganet.objectives import VarProObjective

    rng = np.random.default_rng(0)
    net = _net()
    Y = rng.standard_normal((12, 3)).astype(dtype)
    if loss_name == "softmax":
        loss, C = SoftmaxCrossEntropy(net.shape_out, 3), np.arange(12) % 3
        kw.setdefault("classifier_regularizer", Tikhonov(loss.n_w, alpha=1e-2))
    else:
        loss, C = LeastSquares(net.shape_out, 2), rng.standard_normal((12, 2)).astype(dtype)
        kw.setdefault("classifier_regularizer", Tikhonov(loss.n_w, alpha=1e-3))
    return VarProObjective(net, loss, Y, C, regularizer=Tikhonov(net.n_theta, alpha=1e-3), inner_tol=1e-13, **kw)


@pytest.mark.parametrize("dtype", [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")])
@pytest.mark.parametrize("loss_name", ["softmax", "least_squares"])
def test_varpro_exact_reduced_hessian(loss_name, dtype):
    obj = _varpro(loss_name, dtype)
    theta = _point(obj)

    def grad(t):
        return obj.gradient(t, obj.value(t)[1])

    def hv(t, v):
        return obj.hessian_matvec(t, v, obj.value(t)[1], kind="exact")

    # the reduced gradient is exact only up to the inner solve (‖∇_wΦ‖ ≤ 1e-13): a floor above 100·eps in float64
    floor = dict(floor_factor=1e4) if dtype == np.float64 else {}
    for seed in (2, 3):
        v = _direction(obj, theta, seed)
        rep = taylor_test(grad, theta, v, jmv=hv, **floor)
        assert rep.ok, "\n" + rep.table()
    sym = symmetry_test(lambda a: hv(theta, a), _direction(obj, theta, 4, 1.0), _direction(obj, theta, 5, 1.0))
    assert sym.ok, str(sym)
    if dtype == np.float64:  # the reduced Gauss-Newton product is not the reduced Hessian: the test can tell
        v = _direction(obj, theta, 2)
        assert not taylor_test(grad, theta, v, jmv=lambda t, a: obj.hessian_matvec(t, a, obj.value(t)[1]),
                               **floor).ok


def test_varpro_exact_assembled_equals_finite_differences_and_kind_option():
    obj = _varpro("softmax")
    theta = _point(obj)
    state = obj.value(theta)[1]
    H = np.stack([obj.hessian_matvec(theta, e, state, kind="exact") for e in np.eye(obj.n)], axis=1)
    assert np.linalg.norm(H - H.T) <= 1e-12 * np.linalg.norm(H)
    step = 1e-5
    FD = np.stack([(obj.gradient(theta + step * e) - obj.gradient(theta - step * e)) / (2 * step)
                   for e in np.eye(obj.n)], axis=1)
    assert np.linalg.norm(H - FD) <= 1e-7 * np.linalg.norm(H)
    assert obj.hessian == "gauss_newton"
    obj.hessian_kind = "exact"
    assert obj.hessian == "exact"
    np.testing.assert_array_equal(obj.hessian_matvec(theta, H[:, 0], state),
                                  obj.hessian_matvec(theta, H[:, 0], state, kind="exact"))


def test_exact_with_hessian_subsample_is_the_subsample_objectives_hessian():
    """With hessian_fraction < 1 the exact product is the exact Hessian of the objective on the subsample."""
    net = _net()
    rng = np.random.default_rng(0)
    Y, C = rng.standard_normal((10, 3)), np.arange(10) % 3
    loss = SoftmaxCrossEntropy(net.shape_out, 3)
    reg = Tikhonov(net.n_theta, alpha=1e-2)
    obj = NetworkObjective(net, loss, Y, C, regularizer=reg, hessian_fraction=0.5, rng=1)
    x = _point(obj)
    state = obj.value(x)[1]
    idx = obj.curvature_sample(x, state).view.idx
    assert idx is not None and len(idx) < 10
    sub = NetworkObjective(net, loss, Y[np.asarray(idx)], C[np.asarray(idx)], regularizer=reg)
    v = _direction(obj, x, 2)
    Hs = obj.hessian_matvec(x, v, state, kind="exact")
    np.testing.assert_allclose(Hs, sub.hessian_matvec(x, v, kind="exact"), rtol=1e-12, atol=1e-14)
    sym = symmetry_test(lambda a: obj.hessian_matvec(x, a, state, kind="exact"), _direction(obj, x, 4, 1.0),
                        _direction(obj, x, 5, 1.0))
    assert sym.ok, str(sym)


def test_second_order_adjoint_validates_its_arguments():
    el = SingleLayer(Dense(3, 4))
    theta = el.init_theta(rng=0)
    Y = np.ones((2, 3))
    W = np.ones((2, 4))
    with pytest.raises(ValueError, match="W must have shape"):
        el.second_order_adjoint(np.ones((3, 4)), None, Y, theta, Y)
    with pytest.raises(ValueError, match="dY must have shape"):
        el.second_order_adjoint(W, None, np.ones((2, 4)), theta, Y)
    with pytest.raises(ValueError, match="dtheta must have shape"):
        el.second_order_adjoint(W, theta[:-1], None, theta, Y)
    with pytest.raises(TypeError, match="dtype"):
        el.second_order_adjoint(W.astype(np.float32), None, Y, theta, Y)
    d_theta, d_Y = el.second_order_adjoint(W, None, None, theta, Y)  # no direction: zeros
    assert not d_theta.any() and not d_Y.any() and d_theta.shape == theta.shape and d_Y.shape == Y.shape


def test_varpro_exact_in_the_lanczos_trust_region():
    from meganet.optimizers import minimize_trust_region_krylov

    obj = _varpro("softmax", hessian_kind="exact")
    theta0 = _point(obj)
    f0 = obj.value(theta0)[0]
    res = minimize_trust_region_krylov(obj, theta0, max_iter=8)
    assert "Gauss-Newton" not in res.solver and "Newton" in res.solver
    assert res.fun < f0


def test_gnvpro_names_the_exact_hessian():
    from meganet.optimizers import minimize_gnvpro
    from meganet.optimizers.gnvpro import GNVPRO_LABEL, NEWTON_VPRO_LABEL

    obj = _varpro("softmax")
    theta0 = _point(obj)
    assert minimize_gnvpro(obj, theta0, max_iter=2).solver == GNVPRO_LABEL
    obj.hessian_kind = "exact"
    res = minimize_gnvpro(obj, theta0, max_iter=4)
    assert res.solver == NEWTON_VPRO_LABEL
    assert res.fun < obj.value(theta0)[0]
