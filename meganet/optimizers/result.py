"""What every optimizer returns: a status, a result object and a history table.

Modelled on ``scipy.optimize.OptimizeResult`` (``x, fun, jac, nit, nfev,
status, message``) and on optimistix's status enum, whose messages say what to
try next.  Counters follow the GNvpro paper (Newman et al. 2020): besides
function, gradient and Hessian-vector evaluations a run reports *work units*,
the number of forward plus adjoint passes through the model.
"""

from __future__ import annotations

import csv
import enum
import io
import math
import os
import tempfile
from dataclasses import dataclass, field

__all__ = ["Status", "History", "OptimizeResult"]


class Status(str, enum.Enum):
    """Why a solver stopped.  ``Status.MAX_ITER == "max_iter"`` holds, so the
    value can be compared with plain strings; :attr:`message` says what
    happened, in words true for every solver.  What to try next depends on the
    solver (a first-order method may suggest a second-order one, a
    second-order method more inner iterations or a preconditioner), so
    :attr:`OptimizeResult.message` adds a hint written for the solver that ran."""

    CONVERGED_GTOL = "converged_gtol"
    CONVERGED_FTOL = "converged_ftol"
    COMPLETED = "completed"
    MAX_ITER = "max_iter"
    LINE_SEARCH_FAILED = "line_search_failed"
    NOT_DESCENT_DIRECTION = "not_descent_direction"
    INDEFINITE_PRECONDITIONER = "indefinite_preconditioner"
    NON_FINITE = "non_finite"
    CALLBACK_STOP = "callback_stop"
    RADIUS_TOO_SMALL = "radius_too_small"
    MAX_WORK_UNITS = "max_work_units"

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @property
    def success(self) -> bool:
        """True for the statuses that mean "the run did what was asked": converged
        (``converged_gtol``, ``converged_ftol``) or, for the stochastic methods,
        ``completed`` the requested epochs."""
        return self in (Status.CONVERGED_GTOL, Status.CONVERGED_FTOL, Status.COMPLETED)

    def __str__(self) -> str:  # plain value in f-strings and tables
        return self.value


_MESSAGES = {
    Status.CONVERGED_GTOL: "converged: the gradient norm is below max(gtol, rtol * |g0|).",
    Status.CONVERGED_FTOL: (
        "converged: the relative decrease of the objective fell below ftol. If the gradient is still "
        "large the objective may be noisy or at the limit of floating-point precision (use float64, lower "
        "ftol) or the gradient may be wrong (check it with a Taylor test)."
    ),
    Status.COMPLETED: (
        "completed the requested number of epochs (stochastic methods have no convergence test); train "
        "longer or decay the learning rate if the loss is still decreasing."
    ),
    Status.MAX_ITER: "stopped: max_iter iterations reached before convergence.",
    Status.LINE_SEARCH_FAILED: (
        "stopped: the line search found no step with sufficient decrease. The gradient is probably "
        "inconsistent with the objective (check it with a Taylor test), or the objective is noisy or at "
        "the limit of floating-point precision (loosen gtol, use float64)."
    ),
    Status.NOT_DESCENT_DIRECTION: "stopped: the search direction is not a descent direction (g'p >= 0).",
    Status.INDEFINITE_PRECONDITIONER: (
        "stopped: the preconditioner is not positive definite (r'M^-1 r <= 0). It must be symmetric positive "
        "definite, e.g. the regularizer's Hessian plus a small multiple of the identity; or run without one."
    ),
    Status.NON_FINITE: (
        "stopped: the objective or one of its derivatives became NaN/Inf; the last iterate with finite "
        "values is returned."
    ),
    Status.CALLBACK_STOP: "stopped by the callback (it raised StopIteration); the current iterate is returned.",
    Status.MAX_WORK_UNITS: (
        "stopped: the work-unit budget max_work_units (forward + adjoint passes over the training set, "
        "counted by the problem) is spent; the current iterate is returned."
    ),
    Status.RADIUS_TOO_SMALL: (
        "stopped: the trust-region radius fell below min_radius because the quadratic model keeps "
        "over-predicting the decrease. Check the gradient and Hessian products (Taylor test); at the "
        "limit of floating-point precision loosen gtol or use float64."
    ),
}


