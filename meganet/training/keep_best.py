"""Keep the iterate that is best on the validation set (early stopping without stopping)."""

from __future__ import annotations

import dataclasses
import math

from ..core.validation import check_int, check_option
from ._common import check_options, resolve_solver

__all__ = ["KeepBest", "train_keep_best"]

_METRICS = ("accuracy", "loss")


class KeepBest:
    """A solver callback that evaluates the validation metrics every ``every``
    iterations and keeps a copy of the best iterate.

    "Best" is the highest validation accuracy (ties: the lower validation
    loss, then the earlier iterate) for ``metric='accuracy'``, the lowest
    validation loss for ``metric='loss'``.  Metrics come from
    ``objective.metrics(x, Y_val, C_val)`` and count no work units.

    Parameters
    ----------
    objective : NetworkObjective or VarProObjective
        The objective the solver minimizes (its ``metrics`` are used).
    Y_val, C_val : arrays
        Validation data and labels.
    every : int
        Evaluate at every ``every``-th callback (iteration or epoch).
    metric : {'accuracy', 'loss'}
    mask_val : array, optional
        Labelled validation examples.
    callback : callable ``(x, row)``, optional
        Called after the evaluation (may raise ``StopIteration`` to stop the run).

    Attributes
    ----------
    best_x : array or None
        Copy of the best iterate seen.
    best_metrics : dict or None
    best_iteration : int or None
        Iteration (``row['iter']``, ``row['epoch']`` or the call count) of ``best_x``.
    history : list of dict
        ``{'iteration': …, 'loss': …, 'accuracy': …}`` for every evaluation.

    Examples
    --------
    >>> keep = KeepBest(obj, Y_val, C_val, every=2)              # doctest: +SKIP
    >>> res = minimize_newton_cg(obj, x0, callback=keep)           # doctest: +SKIP
    >>> res = keep.apply(res)        # res.x is now the best iterate on the validation set  # doctest: +SKIP
    """

    def __init__(self, objective, Y_val, C_val, *, every=1, metric="accuracy", mask_val=None, callback=None):
        if not callable(getattr(objective, "metrics", None)):
            raise TypeError(f"objective must have a metrics(x, Y, C) method (NetworkObjective, VarProObjective), "
                            f"got {type(objective).__name__}")
        self.objective = objective
        self.Y_val, self.C_val, self.mask_val = Y_val, C_val, mask_val
        self.every = check_int("every", every, minimum=1)
        self.metric = check_option("metric", metric, _METRICS)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable (x, row) or None, got {type(callback).__name__}")
        self.callback = callback
        self.best_x = self.best_metrics = self.best_iteration = None
        self.history = []
        self.n_calls = 0

    def _key(self, m):
        """Sort key: smaller is better."""
        if self.metric == "accuracy":
            if m.get("accuracy") is None:
                raise ValueError("metric='accuracy' is not available for these targets (regression); use metric='loss'")
            return (-m["accuracy"], m["loss"])
        return (m["loss"],)

    def evaluate(self, x, iteration):
        """Evaluate the validation metrics at ``x`` and keep it if it is the best so far.

        Returns
        -------
        dict
            The metrics.
        """
        m = self.objective.metrics(x, self.Y_val, self.C_val, mask=self.mask_val)
        self.history.append(dict(iteration=iteration, **m))
        key = self._key(m)
        finite = all(math.isfinite(v) for v in key)
        if finite and (self.best_metrics is None or key < self._key(self.best_metrics)):
            self.best_x, self.best_metrics, self.best_iteration = x.copy(), m, iteration
        return m

    def __call__(self, x, row):
        self.n_calls += 1
        if self.n_calls % self.every == 0:
            it = row.get("iter", row.get("epoch", self.n_calls)) if isinstance(row, dict) else self.n_calls
            self.evaluate(x, it)
        if self.callback is not None:
            self.callback(x, row)

    def apply(self, result):
        """A copy of the solver's result with ``x`` the best validation iterate.

        Every field describes that iterate (the invariant of
        :class:`~meganet.optimizers.OptimizeResult`): when it is not the final
        one, ``fun``, ``grad`` and ``grad_norm`` are evaluated there (one
        ``value_and_gradient``, counted in ``work_units``) and the history gets
        a closing row for it (``stop='keep_best'``).  The final iterate, its
        value and metrics go to ``info['keep_best']`` (with the best iteration
        and metrics).  The final iterate is evaluated first if it has not been.
        """
        if not self.history or self.history[-1]["iteration"] != result.nit:
            self.evaluate(result.x, result.nit)
        info = dict(result.info)
        info["keep_best"] = dict(iteration=self.best_iteration, metrics=self.best_metrics, final_x=result.x,
                                 final_fun=result.fun, final_metrics=self.history[-1], history=list(self.history))
        if self.best_x is None or self.best_x is result.x or bool((self.best_x == result.x).all()):
            return dataclasses.replace(result, info=info)
        counter = getattr(self.objective, "counter", None)
        before = float(getattr(counter, "work_units", 0.0))
        f, g = self.objective.value_and_gradient(self.best_x)[:2]
        extra = float(getattr(counter, "work_units", 0.0)) - before
        gnorm = float((g @ g) ** 0.5)
        history = type(result.history)(list(result.history))
        history.append(dict(iter=self.best_iteration, f=float(f), grad_norm=gnorm,
                            work_units=result.work_units + extra, stop="keep_best"))
        return dataclasses.replace(result, x=self.best_x, fun=float(f), grad=g, grad_norm=gnorm,
                                   work_units=result.work_units + extra, history=history, info=info)


def train_keep_best(solver, objective, x0, Y_val, C_val, *, every=1, metric="accuracy", mask_val=None,
                    solver_options=None, callback=None, verbose=False):
    """Run ``solver`` with a :class:`KeepBest` callback and return the best validation iterate.

    The starting point ``x0`` is evaluated too (iteration 0), so the result is
    never worse on the validation set than where training started.

    Parameters
    ----------
    solver : callable or str
        A solver of :mod:`meganet.optimizers` (or its name, e.g. ``'newton_cg'``).
    objective, x0
        Problem and starting point.
    Y_val, C_val, every, metric, mask_val
        See :class:`KeepBest`.
    solver_options : dict, optional
        Keyword options of the solver.
    callback : callable ``(x, row)``, optional
        Called after every iteration (after the validation evaluation).
    verbose : bool
        Passed to the solver.

    Returns
    -------
    OptimizeResult
        ``x`` is the best iterate; ``info['keep_best']`` as in :meth:`KeepBest.apply`.
    """
    solver = resolve_solver("solver", solver)
    opts = check_options("solver_options", solver_options)
    keep = KeepBest(objective, Y_val, C_val, every=every, metric=metric, mask_val=mask_val, callback=callback)
    keep.evaluate(x0, 0)
    res = solver(objective, x0, callback=keep, verbose=verbose, **opts)
    return keep.apply(res)
