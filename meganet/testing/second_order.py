"""Checks of second-order products: Taylor test of a gradient and symmetry of a Hessian product.

For a map with hand-coded gradient ``g(x)`` and Hessian product ``H(x) v``

    E0(h) = ‖g(x + h v) − g(x)‖            = O(h)
    E1(h) = ‖g(x + h v) − g(x) − h H(x) v‖ = O(h²)

is the first-order Taylor test of :mod:`meganet.testing.taylor` applied to
``g`` (same verdict logic), and ``⟨u, H v⟩ = ⟨H u, v⟩`` checks that the
product is symmetric.  :func:`check_second_order` runs both on an element's
``g(θ, Y) = ⟨W, F(θ, Y)⟩``, whose gradient is ``JTmv(W)`` and whose Hessian
product is :meth:`~meganet.core.element.Element.second_order_adjoint`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, to_backend
from ..core.validation import check_bool
from .adjoint import DotReport, _norm, _vdot
from .check import ElementReport, random_direction
from .taylor import taylor_test_line

__all__ = ["SymmetryReport", "symmetry_test", "default_symmetry_tol", "check_second_order", "assert_second_order"]


def default_symmetry_tol(dtype):
    """``1e-12`` in float64; ``1e-4`` (≈ 800·eps) in float32."""
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-4


@dataclass
class SymmetryReport(DotReport):
    """``lhs = ⟨u, H v⟩``, ``rhs = ⟨H u, v⟩``, ``rel_err = |lhs − rhs| / max(‖u‖‖Hv‖, ‖Hu‖‖v‖)`` (the fields
    of :class:`~meganet.testing.adjoint.DotReport`; its own scale and tolerance, see :func:`symmetry_test`)."""

    def __str__(self):
        status = "PASS" if self.ok else "FAIL"
        return (f"Symmetry test {self.name} ({self.dtype}): <u,Hv> = {self.lhs:.16e}, <Hu,v> = {self.rhs:.16e}, "
                f"relative error {self.rel_err:.2e} (tol {self.tol:.1e}) {status}")


def symmetry_test(hess_mv, u, v, *, tol=None, name=""):
    """Compare ``⟨u, hess_mv(v)⟩`` with ``⟨hess_mv(u), v⟩`` (flat arrays)."""
    Hu, Hv = hess_mv(u), hess_mv(v)
    lhs, rhs = _vdot(u, Hv), _vdot(Hu, v)
    scale = max(_norm(u) * _norm(Hv), _norm(Hu) * _norm(v), 1e-300)
    rel = abs(lhs - rhs) / scale
    tol = default_symmetry_tol(u.dtype) if tol is None else float(tol)
    return SymmetryReport(name=name, dtype=str(u.dtype), lhs=lhs, rhs=rhs, rel_err=rel, tol=tol, ok=bool(rel <= tol))


def check_second_order(element, theta, Y, W=None, *, rng=0, rel_step=0.5, wrt=("theta", "Y", "both"),
                       symmetry=True, symmetry_tol=None, name=None, **taylor_kwargs):
    """Verify :meth:`Element.second_order_adjoint` on ``g(θ, Y) = ⟨W, F(θ, Y)⟩``.

    For each ``wrt`` the direction perturbs θ, Y or both (random, ``rel_step``
    relative to ``‖θ‖``, ``‖Y‖``); the Taylor test is that of the gradient
    ``∇g = (J_θᵀW, J_Yᵀ W)`` against ``∇²g · v``, and one symmetry test of
    the full product on ``(θ, Y)`` is added.

    Parameters
    ----------
    element : Element with ``has_second_order``
    theta, Y : arrays
    W : array, shape (n_examples, *shape_out), optional
        Default: standard normal from ``rng``.
    rng : int or Generator
    rel_step : float
        Size of the random directions relative to ``‖θ‖``, ``‖Y‖``.
    wrt : tuple of {'theta', 'Y', 'both'}
    symmetry : bool, default True
        Add the symmetry test ``⟨u, ∇²g v⟩ = ⟨∇²g u, v⟩``.
    symmetry_tol : float, optional
        Default :func:`default_symmetry_tol` of the dtype.
    name : str, optional
    **taylor_kwargs
        Passed to :func:`~meganet.testing.taylor.taylor_test_line`.

    Returns
    -------
    ElementReport
    """
    symmetry = check_bool("symmetry", symmetry)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    # the gradient is the output of an adjoint sweep, whose round-off grows with depth (leapfrog's two-step
    # recursion in float32 needs it): the floor is 100·eps·(‖g‖ + h‖Hv‖) in both dtypes
    taylor_kwargs.setdefault("floor_factor", 100.0)
    xp = get_array_module(Y)
    name = name or repr(element)
    Z, cache = element.forward(theta, Y)
    if W is None:
        W = to_backend(rng.standard_normal(Z.shape).astype(Y.dtype), xp)
    n_t = element.n_theta

    def split(x):
        return x[:n_t], x[n_t:].reshape(Y.shape)

    def grad(x):
        th, y = split(x)
        gt, gy = element.JTmv(W, th, y)
        return xp.concatenate([gt.reshape(-1), gy.reshape(-1)])

    def hess_mv(v, x=None):
        th, y = (theta, Y) if x is None else split(x)
        dt, dy = split(v)
        st, sy = element.second_order_adjoint(W, dt if n_t else None, dy, th, y, cache if x is None else None)
        return xp.concatenate([st.reshape(-1), sy.reshape(-1)])

    x0 = xp.concatenate([theta.reshape(-1), Y.reshape(-1)])
    g0 = grad(x0)
    report = ElementReport(name=name)
    wrt = tuple(w for w in wrt if n_t or w == "Y")
    for w in wrt:
        dt = random_direction(theta, rng, rel_step) if w in ("theta", "both") else xp.zeros_like(theta)
        dy = random_direction(Y, rng, rel_step) if w in ("Y", "both") else xp.zeros_like(Y)
        v = xp.concatenate([dt.reshape(-1), dy.reshape(-1)])
        Hv = hess_mv(v)
        report.reports.append(taylor_test_line(lambda h, v=v: grad(x0 + h * v), g0, Hv,
                                               name=f"{name} gradient wrt {w}", **taylor_kwargs))
    if symmetry:
        u = xp.concatenate([random_direction(theta, rng, 1.0).reshape(-1), random_direction(Y, rng, 1.0).reshape(-1)])
        v = xp.concatenate([random_direction(theta, rng, 1.0).reshape(-1), random_direction(Y, rng, 1.0).reshape(-1)])
        report.reports.append(symmetry_test(hess_mv, u, v, tol=symmetry_tol, name=name))
    return report


def assert_second_order(element, *args, **kwargs):
    """:func:`check_second_order` raising ``AssertionError`` with the failing reports."""
    rep = check_second_order(element, *args, **kwargs)
    if not rep.ok:
        raise AssertionError("\n" + "\n\n".join(str(r) for r in rep.failures()))
    return rep
