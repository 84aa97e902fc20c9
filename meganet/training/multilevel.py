"""Multilevel training in depth: train with N steps, prolongate to 2N, warm-start
(Haber & Ruthotto 2017, §5.3)."""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any

from ..core.chain import Chain
from ..core.element import Element
from ..core.validation import check_bool, check_int
from ..multilevel.time import is_time_stepping_block, prolongate_network
from ..objectives._base import check_rng
from ..optimizers import minimize_newton_cg
from ..optimizers.result import History
from ._common import check_options, resolve_solver
from .keep_best import KeepBest

__all__ = ["train_multilevel", "MultilevelResult", "LevelResult", "time_stepping_blocks"]


@dataclass
class LevelResult:
    """One level of :func:`train_multilevel`.

    Attributes
    ----------
    level : int
        1 for the coarsest, ``len(levels)`` for the finest (the numbering the
        printed tables and the ``level`` column of the history use).
    n_steps : int
        Steps of every time-stepping block at this level.
    network : Element
    objective : the objective built by ``make_objective(network)``
    x0 : array
        Starting point (prolongated from the previous level, with the re-fitted
        classifier when :func:`train_multilevel` re-fits it; see ``transfer``).
    x : array
        Result of the level (the best validation iterate with ``keep_best``).
    result : OptimizeResult or None
        ``None`` for a level that was interrupted (see :attr:`MultilevelResult.partial`).
    validation : dict or None
        ``objective.metrics(x, Y_val, C_val)`` when validation data are given.
    history : History
        The solver's table of this level (for an interrupted level: the rows of the
        iterations completed before the interruption, without the initial row).
    transfer : dict or None
        ``None`` on the coarsest level; on the others the record of the warm start
        from the previous level: ``from_n_steps``, ``objective_before`` (the previous
        level's objective at its result), ``objective_after`` (this level's
        objective at the prolongated θ with the classifier carried over),
        ``objective_after_refit`` (after :func:`train_multilevel`'s classifier
        re-fit; ``None`` without it) and, with validation data,
        ``validation_before``, ``validation_after``, ``validation_after_refit``
        (``objective.metrics`` dicts: ``loss``, ``accuracy``, ...).  For a reduced
        (VarPro) objective the classifier is always the optimal ``w(θ)``, so the
        ``*_after`` entries are already re-fitted and the ``*_refit`` entries are ``None``.
    """

    level: int
    n_steps: int
    network: Element
    objective: Any
    x0: Any
    x: Any
    result: Any
    validation: Any = None
    history: Any = None
    transfer: Any = None

    def __post_init__(self):
        if self.history is None:
            self.history = self.result.history if self.result is not None else History()


@dataclass
class MultilevelResult:
    """What :func:`train_multilevel` returns.

    Attributes
    ----------
    levels : list of LevelResult
    x : array
        Final point (of the finest level's objective).
    network : Element
        The finest network.
    objective : the finest level's objective
    result : OptimizeResult
        The finest level's solver result.
    work_units : float
        Sum over the levels (a pass through a coarse network counts as much
        as one through the fine network, as in the GNvpro paper's accounting;
        ``weighted_work_units`` weighs passes by ``n_steps / n_steps_finest``).
    weighted_work_units : float
    history : History
        All levels' rows with columns ``level``, ``n_steps`` and
        ``total_work_units`` (cumulative over levels) added.
    wall_time : float
    partial : bool
        ``True`` for the partial result attached to an exception that stopped
        the training (``err.partial_result``): ``levels`` then ends with the
        interrupted level (``result=None``, ``x`` its last iterate).
    """

    levels: list
    x: Any
    network: Element
    objective: Any
    result: Any
    work_units: float
    weighted_work_units: float
    history: History
    wall_time: float
    info: dict = field(default_factory=dict)
    partial: bool = False


def time_stepping_blocks(network):
    """The time-stepping blocks of a network (recursing into Meganet/Sequential/Chain), in order."""
    if is_time_stepping_block(network):
        return [network]
    out = []
    if isinstance(network, Chain):
        for e in network.elements:
            out.extend(time_stepping_blocks(e))
    return out


