"""Line searches on a one-dimensional restriction ``φ(α) = f(x + α p)``.

Both searches work on callables of the step length only, so they know nothing
about arrays: the caller evaluates the objective (and gradient) at
``x + α p`` and hands back Python floats plus an opaque ``payload`` (the trial
point, its gradient, …) that is returned with the accepted step, so the
accepted point is never evaluated twice.

A trial value that is NaN/Inf counts as "step too long": the searches shrink
the step, and report ``non_finite=True`` if they end on such a trial.

Near a minimizer the decrease ``c₁ α φ'(0)`` drops below the rounding error
of ``φ`` and value comparisons become noise (the reason value-based searches
stall at ``‖g‖ ≈ sqrt(ε |f|)``).  Both searches therefore accept an
``f_tol``: a trial with ``|φ(α) − φ(0)| ≤ f_tol`` is judged by the trapezoidal
estimate ``φ(0) + α (φ'(0) + φ'(α)) / 2`` (exact for quadratics, free of
cancellation) instead of its computed value — the idea behind the
approximate Wolfe conditions of Hager & Zhang (SIAM J. Optim. 16, 2005).
The estimate is used only while no trial of the search has been clearly
worse than ``φ(0) + f_tol`` (a wrong gradient shows itself there: the first
trial increases ``φ``, and the backtracking that follows must not be fooled
by the same wrong derivatives); otherwise a trial must decrease ``φ``
strictly, so a search on a wrong gradient fails instead of accepting a step
that changes nothing.

Hand-written rather than ``scipy.optimize.line_search`` because the trial
evaluations must go through the caller (work counters, device arrays,
float32) and non-finite trials must shrink the step instead of failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.validation import check_bool

__all__ = ["LineSearchResult", "armijo_backtracking", "strong_wolfe"]


@dataclass
class LineSearchResult:
    """Outcome of a line search.

    Attributes
    ----------
    alpha : float
        Accepted step (0.0 on failure).
    f : float
        ``φ(alpha)``.
    payload : object
        What the trial function returned with the accepted step.
    n_eval : int
        Trial evaluations.
    success : bool
        Sufficient decrease holds at ``alpha``.
    curvature : bool
        The strong Wolfe curvature condition holds too (strong Wolfe only).
    non_finite : bool
        The search failed and its last trial value was NaN/Inf.
    """

    alpha: float
    f: float
    payload: object
    n_eval: int
    success: bool
    curvature: bool = False
    non_finite: bool = False


def _finite(v):
    return v is not None and math.isfinite(v)


def _change(f, d, f0, slope, alpha, f_tol):
    """``φ(α) − φ(0)`` as used by the tests: the trapezoidal estimate
    ``α (φ'(0) + φ'(α)) / 2`` when both it and the computed change are inside
    the noise band (kept as a difference: added to ``φ(0)`` it would round away)."""
    df = f - f0
    if d is not None and _finite(d) and abs(df) <= f_tol:
        est = 0.5 * alpha * (slope + d)
        if abs(est) <= f_tol:
            return est
    return df


def armijo_backtracking(phi, f0, slope, *, alpha0=1.0, c1=1e-4, max_backtracks=30, interpolate=True,
                        dphi=None, f_tol=0.0):
    """Backtracking line search for the Armijo condition (Nocedal & Wright, Alg. 3.1).

    Accepts the first trial with ``φ(α) ≤ φ(0) + c₁ α φ'(0)`` and ``φ(α) < φ(0)``.
    After a rejected finite trial the next step is the minimizer of the
    quadratic interpolating ``φ(0), φ'(0), φ(α)`` (N&W eq. 3.58), safeguarded
    to ``[0.1 α, 0.5 α]``; after a non-finite trial the step is halved.

    Parameters
    ----------
    phi : callable ``alpha -> (value, payload)``
    f0 : float
        ``φ(0)``.
    slope : float
        ``φ'(0) = gᵀp``, must be negative.
    alpha0 : float
        First trial step.
    c1 : float
        Sufficient-decrease constant in ``(0, 1)``.
    max_backtracks : int
        Trials after the first one.
    interpolate : bool
        Quadratic interpolation (True) or plain halving (False, e.g. along a
        projection arc where φ is only piecewise smooth).
    dphi : callable ``(alpha, payload) -> φ'(α)``, optional
        Called only for trials inside the noise band (see the module docstring).
    f_tol : float
        Width of the noise band around ``φ(0)``.
    """
    interpolate = check_bool("interpolate", interpolate)
    if not slope < 0.0:
        raise ValueError(f"slope must be negative (a descent direction), got {slope!r}")
    alpha = float(alpha0)
    last_finite = True
    use_estimate = dphi is not None
    for k in range(max_backtracks + 1):
        f, payload = phi(alpha)
        last_finite = _finite(f)
        if last_finite:
            change = f - f0
            if change > f_tol:
                use_estimate = False
            elif use_estimate and abs(change) <= f_tol:
                change = _change(f, dphi(alpha, payload), f0, slope, alpha, f_tol)
            if change <= c1 * alpha * slope and change < 0.0:
                return LineSearchResult(alpha, f, payload, k + 1, True)
        else:
            use_estimate = False
        if last_finite and interpolate:
            denom = 2.0 * (change - slope * alpha)
            new = -slope * alpha * alpha / denom if denom > 0.0 else 0.5 * alpha
            alpha = min(max(new, 0.1 * alpha), 0.5 * alpha)
        else:
            alpha = 0.5 * alpha
    return LineSearchResult(0.0, f0, None, max_backtracks + 1, False, non_finite=not last_finite)


def _cubic_min(a, fa, da, b, fb, db):
    """Minimizer of the cubic interpolating φ and φ' at ``a`` and ``b`` (N&W eq. 3.59), or None."""
    if a == b:
        return None
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if not (disc >= 0.0) or not math.isfinite(disc):
        return None
    d2 = math.copysign(math.sqrt(disc), b - a)
    denom = db - da + 2.0 * d2
    if denom == 0.0 or not math.isfinite(denom):
        return None
    return b - (b - a) * (db + d2 - d1) / denom


