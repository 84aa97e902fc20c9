"""Helpers shared by the training drivers (private)."""

from __future__ import annotations

import math
import numbers

from ..optimizers import (minimize_adam, minimize_lbfgs, minimize_newton_cg, minimize_nonlinear_cg,
                          minimize_projected_gradient, minimize_projected_newton_cg, minimize_sgd,
                          minimize_steepest_descent, minimize_trust_region_krylov, minimize_trust_region_steihaug)

#: Solver names accepted where a solver is expected (the function itself is accepted too).
SOLVERS = {
    "newton_cg": minimize_newton_cg,
    "gauss_newton": minimize_newton_cg,
    "trust_region_steihaug": minimize_trust_region_steihaug,
    "trust_region_krylov": minimize_trust_region_krylov,
    "lbfgs": minimize_lbfgs,
    "nonlinear_cg": minimize_nonlinear_cg,
    "steepest_descent": minimize_steepest_descent,
    "sgd": minimize_sgd,
    "adam": minimize_adam,
    "projected_gradient": minimize_projected_gradient,
    "projected_newton_cg": minimize_projected_newton_cg,
}


def resolve_solver(name, solver):
    """A solver function from a callable or one of the names of :data:`SOLVERS`."""
    if callable(solver):
        return solver
    if isinstance(solver, str) and solver in SOLVERS:
        return SOLVERS[solver]
    allowed = "{" + ", ".join(repr(k) for k in SOLVERS) + "}"
    raise ValueError(f"{name} must be a solver function (e.g. meganet.optimizers.minimize_newton_cg) or one of "
                     f"{allowed}, got {solver!r}")


def check_options(name, options):
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"{name} must be a dict of keyword options or None, got {type(options).__name__}")
    for key in ("callback", "verbose"):
        if key in options:
            raise ValueError(f"{name} must not contain {key!r}: pass it to the driver itself")
    return dict(options)


def check_real(name, value, *, low=None, high=None):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return value


def fmt(v, spec):
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)