def _check_levels(levels, network):
    blocks = time_stepping_blocks(network)
    if not blocks:
        raise ValueError(f"network has no time-stepping block (ResNet, AntisymmetricResNet, HamiltonianVerlet, "
                         f"Leapfrog, ...) to prolongate in depth; got {type(network).__name__}")
    steps = sorted({b.n_steps for b in blocks})
    if isinstance(levels, numbers.Integral) and not isinstance(levels, bool):
        n = check_int("levels", levels, minimum=1)
        if len(steps) != 1:
            return [None] * n, steps
        return [steps[0] * 2 ** k for k in range(n)], steps
    try:
        levels = [check_int("levels[i]", v, minimum=1) for v in levels]
    except TypeError:
        raise TypeError(f"levels must be an int (number of levels) or a sequence of step counts, got {levels!r}") from None
    if not levels:
        raise ValueError("levels must not be empty")
    for a, b in zip(levels, levels[1:]):
        if b != 2 * a:
            raise ValueError(f"levels must double from one level to the next (prolongation maps N to 2N steps), "
                             f"got {levels}")
    if steps != [levels[0]]:
        raise ValueError(f"the time-stepping blocks of network have n_steps {steps}, but levels[0] = {levels[0]}: "
                         "pass the coarsest network (every block with levels[0] steps), or levels as an int")
    return levels, steps


