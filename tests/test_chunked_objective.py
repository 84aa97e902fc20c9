"""Memory-bounded (chunked) network passes of the objectives (``chunk_size``, Meganet.m's
``forwardProp`` in batches): the same values, gradients and Gauss-Newton products as one pass
over all examples, the recomputed forward passes counted, bad options refused."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.layers import SingleLayer
from meganet.losses import SoftmaxCrossEntropy
from meganet.networks import Meganet
from meganet.objectives import NetworkObjective, VarProObjective
from meganet.objectives._base import ChunkedCache
from meganet.transforms import Conv2d
from tests.test_objectives import random_x, tiny_problem


@pytest.mark.parametrize("cls", [NetworkObjective, VarProObjective])
@pytest.mark.parametrize("chunk", [1, 5, 7])
@pytest.mark.parametrize("fraction", [None, 0.5])
def test_chunked_passes_equal_one_pass(cls, chunk, fraction):
    kw = dict(n=13, cls=cls, hessian_fraction=fraction)
    ref = tiny_problem(**kw, rng=3)
    obj = tiny_problem(**kw, rng=3, chunk_size=chunk)
    x = random_x(ref) if cls is NetworkObjective else 0.5 * np.random.default_rng(1).standard_normal(ref.n)
    f0, g0, s0 = ref.value_and_gradient(x)
    f1, g1, s1 = obj.value_and_gradient(x)
    assert isinstance(s1.net_cache, ChunkedCache) and not isinstance(s0.net_cache, ChunkedCache)
    assert f1 == pytest.approx(f0, rel=1e-13)
    np.testing.assert_allclose(g1, g0, rtol=1e-11, atol=1e-13 * np.abs(g0).max())
    v = np.random.default_rng(2).standard_normal(ref.n)
    H0, H1 = ref.hessian_matvec(x, v, s0), obj.hessian_matvec(x, v, s1)
    np.testing.assert_allclose(H1, H0, rtol=1e-10, atol=1e-12 * np.abs(H0).max())


def test_chunked_work_units_count_the_recomputed_forward_passes():
    ref = tiny_problem(n=12)
    obj = tiny_problem(n=12, chunk_size=5)
    x = random_x(ref)
    v = np.ones(ref.n)
    for o in (ref, obj):
        f, g, s = o.value_and_gradient(x)
        o.hessian_matvec(x, v, s)
    # one pass: F, Jᵀ, J, Jᵀ; chunked: each Jᵀ and J re-runs the forward pass
    assert (ref.counter.forward, ref.counter.adjoint) == (2, 2)
    assert (obj.counter.forward, obj.counter.adjoint) == (5, 2)


def test_chunked_conv_network_gradient():
    rng = np.random.default_rng(0)
    net = Meganet([SingleLayer(Conv2d(1, 2, (6, 6)), activation="tanh"),
                   SingleLayer(Conv2d(2, 2, (6, 6)), activation="tanh")])
    loss = SoftmaxCrossEntropy((2, 6, 6), 3)
    Y = rng.standard_normal((9, 1, 6, 6))
    C = rng.integers(0, 3, 9)
    a, b = NetworkObjective(net, loss, Y, C), NetworkObjective(net, loss, Y, C, chunk_size=4)
    x = a.init_x(rng=1)
    np.testing.assert_allclose(b.gradient(x), a.gradient(x), rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_bad_chunk_size_is_refused(bad):
    with pytest.raises(ValueError, match="chunk_size must be None"):
        tiny_problem(chunk_size=bad)
