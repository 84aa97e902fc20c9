"""Machinery shared by the optimizers: evaluation with counters and caching,
the per-iteration table (verbose printing, history, callback), option checks.

Private module; solvers import from here, users do not.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time

import numpy as np

from ..backend import get_array_module
from ..core.validation import check_array, check_int
from ._messages import SolverKind, stop_message
from .result import History, OptimizeResult, Status

# --------------------------------------------------------------------------- scalars


def dot(a, b) -> float:
    """``aᵀb`` of two flat vectors as a Python float (one host sync)."""
    return float(a @ b)


def norm(a) -> float:
    """Euclidean norm as a Python float (NaN stays NaN)."""
    s = dot(a, a)
    return math.sqrt(s) if s >= 0.0 else float("nan")


def isfinite(v) -> bool:
    return v is not None and math.isfinite(v)


def eps_of(dtype) -> float:
    return float(np.finfo(dtype).eps)


# --------------------------------------------------------------------------- validation


def prepare_x0(x0):
    """Validate ``x0`` (flat float32/float64 numpy or cupy vector, finite) and copy it."""
    check_array("x0", x0, finite=True)
    if x0.ndim != 1:
        raise ValueError(f"x0 must be a flat 1-D parameter vector, got shape {tuple(x0.shape)}")
    if x0.shape[0] == 0:
        raise ValueError("x0 must not be empty")
    return x0.copy()


def check_real(name, value, *, low=None, high=None, low_open=False, high_open=False, allow_inf=False):
    """A real number in ``[low, high]`` (bounds open where asked); returns a Python float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (not allow_inf and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    bad = (low is not None and (value < low or (low_open and value == low))) or (
        high is not None and (value > high or (high_open and value == high))
    )
    if bad:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        interval = f"{left}{lo}, {hi}{right}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_callback(callback):
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (x, row) or None, got {type(callback).__name__}")
    return callback


def check_common(*, max_iter, gtol, rtol, ftol, callback, verbose, dtype):
    """Validate the options every deterministic solver shares."""
    max_iter = check_int("max_iter", max_iter, minimum=0)
    gtol = check_real("gtol", gtol, low=0.0)
    rtol = check_real("rtol", rtol, low=0.0, high=1.0)
    ftol = check_real("ftol", ftol, low=0.0, high=1.0)
    return max_iter, gtol, rtol, ftol, check_callback(callback), check_bool("verbose", verbose)


def check_max_work_units(max_work_units, counter):
    """``None`` or a positive finite budget of work units; a budget needs a problem that counts work."""
    if max_work_units is None:
        return None
    if isinstance(max_work_units, bool) or not isinstance(max_work_units, numbers.Real):
        raise TypeError(f"max_work_units must be None or a positive number, got {max_work_units!r}")
    v = float(max_work_units)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"max_work_units must be a positive finite number (or None: no budget), "
                         f"got {max_work_units!r}")
    if counter is None:
        raise ValueError(f"max_work_units = {v:g} needs a problem that counts its work (a `counter` attribute, "
                         "e.g. meganet.objectives.NetworkObjective); this problem has none")
    return v


def check_problem(problem, solver, *methods):
    missing = [m for m in methods if not callable(getattr(problem, m, None))]
    if missing:
        raise TypeError(
            f"{solver} needs a problem with method(s) {', '.join(m + '()' for m in missing)}; "
            f"got {type(problem).__name__}. See meganet.optimizers.problem for the protocol "
            "(or wrap functions with FunctionProblem(fun, grad, hessp))."
        )


def check_label(label, default):
    """The solver's label for the table header and ``result.solver``: ``default`` when ``label`` is None."""
    if label is None:
        return default
    if not isinstance(label, str):
        raise TypeError(f"label must be a string naming the solver or None, got {type(label).__name__}")
    if not label.strip() or "\n" in label or "\r" in label:
        raise ValueError(f"label must be a non-empty single line, got {label!r}")
    return label


