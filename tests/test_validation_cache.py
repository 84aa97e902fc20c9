"""A cache belongs to the element and the input it was made for (issue 9, defect 13b): every public
entry point that takes a cache (Jmv, JTmv, the one-sided products, jacobian, the reconstruction tools
of the reversible blocks) refuses a cache from another Y or another element, and something that is
not a cache at all (e.g. the ``(Z, cache)`` pair), with a clear message, not a broadcast error deep
inside."""

import numpy as np
import pytest

from meganet.integrators import (AntisymmetricResNet, HamiltonianCNN, HamiltonianVerlet, Leapfrog, ResNet,
                                 SecondOrderCNN)
from meganet.layers import SingleLayer
from meganet.networks import Meganet, Sequential
from meganet.transforms import Conv2d, Dense

ELEMENTS = [
    pytest.param(lambda: Dense(3, 4), (3,), id="dense"),
    pytest.param(lambda: SingleLayer(Dense(3, 3), activation="tanh"), (3,), id="single-layer"),
    pytest.param(lambda: AntisymmetricResNet(3, n_steps=3, final_time=1.0), (3,), id="antisym-resnet"),
    pytest.param(lambda: HamiltonianVerlet(2, 2, n_steps=3, final_time=1.0), (4,), id="verlet"),
    pytest.param(lambda: Meganet([SingleLayer(Dense(3, 4)), AntisymmetricResNet(4, n_steps=2, final_time=1.0)]),
                 (3,), id="meganet"),
    pytest.param(lambda: Conv2d(2, 2, (4, 4), kernel_size=3), (2, 4, 4), id="conv2d"),
]


def _data(el, shape, n, seed=0):
    rng = np.random.default_rng(seed)
    return el.init_theta(rng=rng), rng.standard_normal((n, *shape))


@pytest.mark.parametrize("make, shape", ELEMENTS)
def test_cache_of_another_Y(make, shape):
    el = make()
    theta, Y1 = _data(el, shape, 5)
    _, Y2 = _data(el, shape, 3, seed=1)
    _, cache = el.forward(theta, Y1)
    W = np.ones((3, *el.shape_out))
    with pytest.raises(ValueError, match=r"cache was made by forward on Y of shape \(5,"):
        el.Jmv(0 * theta, None, theta, Y2, cache)
    with pytest.raises(ValueError, match=r"cache was made by forward on Y of shape \(5,"):
        el.JTmv(W, theta, Y2, cache)
    with pytest.raises(ValueError, match=r"dtype float64 .* but Y has shape \(5, .*\), dtype float32"):
        el.JTmv(np.ones((5, *el.shape_out), np.float32), theta.astype(np.float32), Y1.astype(np.float32), cache)
    # the right cache, and no cache at all, still work and agree
    W5 = np.ones((5, *el.shape_out))
    a, b = el.JTmv(W5, theta, Y1, cache), el.JTmv(W5, theta, Y1)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)


@pytest.mark.parametrize("make, shape", ELEMENTS)
def test_cache_of_another_element(make, shape):
    el, other = make(), make()
    theta, Y = _data(el, shape, 4)
    _, cache = other.forward(theta, Y)
    with pytest.raises(ValueError, match="cache was made by the forward pass of another element"):
        el.Jmv(theta, None, theta, Y, cache)


CHAINS = [
    pytest.param(lambda: Sequential([SingleLayer(Dense(3, 4)), SingleLayer(Dense(4, 2))]), (3,), id="sequential"),
    pytest.param(lambda: Meganet([SingleLayer(Dense(3, 3)), ResNet(SingleLayer(Dense(3, 3)), n_steps=2,
                                                                   final_time=1.0)]), (3,), id="meganet-resnet"),
    pytest.param(lambda: ResNet(SingleLayer(Dense(3, 3)), n_steps=3, final_time=1.0), (3,), id="resnet"),
    pytest.param(lambda: Leapfrog(3, n_steps=3, final_time=1.0, reversible=True), (3,), id="leapfrog-reversible"),
]

