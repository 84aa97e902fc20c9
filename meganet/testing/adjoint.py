"""Adjoint (dot) test ``<J v, w> = <v, Jᵀ w>`` (PyLops ``dottest`` style)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..core.validation import check_bool

__all__ = ["DotReport", "dot_test", "assert_adjoint", "default_dot_tol"]


def _vdot(a, b):
    xp = get_array_module(a, b)
    return float(xp.vdot(a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)))


def default_dot_tol(dtype, n):
    """``100·eps·sqrt(n)``: float64 with n = 10⁴ gives 2.2e-12, float32 1.2e-3."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return 100.0 * eps * max(1.0, float(np.sqrt(n)))


def _norm(a):
    xp = get_array_module(a)
    return float(xp.linalg.norm(a.reshape(-1).astype(np.float64)))


@dataclass
class DotReport:
    """Result of a dot test: ``lhs = <J v, w>``, ``rhs = <v, Jᵀ w>``,
    ``rel_err = |lhs − rhs| / scale`` with ``scale`` the larger of
    ``(|lhs| + |rhs|)/2`` and the typical size of a random inner product,
    ``max(‖Jv‖‖w‖/√m, ‖v‖‖Jᵀw‖/√n)``; the latter guards against a random ``w``
    that happens to be nearly orthogonal to ``Jv`` (cancellation, not an error)."""

    name: str
    dtype: str
    lhs: float
    rhs: float
    rel_err: float
    tol: float
    ok: bool

    def __str__(self):
        status = "PASS" if self.ok else "FAIL"
        return (f"Dot test {self.name} ({self.dtype}): <Jv,w> = {self.lhs:.16e}, <v,JTw> = {self.rhs:.16e}, "
                f"relative error {self.rel_err:.2e} (tol {self.tol:.1e}) {status}")

    def __bool__(self):
        return bool(self.ok)


def dot_test(matvec, rmatvec, v, w, *, tol=None, name="", verbose=False):
    """Compare ``<matvec(v), w>`` with ``<v, rmatvec(w)>``.

    Parameters
    ----------
    matvec, rmatvec : callables
    v : array in the domain, w : array in the range (any shapes)
    tol : float, optional
        Relative tolerance (default :func:`default_dot_tol` from the dtype and size).

    Returns
    -------
    DotReport
    """
    verbose = check_bool("verbose", verbose)
    Jv = matvec(v)
    JTw = rmatvec(w)
    if Jv.shape != w.shape:
        raise ValueError(f"matvec(v) has shape {tuple(Jv.shape)} but w has shape {tuple(w.shape)}")
    if JTw.shape != v.shape:
        raise ValueError(f"rmatvec(w) has shape {tuple(JTw.shape)} but v has shape {tuple(v.shape)}")
    lhs, rhs = _vdot(Jv, w), _vdot(v, JTw)
    typical = max(_norm(Jv) * _norm(w) / np.sqrt(max(w.size, 1)), _norm(v) * _norm(JTw) / np.sqrt(max(v.size, 1)))
    scale = max(0.5 * (abs(lhs) + abs(rhs)), typical)
    rel = abs(lhs - rhs) / scale if scale > 0 else 0.0
    if tol is None:
        tol = default_dot_tol(v.dtype, max(v.size, w.size))
    ok = bool(np.isfinite(lhs) and np.isfinite(rhs) and rel <= tol)
    rep = DotReport(name=name, dtype=str(v.dtype), lhs=lhs, rhs=rhs, rel_err=rel, tol=tol, ok=ok)
    if verbose:
        print(rep)
    return rep


def assert_adjoint(*args, **kwargs):
    """:func:`dot_test` that raises ``AssertionError`` on failure."""
    rep = dot_test(*args, **kwargs)
    if not rep.ok:
        raise AssertionError(str(rep))
    return rep
