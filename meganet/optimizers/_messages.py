"""Stop messages written for the solver that ran (private).

:attr:`Status.message` says what happened in words true for every solver;
:func:`stop_message` adds what to try next, which depends on the solver: a
first-order method may suggest L-BFGS or a second-order method, a second-order
method more inner iterations or a preconditioner (when it ran without one),
a trust-region method a smaller radius.  As in optimistix, the message is
part of the result, so it must never recommend the method that just failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .result import Status

#: ``SolverKind.order`` values.
ORDERS = ("first", "quasi_newton", "second", "stochastic")


@dataclass(frozen=True)
class SolverKind:
    """What a solver is, as far as its stop messages are concerned.

    Attributes
    ----------
    order : {'first', 'quasi_newton', 'second', 'stochastic'}
    trust_region : bool
        Globalized by a trust region (else by a line search or, for the
        stochastic methods, by nothing).
    bounded : bool
        A box-constrained (projected) method.
    step_option : str, optional
        The option that sets the length of the first step (``initial_step``,
        ``max_step``, ``initial_radius``, ``learning_rate``).
    inner : str, optional
        Second order: the inner-iteration budget as ``"cg_max_iter = 10"``.
    inner_rtol : str, optional
        Second order: the name of the inner relative tolerance option.
    hessian : {'exact', 'gauss_newton'}, optional
        What the problem's Hessian product multiplies with, where it says so.
    """

    order: str
    trust_region: bool = False
    bounded: bool = False
    step_option: str | None = None
    inner: str | None = None
    inner_rtol: str | None = None
    hessian: str | None = None

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")


def _max_iter(kind, preconditioned):
    if kind.order == "first":
        if kind.bounded:
            return ("Increase max_iter or loosen gtol/rtol. The projected gradient method converges only "
                    "linearly; with Hessian products the projected Newton-CG method "
                    "(minimize_projected_newton_cg) needs far fewer iterations on ill-conditioned problems.")
        return ("Increase max_iter or loosen gtol/rtol. Steepest descent converges only linearly; L-BFGS or, "
                "with Hessian products, a second-order method (Newton-CG, a trust-region method) needs far fewer "
                "iterations on ill-conditioned problems.")
    if kind.order == "quasi_newton":
        return ("Increase max_iter or loosen gtol/rtol; with Hessian products a second-order method "
                "(Newton-CG / Gauss-Newton-CG, a trust-region method) may need fewer iterations.")
    # second order
    text = "Increase max_iter" + (" (it counts rejected steps too)" if kind.trust_region else "")
    text += " or loosen gtol/rtol"
    if kind.inner is not None:
        text += f"; if the steps make little progress, allow more inner iterations per step ({kind.inner})"
        if kind.inner_rtol is not None:
            text += f" or a smaller {kind.inner_rtol}"
    if not preconditioned:
        text += ("; a preconditioner (preconditioner=callable r -> M^-1 r, or an objective built with one) "
                 "reduces the inner iterations a step needs")
    return text + "."


def _not_descent(kind):
    if kind.order != "second":
        return "The gradient is probably wrong (check it with a Taylor test)."
    if kind.hessian == "gauss_newton":
        what = ("The Gauss-Newton product or the preconditioner is not symmetric positive (semi)definite, or the "
                "gradient is wrong: check the Hessian product with a dot test and the gradient with a Taylor test")
    else:
        what = ("The Hessian product or the preconditioner is not symmetric positive definite (an exact Hessian "
                "need not be away from a minimum), or the gradient is wrong: use a Gauss-Newton Hessian, check the "
                "Hessian product with a dot test and the gradient with a Taylor test")
    return what + ", pass on_non_descent='steepest_descent', or use a trust-region method."


def _non_finite(kind):
    if kind.order == "stochastic":
        return ("SGD/Adam return the iterate at the end of the last completed epoch. Lower the learning rate, "
                "check the data and the initial point for NaN, or add regularization.")
    parts = []
    if kind.trust_region:
        parts.append("lower initial_radius or max_radius")
    elif kind.step_option is not None:
        parts.append(f"lower {kind.step_option}" if kind.step_option != "max_step"
                     else "cap the step with max_step")
    if kind.order == "second":
        parts.append("check the Hessian product (dot test)")
    parts.append("check the data and the initial point for NaN")
    text = ", ".join(parts) + ", or add regularization."
    return text[0].upper() + text[1:]


def _max_work_units(kind, work_units, max_work_units):
    unit = "epoch" if kind.order == "stochastic" else "iteration"
    spent = "" if max_work_units is None else (
        f"Budget max_work_units = {max_work_units:g}, spent {work_units:g} work units "
        f"(checked before each {unit}, so a run may overshoot it by up to one {unit}'s work). ")
    return spent + "Raise max_work_units (or pass None) to train longer."


def stop_message(status, kind: SolverKind, *, preconditioned=False, work_units=None, max_work_units=None) -> str:
    """``Status(status).message`` followed by what to try next, for a solver of ``kind``.

    ``preconditioned``: a preconditioner was applied during the run (second
    order only; otherwise the hint at ``max_iter`` suggests one).
    ``work_units``, ``max_work_units``: the work spent and the budget, named
    in the message of a ``max_work_units`` stop.
    """
    status = Status(status)
    hint = None
    if status is Status.CONVERGED_GTOL and kind.bounded:
        hint = "(For box constraints the gradient norm is the projected-gradient norm |x - P(x - g)|.)"
    elif status is Status.MAX_ITER:
        hint = _max_iter(kind, preconditioned)
    elif status is Status.LINE_SEARCH_FAILED and not kind.bounded:
        hint = "A trust-region method (minimize_trust_region_steihaug / _krylov, with Hessian products) may help."
    elif status is Status.NOT_DESCENT_DIRECTION:
        hint = _not_descent(kind)
    elif status is Status.NON_FINITE:
        hint = _non_finite(kind)
    elif status is Status.MAX_WORK_UNITS:
        hint = _max_work_units(kind, work_units, max_work_units)
    return status.message if hint is None else f"{status.message} {hint}"