ONE_SIDED = {
    "Jthetamv": lambda el, th, Y, c: el.Jthetamv(th, th, Y, c),
    "JYmv": lambda el, th, Y, c: el.JYmv(Y, th, Y, c),
    "JthetaTmv": lambda el, th, Y, c: el.JthetaTmv(np.ones((Y.shape[0], *el.shape_out)), th, Y, c),
    "JYTmv": lambda el, th, Y, c: el.JYTmv(np.ones((Y.shape[0], *el.shape_out)), th, Y, c),
    "jacobian": lambda el, th, Y, c: el.jacobian(th, Y, c),
}


@pytest.mark.parametrize("make, shape", CHAINS)
@pytest.mark.parametrize("method", list(ONE_SIDED))
def test_every_entry_point_checks_the_cache(make, shape, method):
    el = make()
    theta, Y5 = _data(el, shape, 5)
    _, Y3 = _data(el, shape, 3, seed=1)
    _, cache = el.forward(theta, Y5)
    with pytest.raises(ValueError, match=r"cache was made by forward on Y of shape \(5,.* but Y has shape \(3,"):
        ONE_SIDED[method](el, theta, Y3, cache)
    with pytest.raises(ValueError, match="cache was made by the forward pass of another element"):
        ONE_SIDED[method](make(), theta, Y5, cache)
    ONE_SIDED[method](el, theta, Y5, cache)  # the right cache works


@pytest.mark.parametrize("make, shape", CHAINS)
def test_forward_pair_or_array_is_not_a_cache(make, shape):
    el = make()
    theta, Y = _data(el, shape, 4)
    out = el.forward(theta, Y)
    W = np.ones((4, *el.shape_out))
    for wrong in (out, out[0], [out[1]]):
        with pytest.raises(TypeError, match=r"cache must be the cache returned by .* got (tuple|ndarray|list)"):
            el.JTmv(W, theta, Y, wrong)
        with pytest.raises(TypeError, match="cache must be the cache returned by"):
            el.Jmv(theta, None, theta, Y, wrong)


REVERSIBLE = [
    pytest.param(lambda rev: Leapfrog(3, n_steps=3, final_time=1.0, reversible=rev), (3,), id="leapfrog"),
    pytest.param(lambda rev: HamiltonianVerlet(2, 2, n_steps=3, final_time=1.0, reversible=rev), (4,), id="verlet"),
    pytest.param(lambda rev: HamiltonianCNN(2, (4, 4), n_steps=2, final_time=1.0, reversible=rev), (2, 4, 4),
                 id="hamiltonian-cnn"),
    pytest.param(lambda rev: SecondOrderCNN(2, (4, 4), n_steps=2, final_time=1.0, reversible=rev), (2, 4, 4),
                 id="second-order-cnn"),
]


@pytest.mark.parametrize("reversible", [False, True])
@pytest.mark.parametrize("make, shape", REVERSIBLE)
def test_reconstruct_input_takes_any_cache_of_this_element_only(make, shape, reversible):
    el = make(reversible)
    theta, Y = _data(el, shape, 3)
    _, cache = el.forward(theta, Y)  # stored mode: the fused sweep's cache where a kernel runs it
    np.testing.assert_allclose(el.reconstruct_input(theta, cache), Y, atol=1e-10)
    with pytest.raises(ValueError, match="cache was made by the forward pass of another element"):
        make(reversible).reconstruct_input(theta, cache)
    with pytest.raises(TypeError, match=r"cache must be the IntegratorCache \(or FusedIntegratorCache\) returned by"):
        el.reconstruct_input(theta, (None, cache))


def _registered():
    from tests.registry import all_cases

    return [pytest.param(case, id=case.name) for case in all_cases()]


@pytest.mark.parametrize("case", _registered())
def test_every_registered_element_refuses_a_cache_of_another_batch(case):
    el = case.make()
    theta, Y = case.data(el, np.float64, np)
    _, cache = el.forward(theta, Y)
    Y2 = np.concatenate([Y, Y[:1]])
    with pytest.raises(ValueError, match=rf"cache was made by forward on Y of shape \({Y.shape[0]},"):
        el.JTmv(np.ones((Y2.shape[0], *el.shape_out)), theta, Y2, cache)