def train_multilevel(make_objective, network, theta0_or_x0=None, *, levels=(4, 8, 16), solver=minimize_newton_cg,
                     solver_options=None, rng=None, validation=None, keep_best=False, keep_best_every=1,
                     keep_best_metric="accuracy", callback=None, verbose=False, refit_classifier=True,
                     refit_options=None):
    r"""Multilevel training in depth (cascadic, coarse to fine).

    On each level the objective ``make_objective(network)`` is minimized from
    the current point; then every time-stepping block is prolongated to twice
    the steps (same final time, ``h`` halved; the weights interpolated linearly
    in time, :func:`meganet.multilevel.time.prolongate_network`) and the result
    warm-starts the next level (Haber & Ruthotto, "Stable architectures for
    deep neural networks", 2017, §5.3; the transfer is Meganet.m's
    ``prolongateWeights`` of its blocks).
    The network output changes by ``O(h)`` under the prolongation (forward
    Euler is first order), but on coarse levels that ``O(h)`` is not small:
    with ``T = 5`` and 8 steps (``h = 0.625``) trained weights reach
    ``h‖K_j‖ ≈ 1.4``, the coarse network is far from the ODE limit and the
    features move by ~35 %, so the classifier of the coarse level no longer fits
    them (peaks, validation accuracy 98.0 % → 64 % with ``w`` carried over).
    Therefore, with ``refit_classifier=True`` (default), the classifier ``w``
    is re-fitted to the fine network's features after every prolongation —
    a few Newton-PCG iterations on the convex classifier problem for fixed θ
    (:class:`~meganet.training.block_coordinate.ClassifierSubproblem`, one
    forward pass), which is also how every iteration of the paper's block
    coordinate descent starts (98.0 % → 94.8 %, and 98.2 % → 97.8 % at the next
    change).  A reduced (VarPro) objective always uses the optimal ``w(θ)``.
    :attr:`LevelResult.transfer` records the objective and the validation
    metrics just before and just after each prolongation.

    Parameters
    ----------
    make_objective : callable ``network -> objective``
        Builds a :class:`~meganet.objectives.NetworkObjective` (points
        ``x = (θ, w)``) or a :class:`~meganet.objectives.VarProObjective`
        (points θ; its classifier is warm-started from the previous level's
        ``w(θ)``) for a network.
    network : Element
        The coarsest network.
    theta0_or_x0 : array, optional
        Starting point of the coarsest objective: ``x0 = (θ0, w0)`` for a
        NetworkObjective, ``θ0`` for VarPro; ``None``: ``objective.init_x(rng=rng)``.
    levels : sequence of int, or int
        Step counts of the time-stepping blocks per level, each twice the
        previous (``levels[0]`` must be the blocks' ``n_steps``); or the number
        of levels.
    solver : callable or str
        A solver of :mod:`meganet.optimizers` (default
        :func:`~meganet.optimizers.minimize_newton_cg`) or its name.
    solver_options : dict or sequence of dict, optional
        Options for every level, or one dict per level.
    rng : None, int or Generator
        For ``init_x`` when no starting point is given.
    validation : (Y_val, C_val) or (Y_val, C_val, mask_val), optional
        Evaluate ``objective.metrics`` at the end of every level.
    keep_best : bool
        Keep, on every level, the iterate best on the validation data
        (:class:`~meganet.training.KeepBest`) and prolongate that one.
    keep_best_every, keep_best_metric
        Options of :class:`~meganet.training.KeepBest`.
    callback : callable ``(x, row)``, optional
        Passed to the solver on every level (``row`` gains ``level``, numbered
        from 1 for the coarsest, and ``n_steps``).
    verbose : bool
        Passed to the solver; also prints a line per level (``level 1/3: ...``).
    refit_classifier : bool
        After each prolongation, re-fit the classifier ``w`` of a
        :class:`~meganet.objectives.NetworkObjective` for the prolongated θ
        (default ``True``; ``False`` carries ``w`` over unchanged).
    refit_options : dict, optional
        Options of :func:`~meganet.optimizers.minimize_newton_cg` for the re-fit
        (default ``{'max_iter': 10, 'gtol': 1e-8}``).

    Returns
    -------
    MultilevelResult

    Raises
    ------
    BaseException
        Whatever stops a level (``KeyboardInterrupt``, an error of the objective
        or of a kernel, ``MemoryError``, ...) propagates unchanged, carrying the
        work done so far as ``err.partial_result`` (a :class:`MultilevelResult`
        with ``partial=True``: the completed levels and the interrupted one with
        its last iterate and the rows of its completed iterations), so a caller
        can still save it.
    """
    if not callable(make_objective):
        raise TypeError(f"make_objective must be a callable network -> objective, got {type(make_objective).__name__}")
    if not isinstance(network, Element):
        raise TypeError(f"network must be a meganet Element, got {type(network).__name__}")
    steps, _ = _check_levels(levels, network)
    n_levels = len(steps)
    solver = resolve_solver("solver", solver)
    if isinstance(solver_options, (list, tuple)):
        if len(solver_options) != n_levels:
            raise ValueError(f"solver_options must be one dict or {n_levels} dicts (one per level), "
                             f"got {len(solver_options)}")
        per_level = [check_options(f"solver_options[{i}]", o) for i, o in enumerate(solver_options)]
    else:
        per_level = [check_options("solver_options", solver_options)] * n_levels
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise TypeError("validation must be a tuple (Y_val, C_val) or (Y_val, C_val, mask_val)")
        Y_val, C_val = validation[0], validation[1]
        mask_val = validation[2] if len(validation) == 3 else None
    keep_best = check_bool("keep_best", keep_best)
    if keep_best and validation is None:
        raise ValueError("keep_best=True needs validation=(Y_val, C_val)")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (x, row) or None, got {type(callback).__name__}")
    verbose = check_bool("verbose", verbose)
    refit_classifier = check_bool("refit_classifier", refit_classifier)
    refit_options = {"max_iter": 10, "gtol": 1e-8, **check_options("refit_options", refit_options)}
    rng = check_rng(rng)

    t0 = time.perf_counter()
    results = []
    history = History()
    totals = {"work": 0.0, "weighted": 0.0}
    x = theta0_or_x0
    w_prev = None
    before = None  # (n_steps, objective, validation) of the previous level's result
    net = network
    running = None  # the LevelResult of the level being solved
    try:
        for lev in range(n_levels):
            number = lev + 1
            obj = make_objective(net)
            if not callable(getattr(obj, "value_and_gradient", None)) or not hasattr(obj, "n"):
                raise TypeError(f"make_objective must return an objective (NetworkObjective, VarProObjective), "
                                f"got {type(obj).__name__}")
            reduced = callable(getattr(obj, "classifier", None))
            if x is None:
                x = obj.init_x(rng=rng)
            if x.shape != (obj.n,):
                raise ValueError(f"the starting point of level {number} has shape {tuple(x.shape)}, but the objective "
                                 f"built for this network expects ({obj.n},)"
                                 + (" (θ only: the objective is a VarProObjective)" if reduced else " ((θ, w))"))
            if reduced and w_prev is not None:
                obj.warm_start_classifier(w_prev)
            transfer = None
            if before is not None:
                transfer, x = _warm_start(obj, x, before, reduced=reduced, refit=refit_classifier and not reduced,
                                          refit_options=refit_options,
                                          validation=(Y_val, C_val, mask_val) if validation is not None else None)
                if verbose:
                    print(_transfer_line(transfer), flush=True)
            n_steps = time_stepping_blocks(net)[0].n_steps if steps[lev] is None else steps[lev]
            running = LevelResult(level=number, n_steps=n_steps, network=net, objective=obj, x0=x, x=x, result=None,
                                  transfer=transfer)

            def level_callback(xk, row, _run=running):
                row = dict(row, level=_run.level, n_steps=_run.n_steps)
                _run.history.append(row)  # kept for a partial result if the level is interrupted
                _run.x = xk.copy()
                if callback is not None:
                    callback(xk, dict(row))

            cb = level_callback
            keeper = None
            if keep_best:
                keeper = KeepBest(obj, Y_val, C_val, every=keep_best_every, metric=keep_best_metric,
                                  mask_val=mask_val, callback=cb)
                keeper.evaluate(x, 0)
                cb = keeper
            if verbose:
                print(f"=== level {number}/{n_levels}: {n_steps} steps, {obj.n} unknowns ===", flush=True)
            res = solver(obj, x, callback=cb, verbose=verbose, **per_level[lev])
            if keeper is not None:
                res = keeper.apply(res)
            x_lev = res.x
            val = obj.metrics(x_lev, Y_val, C_val, mask=mask_val) if validation is not None else None
            results.append(LevelResult(level=number, n_steps=n_steps, network=net, objective=obj, x0=x, x=x_lev,
                                       result=res, validation=val, transfer=transfer))
            running = None
            for row in res.history:
                history.append(dict(row, level=number, n_steps=n_steps,
                                    total_work_units=totals["work"] + (row.get("work_units") or 0.0)))
            totals["work"] += res.work_units
            totals["weighted"] += res.work_units * n_steps
            if verbose and val is not None:
                print(f"level {number}/{n_levels}: validation {val}", flush=True)
            if lev + 1 < n_levels:
                before = (n_steps, float(res.fun), val)
                if reduced:
                    theta, w_prev = x_lev, obj.classifier(x_lev)
                    net, x = prolongate_network(net, theta)
                else:
                    theta, w = obj.split(x_lev)
                    net, theta_f = prolongate_network(net, theta)
                    x = obj.xp.concatenate([theta_f, w])
    except BaseException as err:
        # whatever stopped the run (Ctrl-C, an error in a kernel, ...) carries what was done so far
        done = results + ([running] if running is not None else [])
        if done:
            with contextlib.suppress(Exception):
                err.partial_result = _assemble(done, steps, history, totals, t0, partial=True)
        raise
    return _assemble(results, steps, history, totals, t0, partial=False)


