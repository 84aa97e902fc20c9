"""Generic tests of the Transform pieces on every registered transform.

Besides the element interface (tested in test_generic_elements.py), layers such
as the symmetric layer use ``K(θ)ᵀ`` and ``(∂_θK[dθ])ᵀ``; these are checked here:
``<K Y, Z> = <Y, Kᵀ Z>``; Taylor test of ``θ ↦ K(θ)ᵀ Z`` with derivative
``dKT_mv``; and ``<(∂K[dθ])ᵀ Z, W> = <dθ, dK_adj(θ, W, Z)>``.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.testing import dot_test, random_direction, taylor_test_line
from tests.conftest import DTYPE_PARAMS, XP_PARAMS, get_xp
from tests.registry import cases_of_kind

CASES = [pytest.param(c, id=c.name) for c in cases_of_kind("transform")]


def _setup(case, dtype, xp_name):
    if dtype == np.float32 and not case.float32:
        pytest.skip(f"{case.name} is registered float64-only")
    xp = get_xp(xp_name)
    K = case.make()
    theta, Y = case.data(K, dtype, xp)
    rng = np.random.default_rng(7)
    Z = xp.asarray(rng.standard_normal((Y.shape[0], *K.shape_out)).astype(dtype))
    return K, theta, Y, Z, xp, rng


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", CASES)
def test_apply_T_is_adjoint(case, dtype, xp_name):
    K, theta, Y, Z, xp, rng = _setup(case, dtype, xp_name)
    rep = dot_test(lambda y: K.apply(theta, y), lambda z: K.apply_T(theta, z), Y, Z, name=case.name)
    assert rep.ok, str(rep)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", CASES)
def test_dKT_mv_taylor_and_adjoint(case, dtype, xp_name):
    K, theta, Y, Z, xp, rng = _setup(case, dtype, xp_name)
    dtheta = random_direction(theta, rng, case.rel_step)
    rep = taylor_test_line(lambda h: K.apply_T(theta + h * dtheta, Z), K.apply_T(theta, Z),
                           K.dKT_mv(theta, dtheta, Z), name=f"{case.name} K(θ)ᵀZ")
    assert rep.ok, str(rep)
    W = xp.asarray(rng.standard_normal(Y.shape).astype(dtype))
    rep = dot_test(lambda d: K.dKT_mv(theta, d, Z), lambda w: K.dK_adj(theta, w, Z), dtheta, W,
                   name=f"{case.name} (∂K)ᵀZ")
    assert rep.ok, str(rep)
