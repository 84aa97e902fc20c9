"""A cache belongs to the element and the input it was made for (issue 9, defect 13): a cache from
another Y or another element is refused in the public methods with a clear message, not a broadcast
error deep inside."""

import numpy as np
import pytest

from meganet.integrators import AntisymmetricResNet, HamiltonianVerlet
from meganet.layers import SingleLayer
from meganet.networks import Meganet
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