def strong_wolfe(evaluate, f0, slope, *, alpha0=1.0, c1=1e-4, c2=0.9, alpha_max=1e10, max_eval=30, f_tol=0.0):
    """Line search for the strong Wolfe conditions (Nocedal & Wright, Alg. 3.5 with zoom, Alg. 3.6).

    Finds ``α`` with ``φ(α) ≤ φ(0) + c₁ α φ'(0)`` and ``|φ'(α)| ≤ c₂ |φ'(0)|``.
    The bracketing phase doubles the step; ``zoom`` uses safeguarded cubic
    interpolation (N&W eq. 3.59) and falls back to bisection.  If the
    evaluation budget runs out while a trial with sufficient decrease is
    known, that trial is returned with ``curvature=False``.  Values within
    ``f_tol`` of ``φ(0)`` are replaced by their trapezoidal estimate (module
    docstring).

    Parameters
    ----------
    evaluate : callable ``alpha -> (value, derivative, payload)``
        ``derivative = ∇f(x + αp)ᵀp`` (ignored when ``value`` is not finite).
    f0, slope : float
        ``φ(0)`` and ``φ'(0) < 0``.
    alpha0 : float
        First trial step.
    c1, c2 : float
        ``0 < c1 < c2 < 1``: 0.9 for quasi-Newton, ~0.1 for nonlinear CG.
    alpha_max : float
        Largest step tried.
    max_eval : int
        Evaluation budget.
    f_tol : float
        Width of the noise band around ``φ(0)``.
    """
    if not slope < 0.0:
        raise ValueError(f"slope must be negative (a descent direction), got {slope!r}")
    # all values below are changes φ(α) − φ(0) (see _change); φ(0) itself is 0
    n_eval = 0
    best = None  # (alpha, change, f, payload): best trial with sufficient decrease
    band = [f_tol]  # set to -1 (no estimates) once a trial was clearly worse than φ(0)

    def trial(alpha):
        nonlocal n_eval, best
        n_eval += 1
        f, d, payload = evaluate(alpha)
        if not (_finite(f) and _finite(d)):
            band[0] = -1.0
            return math.nan, None, (math.nan, payload), False  # a NaN gradient makes the trial unusable
        if f - f0 > f_tol:
            band[0] = -1.0
        v = _change(f, d, f0, slope, alpha, band[0])
        ok = v <= c1 * alpha * slope and v < 0.0
        if ok and (best is None or v < best[1]):
            best = (alpha, v, f, payload)
        return v, d, (f, payload), ok

    def done(alpha, fp):
        return LineSearchResult(alpha, fp[0], fp[1], n_eval, True, curvature=True)

    def give_up(last_finite):
        if best is not None:
            return LineSearchResult(best[0], best[2], best[3], n_eval, True, curvature=False)
        return LineSearchResult(0.0, f0, None, n_eval, False, non_finite=not last_finite)

    def zoom(lo, f_lo, d_lo, hi, f_hi, d_hi):
        # invariant: lo satisfies sufficient decrease and has the lowest value so far;
        # d_lo (hi - lo) < 0.  f_hi may be non-finite (then d_hi is None).
        last_finite = True
        while n_eval < max_eval:
            width = hi - lo
            a = None
            if _finite(f_hi) and d_hi is not None and _finite(d_hi):
                a = _cubic_min(lo, f_lo, d_lo, hi, f_hi, d_hi)
            left, right = min(lo, hi), max(lo, hi)
            margin = 0.1 * abs(width)
            if a is None or not (left + margin <= a <= right - margin):
                a = lo + 0.5 * width
            if abs(width) <= 1e-14 * max(1.0, abs(lo)):
                break
            f, d, fp, ok = trial(a)
            last_finite = _finite(f)
            if not ok or f >= f_lo:
                hi, f_hi, d_hi = a, f, d
            else:
                if abs(d) <= -c2 * slope:
                    return done(a, fp)
                if d * (hi - lo) >= 0.0:
                    hi, f_hi, d_hi = lo, f_lo, d_lo
                lo, f_lo, d_lo = a, f, d
        return give_up(last_finite)

    a_prev, f_prev, d_prev = 0.0, 0.0, slope
    alpha = min(float(alpha0), alpha_max)
    first = True
    while n_eval < max_eval:
        f, d, fp, ok = trial(alpha)
        if not ok or (not first and f >= f_prev):
            return zoom(a_prev, f_prev, d_prev, alpha, f, d)
        if abs(d) <= -c2 * slope:
            return done(alpha, fp)
        if d >= 0.0:
            return zoom(alpha, f, d, a_prev, f_prev, d_prev)
        if alpha >= alpha_max:
            break
        a_prev, f_prev, d_prev = alpha, f, d
        alpha = min(2.0 * alpha, alpha_max)
        first = False
    return give_up(True)