def _warm_start(obj, x, before, *, reduced, refit, refit_options, validation):
    """Evaluate (and with ``refit`` re-fit the classifier of) the prolongated point ``x``.

    Returns ``(transfer record, starting point)``."""
    from ..objectives.network_objective import NetworkObjective
    from .block_coordinate import ClassifierSubproblem

    n_before, f_before, val_before = before
    rec = dict(from_n_steps=n_before, objective_before=f_before, objective_after=None, objective_after_refit=None,
               validation_before=val_before, validation_after=None, validation_after_refit=None)

    def metrics(point):
        if validation is None:
            return None
        Y_val, C_val, mask_val = validation
        return obj.metrics(point, Y_val, C_val, mask=mask_val)

    f_after, state = obj.value(x)
    rec["objective_after"] = float(f_after)
    rec["validation_after"] = metrics(x)
    if refit and isinstance(obj, NetworkObjective) and math.isfinite(f_after):
        theta, w = obj.split(x)
        res = minimize_newton_cg(ClassifierSubproblem(obj, state), w, **refit_options)
        if math.isfinite(res.fun) and res.fun <= f_after:
            x = obj.xp.concatenate([theta, res.x])
            rec["objective_after_refit"] = float(res.fun)
        else:  # keep the carried-over classifier
            rec["objective_after_refit"] = float(f_after)
        rec["validation_after_refit"] = metrics(x)
    return rec, x


def _transfer_line(rec):
    """One line on the warm start of a level (for ``verbose``)."""
    def acc(v):
        return "-" if v is None or v.get("accuracy") is None else f"{v['accuracy']:.4f}"

    line = (f"prolongation {rec['from_n_steps']} -> {2 * rec['from_n_steps']} steps: objective "
            f"{rec['objective_before']:.4e} -> {rec['objective_after']:.4e}")
    if rec["objective_after_refit"] is not None:
        line += f" (classifier re-fit {rec['objective_after_refit']:.4e})"
    if rec["validation_before"] is not None:
        line += f"; validation accuracy {acc(rec['validation_before'])} -> {acc(rec['validation_after'])}"
        if rec["validation_after_refit"] is not None:
            line += f" (re-fit {acc(rec['validation_after_refit'])})"
    return line


def _assemble(results, steps, history, totals, t0, *, partial):
    """The :class:`MultilevelResult` of the levels in ``results`` (the last may be interrupted)."""
    finest = steps[len(results) - 1] if steps[len(results) - 1] is not None else results[-1].n_steps
    if partial and results[-1].result is None:
        last = results[-1]
        history = History(list(history) + [dict(r, total_work_units=totals["work"] + (r.get("work_units") or 0.0))
                                           for r in last.history])
    result = results[-1].result
    work = totals["work"]
    if partial and result is None:
        count = getattr(getattr(results[-1].objective, "counter", None), "work_units", None)
        work += float(count or 0.0)
    return MultilevelResult(levels=results, x=results[-1].x, network=results[-1].network,
                            objective=results[-1].objective, result=result, work_units=work,
                            weighted_work_units=totals["weighted"] / finest, history=history,
                            wall_time=time.perf_counter() - t0, partial=partial)