def hessian_kind(problem):
    """``'exact'``, ``'gauss_newton'`` or ``None`` (unknown): what ``problem.hessian_matvec`` multiplies with.

    A problem declares it with an attribute ``hessian`` in ``{'exact', 'gauss_newton'}``
    (as :class:`~meganet.optimizers.Rosenbrock`) or a boolean ``gauss_newton``."""
    h = getattr(problem, "hessian", None)
    if isinstance(h, str) and h in ("exact", "gauss_newton"):
        return h
    gn = getattr(problem, "gauss_newton", None)
    if isinstance(gn, (bool, np.bool_)):
        return "gauss_newton" if gn else "exact"
    return None


#: The header's name for the default PCG tolerance (N&W eq. 7.3).
FORCING_TERM = "min(0.5, sqrt|g|)"


def newton_label(problem, preconditioner_description, prefix=""):
    """``[prefix]Gauss-Newton-CG`` when the problem declares a Gauss-Newton Hessian product
    (:func:`~meganet.optimizers._common.hessian_kind`), else ``[prefix]Newton-CG``; ``-PCG``
    when a preconditioner is certainly in use."""
    base = "Gauss-Newton" if hessian_kind(problem) == "gauss_newton" else "Newton"
    return f"{prefix}{base}-{'PCG' if has_preconditioner(preconditioner_description) else 'CG'}"


