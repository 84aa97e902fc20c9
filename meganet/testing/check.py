"""``check_element``: Taylor and dot tests of an element w.r.t. θ, Y and both."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backend import check_dtype, get_array_module, resolve_xp, to_backend
from ..core.validation import check_bool, check_int, check_option
from .adjoint import dot_test
from .taylor import taylor_test_line

__all__ = ["ElementReport", "check_element", "assert_element", "random_direction"]

_WRT = ("theta", "Y", "both")


def random_direction(x, rng, rel=0.5):
    """A random direction with ``‖v‖ = rel·‖x‖`` (or RMS ``rel`` if ``x`` ≈ 0),
    drawn in float64 on the host and cast/moved like ``x``."""
    xp = get_array_module(x)
    v = rng.standard_normal(x.shape)
    nx = float(np.linalg.norm(np.asarray(to_backend(x, np), dtype=np.float64)))
    scale = rel * (nx if nx > 1e-8 * np.sqrt(max(x.size, 1)) else np.sqrt(max(x.size, 1)))
    nv = np.linalg.norm(v)
    if nv > 0:
        v *= scale / nv
    return to_backend(v.astype(x.dtype), xp)


@dataclass
class ElementReport:
    """Collected Taylor and dot reports of one element; ``ok`` if all passed."""

    name: str
    reports: list = field(default_factory=list)

    @property
    def ok(self):
        return all(r.ok for r in self.reports)

    def __bool__(self):
        return self.ok

    def failures(self):
        return [r for r in self.reports if not r.ok]

    def __str__(self):
        head = f"check_element {self.name}: {'PASS' if self.ok else 'FAIL'}"
        return "\n\n".join([head] + [str(r) for r in self.reports])


def check_element(element, theta=None, Y=None, *, n_examples=3, rng=0, dtype=np.float64, xp=None,
                  wrt=_WRT, taylor=True, dot=True, rel_step=0.5, verbose=False, name=None, **taylor_kwargs):
    """Verify an element's ``Jmv`` (Taylor test) and ``JTmv`` (dot test).

    Parameters
    ----------
    element : Element
    theta : array, optional
        Default ``element.init_theta(rng=rng, dtype=dtype, xp=xp)``.
    Y : array, optional
        Default standard normal of shape ``(n_examples, *element.shape_in)``.
    rng : int or numpy.random.Generator
    dtype, xp : used when ``theta``/``Y`` are drawn here
    wrt : iterable of {'theta', 'Y', 'both'}
    rel_step : float
        Size of the random directions relative to ``‖θ‖`` and ``‖Y‖``.
    verbose : bool
        Print every table.
    **taylor_kwargs
        Passed on to :func:`~meganet.testing.taylor.taylor_test_line`.

    Returns
    -------
    ElementReport
    """
    taylor, dot, verbose = (check_bool(k, v) for k, v in (("taylor", taylor), ("dot", dot), ("verbose", verbose)))
    wrt = tuple(wrt)
    for w in wrt:
        check_option("wrt", w, _WRT)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if theta is None:
        theta = element.init_theta(rng=rng, dtype=dtype, xp=xp)
    if Y is None:
        n_examples = check_int("n_examples", n_examples, minimum=1)
        dtype = check_dtype(dtype)
        Y = to_backend(rng.standard_normal((n_examples, *element.shape_in)).astype(dtype), resolve_xp(xp))
    name = name or repr(element)
    report = ElementReport(name=name)
    Z, cache = element.forward(theta, Y)
    if Y.shape[0] == 0:
        raise ValueError("Y has 0 examples; the Taylor and dot tests would pass without testing anything: "
                         "pass at least one example")
    if element.n_theta == 0:
        wrt = tuple(w for w in wrt if w == "Y")
    for w in wrt:
        dtheta = random_direction(theta, rng, rel_step) if w in ("theta", "both") else None
        dY = random_direction(Y, rng, rel_step) if w in ("Y", "both") else None
        if taylor:
            dZ = element.Jmv(dtheta, dY, theta, Y, cache)

            def phi(h, dtheta=dtheta, dY=dY):
                th = theta if dtheta is None else theta + h * dtheta
                y = Y if dY is None else Y + h * dY
                return element.forward(th, y)[0]

            report.reports.append(taylor_test_line(phi, Z, dZ, name=f"{name} wrt {w}", **taylor_kwargs))
        if dot:
            op = element.jacobian(theta, Y, cache, wrt=w)
            xp_ = get_array_module(Y)
            v = to_backend(rng.standard_normal(op.shape[1]).astype(Y.dtype), xp_)
            wv = to_backend(rng.standard_normal(op.shape[0]).astype(Y.dtype), xp_)
            report.reports.append(dot_test(op.matvec, op.rmatvec, v, wv, name=f"{name} wrt {w}"))
    if verbose:
        print(report)
    return report


def assert_element(element, *args, **kwargs):
    """:func:`check_element` raising ``AssertionError`` with the failing tables."""
    rep = check_element(element, *args, **kwargs)
    if not rep.ok:
        raise AssertionError("\n" + "\n\n".join(str(r) for r in rep.failures()))
    return rep
