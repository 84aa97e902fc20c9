"""Generic second-order checks on every registered element that declares them (issue 15).

For each case of ``tests/registry.py`` whose element has ``has_second_order``
(so a new element that declares support is covered by default), in float64
and float32 on numpy (and cupy with a GPU): the Taylor test of the gradient
``∇g = JTmv(W)`` of ``g(θ, Y) = ⟨W, F(θ, Y)⟩`` against
``second_order_adjoint(W, dθ, dY)`` w.r.t. θ, Y and both (order 2, the
verdict logic of the first-order Taylor test), and the symmetry
``⟨u, ∇²g v⟩ = ⟨∇²g u, v⟩`` (1e-12 relative in float64, 1e-4 in float32).
Elements without second-order products must say so by name.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.testing.second_order import check_second_order
from tests.conftest import DTYPE_PARAMS, XP_PARAMS, get_xp
from tests.registry import all_cases

CASES = all_cases()


def _params(supported):
    out = []
    for c in CASES:
        if c.make().has_second_order != supported:
            continue
        marks = [pytest.mark.slow] if c.slow else []
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _params(True))
def test_second_order_taylor_and_symmetry(case, dtype, xp_name):
    if dtype == np.float32 and not case.float32:
        pytest.skip(f"{case.name} is registered float64-only")
    if dtype == np.float32 and not case.second_order_float32:
        pytest.skip(f"{case.name}: second-order checks registered float64-only")
    xp = get_xp(xp_name)
    el = case.make()
    theta, Y = case.data(el, dtype, xp)
    rep = check_second_order(el, theta, Y, rng=1, rel_step=case.rel_step, **case.taylor_kwargs)
    assert rep.ok, "\n" + str(rep)
    d_theta, d_Y = el.second_order_adjoint(xp.ones((Y.shape[0], *el.shape_out), dtype=dtype), None, Y, theta, Y)
    assert d_theta.dtype == dtype and d_theta.shape == (el.n_theta,)
    assert d_Y.dtype == dtype and d_Y.shape == Y.shape


def test_every_registered_element_has_second_order_products():
    """Issue 15: every element of the registry declares second-order products (so the test above covers it)."""
    assert [p.id for p in _params(False)] == []


def test_no_second_order_is_named():
    """An element without second-order products (here a user activation without σ'') is named, also from
    deep inside a network."""
    from meganet.activations import Activation
    from meganet.integrators import ResNet
    from meganet.layers import SingleLayer
    from meganet.networks import Meganet
    from meganet.transforms import Dense

    class Softsign(Activation):
        def value(self, x):
            return x / (1 + abs(x))

        def derivative(self, x):
            return 1 / (1 + abs(x)) ** 2

    net = Meganet([ResNet(SingleLayer(Dense(3, 3), activation=Softsign()), n_steps=2, final_time=1.0)])
    assert not net.has_second_order
    assert "Softsign" in net.second_order_missing()
    theta = net.init_theta(rng=0)
    Y = np.ones((2, 3))
    with pytest.raises(NotImplementedError, match="Meganet .*Pointwise with Softsign"):
        net.second_order_adjoint(Y, None, Y, theta, Y)


def test_the_checks_catch_wrong_second_order_products():
    """A second-order product with σ'' dropped fails the gradient Taylor test; a nonsymmetric one fails
    the symmetry test (the generic checks can fail)."""
    from meganet.integrators import ResNet
    from meganet.layers import Pointwise, SingleLayer
    from meganet.transforms import Dense

    class NoCurvature(Pointwise):
        def _second_order(self, W, dtheta, dY, theta, Y, cache):
            return None, None

    class Lopsided(Pointwise):
        def _second_order(self, W, dtheta, dY, theta, Y, cache):
            return None, (None if dY is None else 2.0 * dY[:, ::-1] * W)

    for cls, which in ((NoCurvature, "Taylor"), (Lopsided, "Symmetry")):
        layer = SingleLayer(Dense(3, 3))
        layer.elements[-1] = cls("tanh", (3,))
        el = ResNet(layer, n_steps=4, final_time=1.0)
        theta = el.init_theta(rng=0)
        Y = np.random.default_rng(0).standard_normal((3, 3))
        rep = check_second_order(el, theta, Y, rng=1)
        assert not rep.ok
        assert any(str(r).startswith(which) for r in rep.failures())


def _reversible_pairs():
    from meganet.integrators.hamiltonian_cnn import HamiltonianCNN
    from meganet.integrators.leapfrog import Leapfrog
    from meganet.integrators.second_order_cnn import SecondOrderCNN
    from meganet.integrators.verlet import HamiltonianVerlet
    from meganet.integrators.verlet_cnn import HamiltonianVerletCNN

    return {
        "verlet": lambda r: HamiltonianVerlet(3, 2, n_steps=12, final_time=1.0, bias="vector", reversible=r),
        "leapfrog": lambda r: Leapfrog(3, n_steps=12, final_time=1.0, reversible=r),
        "verlet-cnn": lambda r: HamiltonianVerletCNN(2, 1, (4, 4), n_steps=4, final_time=1.0, reversible=r),
        "hamiltonian-cnn": lambda r: HamiltonianCNN(2, (4, 4), n_steps=3, final_time=1.0, activation="tanh",
                                                    reversible=r),
        "second-order-cnn": lambda r: SecondOrderCNN(2, (4, 4), n_steps=3, final_time=1.0, activation="tanh",
                                                     reversible=r),
    }


@pytest.mark.parametrize("name", list(_reversible_pairs()))
def test_reversible_second_order_stores_no_states_and_matches_stored(name, monkeypatch):
    """In reversible mode the second-order sweep recomputes states and tangents backwards (no stored
    states) and agrees with the stored mode up to the round-off of the backward recomputation."""
    make = _reversible_pairs()[name]
    stored, rev = make(False), make(True)
    rng = np.random.default_rng(0)
    theta = stored.init_theta(rng=rng)
    Y = rng.standard_normal((2, *stored.shape_in))
    W, dY = rng.standard_normal(Y.shape), rng.standard_normal(Y.shape)
    dth = 0.5 * rng.standard_normal(theta.shape)
    expected = stored.second_order_adjoint(W, dth, dY, theta, Y)
    _, cache = rev.forward(theta, Y)
    assert cache.steps is None

    def no_store(*args, store=False, **kw):
        assert not store, "the reversible second-order sweep stored the states"
        return type(rev)._sweep(rev, *args, store=store, **kw)

    monkeypatch.setattr(rev, "_sweep", no_store)
    got = rev.second_order_adjoint(W, dth, dY, theta, Y, cache)
    for a, b in zip(got, expected):
        assert np.linalg.norm(a - b) <= 1e-10 * np.linalg.norm(b)