def callable_name(fn) -> str:
    """``fn.__name__`` (``'<lambda>'`` for a lambda), else the name of its type."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def describe_preconditioner(problem, option):
    """How the header names the preconditioner of ``option`` (see :meth:`Evaluator.preconditioner`).

    ``'none'``; ``'given callable (name)'``; ``"the problem's (kind)"`` when the
    problem names its preconditioner in ``preconditioner_kind`` (the objectives'
    ``'regularizer'``), ``'none'`` when that is None; ``"the problem's"`` when it
    has a ``preconditioner`` method but does not say which."""
    if option is False:
        return "none"
    if callable(option) and option is not True:
        return f"given callable ({callable_name(option)})"
    if not callable(getattr(problem, "preconditioner", None)):
        return "none"
    if hasattr(problem, "preconditioner_kind"):
        kind = problem.preconditioner_kind
        return "none" if kind is None else f"the problem's ({kind})"
    return "the problem's"


def has_preconditioner(description) -> bool:
    """The description names a preconditioner for certain (not "none", not an unknown problem's)."""
    return description.startswith("given") or description.startswith("the problem's (")


def options_text(**options) -> str:
    """``"name = value, ..."`` for the header (floats as ``%g``; None values left out)."""
    parts = []
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = format(value, "g")
        parts.append(f"{name} = {value}")
    return ", ".join(parts)


def readonly(x):
    """What a callback receives: a read-only view of ``x`` (numpy; free), or a copy (cupy arrays
    have no writeable flag).  Either way a callback cannot change the solver's iterate."""
    if isinstance(x, np.ndarray):
        v = x.view()
        v.flags.writeable = False
        return v
    return x.copy()


def gtol_reached(gnorm, gnorm0, gtol, rtol) -> bool:
    """Convergence test ``‖g‖ ≤ max(gtol, rtol·‖g₀‖)`` (Meganet.m's atol/rtol)."""
    return gnorm <= max(gtol, rtol * gnorm0)


def ftol_reached(f_prev, f, ftol) -> bool:
    """``(f_prev − f) ≤ ftol·max(|f_prev|, |f|, 1)`` (the L-BFGS-B test); ``ftol = 0`` disables it."""
    return ftol > 0.0 and (f_prev - f) <= ftol * max(abs(f_prev), abs(f), 1.0)


# --------------------------------------------------------------------------- evaluation


class Evaluator:
    """Calls the problem, counts the calls and caches the last point.

    A line search or a trust-region test only needs ``value`` at trial points;
    where the problem offers a cheaper ``value(x)`` (a forward pass) and
    ``gradient(x, state)`` (an adjoint pass reusing the forward state) they are
    used, so a rejected trial costs no gradient (scipy's lazily evaluated
    trust-region models).  Otherwise ``value_and_gradient`` is called and its
    gradient kept for when the trial point is accepted.
    """

    def __init__(self, problem, x):
        self.problem = problem
        self.xp = get_array_module(x)
        self.dtype = x.dtype
        self.shape = tuple(x.shape)
        self.n_fev = self.n_gev = self.n_hmv = self.n_prec = self.n_sgev = 0
        self._stoch_units = 0.0
        self._uncounted = 0.0  # work done by uncounted() blocks when the counter cannot be restored
        counter = getattr(problem, "counter", None)
        self._counter = counter if counter is not None and hasattr(counter, "work_units") else None
        self._work0 = float(self._counter.work_units) if self._counter is not None else 0.0
        self._value = getattr(problem, "value", None) if callable(getattr(problem, "value", None)) else None
        g = getattr(problem, "gradient", None)
        self._gradient = g if callable(g) else None
        self._x = self._f = self._g = self._state = None

    # ---------------------------------------------------------------- counters
    @property
    def work_units(self) -> float:
        """Work units spent by this solve: the problem's ``counter.work_units`` since the evaluator was
        made if it has a counter, else ``n_fev + n_gev + 2 n_hmv`` (+ 2/n_batches per mini-batch
        gradient); work done inside :meth:`uncounted` is left out either way."""
        if self._counter is not None:
            return float(self._counter.work_units) - self._work0 - self._uncounted
        return float(self.n_fev + self.n_gev + 2 * self.n_hmv) + self._stoch_units - self._uncounted

    @contextlib.contextmanager
    def uncounted(self):
        """Evaluations inside this block are monitoring, not training work (SGD/Adam's ``eval_full``):
        the problem's counter is restored afterwards (``forward``/``adjoint`` saved and put back, so
        ``problem.counter.work_units`` does not see them either) and :attr:`work_units` leaves them out.
        The call counts ``n_fev``/``n_gev`` still count them."""
        c = self._counter
        saved = (c.forward, c.adjoint) if c is not None and hasattr(c, "forward") and hasattr(c, "adjoint") else None
        before = self.work_units
        try:
            yield
        finally:
            if saved is not None:
                c.forward, c.adjoint = saved
            else:
                self._uncounted += self.work_units - before
            # forget the cached point: a later counted call at the same x must be paid for
            self._x = self._f = self._g = self._state = None

    def counts(self) -> dict:
        return dict(n_fev=self.n_fev, n_gev=self.n_gev, n_hmv=self.n_hmv, work_units=self.work_units)

    # ---------------------------------------------------------------- checks
    def check_vector(self, what, v):
        mod = get_array_module(v, names=[what]) if hasattr(v, "dtype") else None
        if mod is not self.xp:
            raise TypeError(
                f"{what} must return a {self.xp.__name__} array like x, got {type(v).__name__}"
            )
        if v.dtype != self.dtype:
            raise TypeError(
                f"{what} returned dtype {v.dtype} for x of dtype {self.dtype}; return arrays of x's dtype "
                "(meganet never casts silently)"
            )
        if tuple(v.shape) != self.shape:
            raise ValueError(f"{what} returned shape {tuple(v.shape)}, expected {self.shape}")
        return v

    @staticmethod
    def _scalar(what, f):
        try:
            return float(f)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{what} must return a real scalar objective value, got {type(f).__name__}") from err

    # ---------------------------------------------------------------- calls
    def value(self, x):
        """``(f, state)`` at ``x``."""
        if self._x is x:
            return self._f, self._state
        if self._value is not None:
            f, state = self._value(x)
            self.n_fev += 1
            self._x, self._f, self._g, self._state = x, self._scalar("problem.value", f), None, state
        else:
            self._call_vg(x)
        return self._f, self._state

    def value_and_gradient(self, x):
        """``(f, g, state)`` at ``x``, reusing a cached value when ``x`` was just evaluated."""
        if self._x is x and self._g is not None:
            return self._f, self._g, self._state
        if self._x is x and self._gradient is not None:
            g = self._gradient(x, self._state)
            self.n_gev += 1
            self._g = self.check_vector("problem.gradient", g)
            return self._f, self._g, self._state
        self._call_vg(x)
        return self._f, self._g, self._state

    def _call_vg(self, x):
        f, g, state = self.problem.value_and_gradient(x)
        self.n_fev += 1
        self.n_gev += 1
        f = self._scalar("problem.value_and_gradient", f)
        self._x, self._f, self._g, self._state = x, f, self.check_vector("problem.value_and_gradient", g), state

    def hessp(self, x, v, state):
        """Hessian (or Gauss-Newton) matvec at ``x``."""
        Hv = self.problem.hessian_matvec(x, v, state)
        self.n_hmv += 1
        return self.check_vector("problem.hessian_matvec", Hv)

    def preconditioner(self, x, state, use):
        """The problem's preconditioner ``r ↦ M⁻¹r`` at ``x`` (counted) or ``None``.

        ``use`` is the solver option: ``True`` (use it when the problem has
        one), ``False`` (never), or a callable ``r ↦ M⁻¹r`` to use instead."""
        if use is False:
            return None
        if callable(use) and use is not True:
            apply = use
        else:
            make = getattr(self.problem, "preconditioner", None)
            if not callable(make):
                return None
            apply = make(x, state)
            if apply is None:
                return None
            if not callable(apply):
                raise TypeError(
                    f"problem.preconditioner(x, state) must return a callable r -> M^-1 r or None, "
                    f"got {type(apply).__name__}"
                )

        def counted(r):
            self.n_prec += 1
            return self.check_vector("the preconditioner", apply(r))

        return counted

    def stochastic(self, x, batch_index, rng, n_batches):
        """Mini-batch ``(f_B, g_B)``; falls back to the full gradient for deterministic problems."""
        sg = getattr(self.problem, "stochastic_gradient", None)
        if callable(sg):
            f, g = sg(x, batch_index, rng)
            self.n_sgev += 1
            self._stoch_units += 2.0 / n_batches
            return self._scalar("problem.stochastic_gradient", f), self.check_vector("problem.stochastic_gradient", g)
        f, g, _ = self.value_and_gradient(x)
        return f, g


def check_preconditioner_option(preconditioner):
    if preconditioner is True or preconditioner is False or callable(preconditioner):
        return preconditioner
    raise TypeError(
        "preconditioner must be True (use the problem's), False (none) or a callable r -> M^-1 r, "
        f"got {preconditioner!r}"
    )


# --------------------------------------------------------------------------- table, history, callback

#: key -> (header, width, format spec)
_COLUMNS = {
    "iter": ("iter", 5, "d"),
    "epoch": ("epoch", 5, "d"),
    "f": ("f", 14, ".7e"),
    "f_batch": ("f(batches)", 14, ".7e"),
    "grad_norm": ("|g|", 10, ".3e"),
    "pg_norm": ("|x-P(x-g)|", 11, ".3e"),
    "step": ("step", 10, ".3e"),
    "step_norm": ("|dx|", 10, ".3e"),
    "radius": ("radius", 10, ".3e"),
    "rho": ("rho", 10, ".3e"),
    "accepted": ("acc", 4, ""),
    "n_ls": ("ls", 3, "d"),
    "cg_iter": ("cg", 4, "d"),
    "cg_info": ("cg stop", 18, ""),
    "krylov_dim": ("k", 4, "d"),
    "sigma": ("sigma", 10, ".3e"),
    "beta": ("beta", 10, ".3e"),
    "restart": ("rst", 4, ""),
    "direction": ("dir", 8, ""),
    "n_active": ("active", 7, "d"),
    "lr": ("lr", 10, ".3e"),
    "work_units": ("work", 9, ".6g"),
}


def _cell(value, width, spec):
    if value is None:
        s = "-"
    elif isinstance(value, bool):
        s = "y" if value else "n"
    elif isinstance(value, float) and not math.isfinite(value):
        s = str(value)
    elif isinstance(value, float) and spec == "d":
        s = format(value, "g")
    else:
        try:
            s = format(value, spec)
        except (TypeError, ValueError):
            s = str(value)
    return s.rjust(width)


class Monitor:
    """Records history rows, prints them when verbose, calls the callback, builds the result.

    ``callback(x, row)`` is called after every iteration (not for the initial
    row) with a read-only view of the current iterate (a copy on cupy; see
    :func:`readonly`) and a copy of the row; raising ``StopIteration`` stops
    the run with status ``callback_stop``.

    The header printed by :meth:`start` names the solver (``label``), the
    preconditioner where the solver has one, and the main options (``info``).
    """

    def __init__(self, solver, columns, *, verbose, callback, evaluator, kind, info="", preconditioner=None,
                 max_work_units=None):
        self.solver, self.columns, self.verbose, self.callback = solver, list(columns), verbose, callback
        self.evaluator = evaluator
        self.kind = kind
        self.history = History()
        self.max_work_units = check_max_work_units(max_work_units, evaluator._counter)
        if self.max_work_units is not None:
            info = (info + ", " if info else "") + f"max_work_units = {self.max_work_units:g}"
        self.info = info
        self.preconditioner = preconditioner
        self.t0 = time.perf_counter()

    def header(self, n) -> str:
        parts = [f"n = {n}"]
        if self.preconditioner is not None:
            parts.append(f"preconditioner = {self.preconditioner}")
        if self.info:
            parts.append(self.info)
        return f"== {self.solver} ({', '.join(parts)}) =="

    def start(self, n):
        if self.verbose:
            print(self.header(n), flush=True)
            print(" ".join(_COLUMNS[c][0].rjust(_COLUMNS[c][1]) for c in self.columns), flush=True)

    def _append(self, row):
        row = dict(row)
        row.setdefault("work_units", self.evaluator.work_units)
        row["time"] = time.perf_counter() - self.t0
        self.history.append(row)
        if self.verbose:
            print(" ".join(_cell(row.get(c), _COLUMNS[c][1], _COLUMNS[c][2]) for c in self.columns), flush=True)
        return row

    def record(self, row, x=None, *, callback=True) -> bool:
        """Append ``row`` (work units and time are added); return True if the callback asked to stop
        (it raised ``StopIteration``)."""
        row = self._append(row)
        if callback and self.callback is not None:
            try:
                self.callback(readonly(x), dict(row))
            except StopIteration:
                return True
        return False

    def budget_spent(self) -> bool:
        """True when a work-unit budget is set and this solve has spent it: the drivers ask at the start
        of every iteration (epoch), as Meganet.m ``trnewton`` (``while iter <= maxIter && workUnits <=
        maxWorkUnits``), so a run ends within one iteration's work of ``max_work_units``.  Unlike trnewton,
        work exactly equal to the budget stops the run."""
        return self.max_work_units is not None and self.evaluator.work_units >= self.max_work_units

    def result(self, *, x, fun, grad, grad_norm, nit, status, n_inner=0, info=None, row=None):
        """The :class:`OptimizeResult`.

        ``row`` describes the returned iterate (its iteration or epoch, ``f``,
        ``grad_norm``); if work was spent after the last recorded row, it is
        appended as the closing row with the final work units and ``stop``
        set to the status, so that the history ends at the result."""
        ev = self.evaluator
        status = Status(status)
        last = self.history[-1] if len(self.history) else None
        if row is not None and (last is None or last.get("work_units") != ev.work_units):
            self._append(dict(row, stop=status.value))
        info = dict(info or {})
        preconditioned = ev.n_prec > 0 or (self.preconditioner is not None and has_preconditioner(self.preconditioner))
        if self.preconditioner is not None:
            info.setdefault("preconditioner", self.preconditioner)
            info.setdefault("n_precond", ev.n_prec)
        res = OptimizeResult(
            x=x, fun=fun, grad=grad, grad_norm=grad_norm, nit=nit, n_fev=ev.n_fev, n_gev=ev.n_gev,
            n_hmv=ev.n_hmv, n_inner=n_inner, work_units=ev.work_units, status=status,
            message=stop_message(status, self.kind, preconditioned=preconditioned,
                                 work_units=ev.work_units, max_work_units=self.max_work_units), history=self.history,
            solver=self.solver, wall_time=time.perf_counter() - self.t0, info=info,
        )
        if self.verbose:
            print(str(res), flush=True)
        return res