class History:
    """A small table of per-iteration rows (one ``dict`` of Python scalars per row).

    ``history["f"]`` is the column as a list (``None`` where a row lacks the
    key), ``history[3]`` the fourth row; :meth:`to_dict` and :meth:`to_csv`
    export it.  Columns appear in the order they were first recorded.
    """

    def __init__(self, rows=()):
        self._rows: list[dict] = []
        self._columns: list[str] = []
        for row in rows:
            self.append(row)

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def append(self, row: dict) -> None:
        row = dict(row)
        for key in row:
            if key not in self._columns:
                self._columns.append(key)
        self._rows.append(row)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self):
        return iter(dict(r) for r in self._rows)

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self._columns:
                raise KeyError(f"history has no column {key!r}; columns are {self._columns}")
            return [r.get(key) for r in self._rows]
        return dict(self._rows[key])

    def to_dict(self) -> dict:
        """``{column: [values...]}`` (JSON-serializable: Python scalars and ``None``)."""
        return {c: [r.get(c) for r in self._rows] for c in self._columns}

    def to_csv(self, path=None) -> str | None:
        """Write the table as CSV.

        With ``path=None`` the CSV text is returned.  A file is written
        atomically (to a temporary file in the same folder, then renamed), so
        an interrupted run never leaves a truncated table behind.
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self._columns)
        for r in self._rows:
            writer.writerow(["" if r.get(c) is None else r.get(c) for c in self._columns])
        text = buf.getvalue()
        if path is None:
            return text
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".history-", suffix=".csv.tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", newline="") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return None

    def __repr__(self) -> str:
        return f"History({len(self)} rows, columns={self._columns})"


def _fmt(v, spec=".6e"):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


@dataclass
class OptimizeResult:
    """The outcome of an optimizer run.

    Every field describes the same point ``x``: ``fun == f(x)``, ``grad`` and
    ``grad_norm`` belong to ``x``, and the last row of ``history`` describes
    ``x`` too (its ``f``, ``grad_norm`` and iteration or epoch count are the
    result's, and its ``work_units`` are the run's total).  When a run stops
    after work that produced no new iterate (a failed line search, a
    non-finite trial, an unusable direction), the history ends with a
    *closing row* for the returned iterate that repeats its iteration number,
    carries the final work units and names the status in the column ``stop``.

    Attributes
    ----------
    x : array, shape (n,)
        The final iterate (the last one with finite values when
        ``status == "non_finite"``; for SGD/Adam the iterate at the end of
        the last completed epoch); same backend and dtype as ``x0``.
    fun : float
        Objective at ``x``.  Stochastic methods: the full objective with
        ``eval_full=True``; without it no full objective is evaluated and
        ``fun`` is the mean mini-batch loss of the last completed epoch (the
        ``f_batch`` of the last history row, NaN before the first epoch), an
        estimate of the objective along that epoch rather than ``f(x)``.
    grad : array, shape (n,) or None
        Gradient at ``x`` (``None`` where it was not computed).
    grad_norm : float or None
        ``‖grad‖`` (the projected-gradient norm ``‖x − P(x − g)‖`` for the
        box-constrained solvers).
    nit : int
        Iterations up to ``x`` (trust-region methods count rejected steps too;
        stochastic methods count the parameter updates that led to ``x``).
    n_fev, n_gev, n_hmv : int
        Objective values, gradients and Hessian(-approximation) matvecs the
        solver asked for.
    n_inner : int
        Inner iterations in total (CG / Lanczos steps; line-search trials for
        line-search methods are in ``n_fev``).
    work_units : float
        Forward + adjoint passes: the problem's ``counter.work_units`` if it
        has one, else ``n_fev + n_gev + 2 n_hmv`` (+ 2 per epoch of
        mini-batch gradients).
    status : Status
    message : str
        :attr:`Status.message` followed by a hint for the solver that ran
        (e.g. at ``max_iter`` a first-order method suggests a second-order
        method, a second-order method more inner iterations or a
        preconditioner when it ran without one).
    history : History
    solver : str
        The solver's label, as printed in the header of the verbose table
        (the ``label=`` option, or a name derived from the solver and the
        problem, e.g. ``"Gauss-Newton-CG"``).
    wall_time : float
        Seconds.
    info : dict
        Solver-specific extras (e.g. the final trust radius, epochs run, the
        preconditioner in use).

    Notes
    -----
    :attr:`success` is True only when the solver did what was asked: it
    converged (``converged_gtol``, ``converged_ftol``) or, for SGD/Adam,
    completed the requested epochs (``completed``).  ``max_iter``, a callback
    stop and every failure are not successes.
    """

    x: object
    fun: float
    grad: object
    grad_norm: float | None
    nit: int
    n_fev: int
    n_gev: int
    n_hmv: int
    n_inner: int
    work_units: float
    status: Status
    message: str
    history: History
    solver: str
    wall_time: float
    info: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """True when the run converged or (SGD/Adam) completed its epochs; see the class notes."""
        return self.status.success

    def __str__(self) -> str:
        lines = [
            f"{self.solver}: {self.status.value} - {self.message}",
            f"  fun = {_fmt(self.fun)}, |g| = {_fmt(self.grad_norm, '.3e')}, nit = {self.nit}, "
            f"work units = {self.work_units:g} (n_fev = {self.n_fev}, n_gev = {self.n_gev}, "
            f"n_hmv = {self.n_hmv}, inner = {self.n_inner}), time = {self.wall_time:.3g} s",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"OptimizeResult(solver={self.solver!r}, status={self.status.value!r}, fun={self.fun!r}, "
                f"grad_norm={self.grad_norm!r}, nit={self.nit}, work_units={self.work_units!r})")
