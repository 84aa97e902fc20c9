"""The derivative checkers must pass correct derivatives and fail wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.layers import SingleLayer
from meganet.transforms import Dense
from meganet.testing import (assert_adjoint, assert_element, assert_taylor, check_element, dot_test,
                             taylor_test)


def _f(x):
    return np.sin(x) * x


def _df(x, v):
    return (np.cos(x) * x + np.sin(x)) * v


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_taylor_passes_correct_derivative(dtype):
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(20).astype(dtype), rng.standard_normal(20).astype(dtype)
    rep = taylor_test(_f, x, v, jmv=_df)
    assert rep.ok, str(rep)
    assert rep.dtype == str(np.dtype(dtype))
    # steps go down until E1 reaches the round-off floor, which float32 reaches sooner
    assert rep.E1[-1] <= rep.floor
    assert rep.h[-1] > (1e-9 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("dtype,error", [(np.float64, 1e-2), (np.float64, 1e-5), (np.float64, 1e-3),
                                         (np.float32, 1e-1), (np.float32, 1e-2)])
def test_taylor_fails_wrong_derivative(dtype, error):
    """Relative errors in J v down to ~1e-5 (float64) and ~1e-2 (float32) are caught:
    the verdict reads the table where it is asymptotic (small h), not at large h
    where higher-order terms hide an O(h) error."""
    rng = np.random.default_rng(1)
    x, v = rng.standard_normal(20).astype(dtype), rng.standard_normal(20).astype(dtype)
    rep = taylor_test(_f, x, v, (1 + error) * _df(x, v))
    assert not rep.ok, str(rep)
    assert "FAIL" in rep.table()
    with pytest.raises(AssertionError, match="FAIL"):
        assert_taylor(_f, x, v, (1 + error) * _df(x, v))


def test_taylor_missing_term_fails():
    rng = np.random.default_rng(2)
    x, v = rng.standard_normal(10), rng.standard_normal(10)
    rep = taylor_test(_f, x, v, np.cos(x) * x * v)  # forgot the product rule's second term
    assert not rep.ok
    orders = rep.order1[np.isfinite(rep.order1)]
    assert np.all(np.abs(orders[-5:] - 1) < 0.1)  # E1 is O(h): the table shows order 1


def test_taylor_affine_map_passes_at_floor():
    A = np.random.default_rng(3).standard_normal((5, 5))
    x, v = np.ones(5), np.arange(5.0)
    rep = taylor_test(lambda y: A @ y + 1, x, v, A @ v)
    assert rep.ok and "affine" in rep.verdict


def test_taylor_table_prints(capsys):
    x = np.linspace(-1, 1, 4)
    taylor_test(np.tanh, x, np.ones(4), 1 - np.tanh(x) ** 2, verbose=True, name="tanh")
    out = capsys.readouterr().out
    assert "Taylor test tanh" in out and "order E1" in out and "PASS" in out


def test_taylor_needs_a_derivative():
    with pytest.raises(ValueError, match="give either Jv"):
        taylor_test(np.tanh, np.zeros(2), np.ones(2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dot_test_matrix(dtype):
    rng = np.random.default_rng(4)
    A = rng.standard_normal((30, 20)).astype(dtype)
    v, w = rng.standard_normal(20).astype(dtype), rng.standard_normal(30).astype(dtype)
    rep = dot_test(lambda x: A @ x, lambda y: A.T @ y, v, w)
    assert rep.ok and rep.rel_err < (1e-14 if dtype == np.float64 else 1e-5)
    bad = A.copy()
    bad[0, 0] += 1e-6 if dtype == np.float64 else 1e-1
    rep = dot_test(lambda x: A @ x, lambda y: bad.T @ y, v, w)
    assert not rep.ok and "FAIL" in str(rep)
    with pytest.raises(AssertionError):
        assert_adjoint(lambda x: A @ x, lambda y: bad.T @ y, v, w)


def test_dot_test_shape_mismatch():
    A = np.ones((3, 2))
    with pytest.raises(ValueError, match="rmatvec"):
        dot_test(lambda x: A @ x, lambda y: A @ np.ones(2), np.ones(2), np.ones(3))


class _WrongAdjointDense(Dense):
    """Dense with a θ-adjoint that forgets a transpose (square case, so shapes match)."""

    def _dK_adj(self, theta, Y, W, per_example):
        g = super()._dK_adj(theta, Y, W, per_example)
        return g.reshape(*g.shape[:-1], self.n_out_, self.n_in_).swapaxes(-1, -2).reshape(g.shape)


class _WrongJmvDense(Dense):
    """Dense whose Jmv drops the θ term."""

    def _dK_mv(self, theta, dtheta, Y):
        return 0 * Y @ self.matrix(theta).T


class _SlightlyWrongYAdjoint(Dense):
    def _apply_T(self, theta, Z):
        return 1.000001 * (Z @ self.matrix(theta))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_check_element_reports_wrong_adjoint(dtype):
    el = SingleLayer(_WrongAdjointDense(3, 3))
    rep = check_element(el, dtype=dtype)
    failed = {r.name.rsplit(" ", 1)[-1] for r in rep.failures()}
    assert not rep.ok
    assert "theta" in failed and "both" in failed and "Y" not in failed
    with pytest.raises(AssertionError, match="Dot test"):
        assert_element(el, dtype=dtype)


def test_check_element_reports_wrong_jacobian():
    rep = check_element(SingleLayer(_WrongJmvDense(3, 4)))
    failed = [r for r in rep.failures()]
    taylor_failed = {r.name.rsplit(" ", 1)[-1] for r in failed if "Taylor" in str(r)}
    assert taylor_failed == {"theta", "both"}
    # Jmv no longer matches the (correct) JTmv, so the dot tests in θ fail as well; Y is fine
    assert all(r.ok for r in rep.reports if r.name.endswith(" Y"))


def test_check_element_detects_tiny_adjoint_error():
    rep = check_element(SingleLayer(_SlightlyWrongYAdjoint(4, 4)), wrt=["Y"], taylor=False)
    assert not rep.ok  # 1e-6 relative error is far above float64's tolerance


def test_check_element_correct_layer_prints(capsys):
    rep = check_element(SingleLayer(Dense(3, 2)), verbose=True)
    assert rep.ok and len(rep.reports) == 6
    assert "check_element" in capsys.readouterr().out
