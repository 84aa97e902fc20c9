"""Stochastic gradient descent with momentum / Nesterov and learning-rate
schedules (Meganet.m ``sgd``; the piecewise-constant schedule of Ruthotto &
Haber, JMIV 2019, §5), plus the epoch loop shared with Adam."""

from __future__ import annotations

import math

import numpy as np

from ._common import (
    Evaluator,
    Monitor,
    SolverKind,
    check_bool,
    check_callback,
    check_int,
    check_label,
    check_real,
    isfinite,
    norm,
    options_text,
    prepare_x0,
)
from .projected import Box
from .result import Status

__all__ = ["LearningRateSchedule", "ConstantLR", "PiecewiseConstantLR", "ExponentialDecayLR", "minimize_sgd"]


class LearningRateSchedule:
    """A learning rate per epoch: ``schedule(epoch) -> float`` (epochs count from 0)."""

    def __call__(self, epoch: int) -> float:  # pragma: no cover - interface
        raise NotImplementedError


class ConstantLR(LearningRateSchedule):
    """``lr(epoch) = lr``."""

    def __init__(self, lr):
        self.lr = check_real("lr", lr, low=0.0, low_open=True)

    def __call__(self, epoch):
        return self.lr

    def __repr__(self):
        return f"ConstantLR({self.lr!r})"


class PiecewiseConstantLR(LearningRateSchedule):
    """``lr(epoch) = lr · factor^(number of milestones ≤ epoch)``: the learning rate
    is multiplied by ``factor`` at each milestone epoch (JMIV 2019 §5 decreases
    it at fixed epochs).

    Parameters
    ----------
    lr : float
        Initial learning rate.
    milestones : sequence of int
        Strictly increasing epochs (0-based) at which the rate drops.
    factor : float
        Multiplier in ``(0, 1]``, default 0.1.
    """

    def __init__(self, lr, *, milestones, factor=0.1):
        self.lr = check_real("lr", lr, low=0.0, low_open=True)
        milestones = [check_int("milestones[i]", m, minimum=0) for m in milestones]
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"milestones must be strictly increasing, got {milestones}")
        self.milestones = milestones
        self.factor = check_real("factor", factor, low=0.0, high=1.0, low_open=True)

    def __call__(self, epoch):
        return self.lr * self.factor ** sum(1 for m in self.milestones if epoch >= m)

    def __repr__(self):
        return f"PiecewiseConstantLR({self.lr!r}, milestones={self.milestones}, factor={self.factor!r})"


class ExponentialDecayLR(LearningRateSchedule):
    """``lr(epoch) = lr · decay^epoch`` with ``decay`` in ``(0, 1]``."""

    def __init__(self, lr, *, decay):
        self.lr = check_real("lr", lr, low=0.0, low_open=True)
        self.decay = check_real("decay", decay, low=0.0, high=1.0, low_open=True)

    def __call__(self, epoch):
        return self.lr * self.decay ** epoch

    def __repr__(self):
        return f"ExponentialDecayLR({self.lr!r}, decay={self.decay!r})"


def check_schedule(learning_rate):
    if isinstance(learning_rate, LearningRateSchedule):
        return learning_rate
    if callable(learning_rate):
        return learning_rate
    return ConstantLR(check_real("learning_rate", learning_rate, low=0.0, low_open=True))


def schedule_text(schedule):
    """The learning rate for the header: ``0.01`` for a constant, the schedule's repr otherwise."""
    if isinstance(schedule, ConstantLR):
        return format(schedule.lr, "g")
    return repr(schedule) if isinstance(schedule, LearningRateSchedule) else getattr(schedule, "__name__", "callable")


def check_rng(rng):
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def run_stochastic(problem, x0, update, *, solver, schedule, n_epochs, rng, lower, upper, eval_full, callback,
                   verbose, info="", max_work_units=None):
    """The epoch loop shared by SGD and Adam (private).

    ``update(x, g, lr, t) -> x_new`` performs one parameter update from the
    mini-batch gradient ``g`` (``t`` counts updates from 1).  Each epoch visits
    the ``n_batches`` mini-batches in a random order (after ``problem.shuffle(rng)``
    if the problem has it).  A NaN/Inf mini-batch loss, iterate or (with
    ``eval_full``) full objective stops the run with status ``non_finite`` and
    returns the iterate at the end of the last completed epoch, the point the
    last history row describes (its full objective and gradient are finite).
    ``solver`` is the label; ``info`` the options shown in the header.
    Host syncs: one per update (the mini-batch loss), one per epoch.
    """
    x = prepare_x0(x0)
    if not callable(getattr(problem, "stochastic_gradient", None)) and not callable(
            getattr(problem, "value_and_gradient", None)):
        raise TypeError(f"{solver} needs a problem with stochastic_gradient(x, batch_index, rng) or "
                        f"value_and_gradient(x); got {type(problem).__name__}")
    n_epochs = check_int("n_epochs", n_epochs, minimum=0)
    rng = check_rng(rng)
    eval_full = check_bool("eval_full", eval_full)
    callback, verbose = check_callback(callback), check_bool("verbose", verbose)
    box = Box(lower, upper, x) if (lower is not None or upper is not None) else None
    if box is not None:
        x = box.project(x)
    stochastic = callable(getattr(problem, "stochastic_gradient", None))
    n_batches = check_int("problem.n_batches", getattr(problem, "n_batches", 1), minimum=1) if stochastic else 1
    shuffle = getattr(problem, "shuffle", None) if stochastic else None
    ev = Evaluator(problem, x)
    columns = ["epoch", "f_batch"] + (["f", "grad_norm"] if eval_full else []) + ["lr", "step_norm", "work_units"]
    header = options_text(n_batches=n_batches) + (f", {info}" if info else "")
    header += ", " + options_text(n_epochs=n_epochs, eval_full=eval_full)
    mon = Monitor(solver, columns, verbose=verbose, callback=callback, evaluator=ev,
                  kind=SolverKind("stochastic", step_option="learning_rate"), info=header,
                  max_work_units=max_work_units)
    mon.start(x.shape[0])

    def full(x):
        """The full objective and gradient for the history (``eval_full``): monitoring, not training, so
        it is not counted as work (:meth:`Evaluator.uncounted` restores the problem's counter); an
        epoch costs 2 work units with or without it."""
        with ev.uncounted():
            f, g, _ = ev.value_and_gradient(x)
        return f, g, norm(g)

    f_full = g_full = gnorm = None
    if eval_full:
        f_full, g_full, gnorm = full(x)
    mon.record(dict(epoch=0, f=f_full, grad_norm=gnorm), x, callback=False)
    status = Status.NON_FINITE if eval_full and not (isfinite(f_full) and isfinite(gnorm)) else None
    t = 0  # updates that led to x
    f_batch = None
    epoch = 0
    while status is None and epoch < n_epochs:
        if mon.budget_spent():
            status = Status.MAX_WORK_UNITS
            break
        lr = float(schedule(epoch))
        if not (math.isfinite(lr) and lr > 0.0):
            raise ValueError(f"the learning-rate schedule returned {lr!r} at epoch {epoch}; it must be positive")
        if callable(shuffle):
            shuffle(rng)
        xe, te = x, t  # the iterate and update count within the epoch
        total = 0.0
        for i in rng.permutation(n_batches):
            fb, gb = ev.stochastic(xe, int(i), rng, n_batches)
            if not isfinite(fb):
                status = Status.NON_FINITE
                break
            total += fb
            te += 1
            xe = update(xe, gb, lr, te)
            if box is not None:
                xe = box.project(xe)
        if status is None and not bool(ev.xp.isfinite(xe).all()):
            status = Status.NON_FINITE
        if status is None and eval_full:
            f_new, g_new, gnorm_new = full(xe)
            if not (isfinite(f_new) and isfinite(gnorm_new)):
                status = Status.NON_FINITE
        if status is not None:
            break  # x, t and the values stay those of the last completed epoch
        epoch += 1
        step_norm = norm(xe - x)
        x, t = xe, te
        f_batch = total / n_batches
        if eval_full:
            f_full, g_full, gnorm = f_new, g_new, gnorm_new
        row = dict(epoch=epoch, f_batch=f_batch, f=f_full, grad_norm=gnorm, lr=lr, step_norm=step_norm)
        if mon.record(row, x):
            status = Status.CALLBACK_STOP
    if status is None:
        status = Status.COMPLETED
    fun = f_full if eval_full else (f_batch if f_batch is not None else math.nan)
    return mon.result(x=x, fun=fun, grad=g_full if eval_full else None, grad_norm=gnorm, nit=t, status=status,
                      info=dict(epochs=epoch, n_batches=n_batches, n_minibatch_gradients=ev.n_sgev),
                      row=dict(epoch=epoch, f_batch=f_batch, f=f_full, grad_norm=gnorm))


def minimize_sgd(problem, x0, *, learning_rate=0.01, momentum=0.0, nesterov=False, n_epochs=10, max_work_units=None,
                 rng=None, lower=None, upper=None, eval_full=False, callback=None, verbose=False, label=None):
    """Stochastic gradient descent with (Nesterov) momentum.

    With mini-batch gradient ``g``, momentum μ and learning rate ``lr``
    (the formulation of Sutskever et al. 2013 as in PyTorch)::

        v ← μ v + g
        x ← x − lr · v                 (heavy ball)
        x ← x − lr · (g + μ v)         (nesterov=True)

    followed by the projection onto ``[lower, upper]`` if bounds are given
    (projected SGD, as Meganet.m's ``sgd.P``).

    Parameters
    ----------
    problem : object
        ``stochastic_gradient(x, batch_index, rng) -> (f_B, g_B)`` with
        ``n_batches`` (and optionally ``shuffle(rng)``); a deterministic
        problem (only ``value_and_gradient``) runs as full-batch gradient
        descent with momentum.
    x0 : array, shape (n,)
        Finite float32/float64 numpy or cupy vector (not modified).
    learning_rate : float or callable ``epoch -> float``
        A constant or a schedule (:class:`PiecewiseConstantLR`,
        :class:`ExponentialDecayLR`, ...).
    momentum : float
        μ in ``[0, 1)``.
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0``).
    n_epochs : int
        Passes over the mini-batches.
    max_work_units : float, optional
        Stop with status ``max_work_units`` once this solve has spent that many
        work units (forward + adjoint passes over the training set, counted by
        ``problem.counter``; Newman et al. 2020), checked at the start of every
        epoch (Meganet.m ``trnewton``: ``while iter <= maxIter && workUnits <=
        maxWorkUnits``), so a run ends within one epoch's work of the budget.
        ``None`` (default): no budget.  A positive finite number; a problem
        without a ``counter`` raises ``ValueError``.  Shown in the header.
    rng : None, int or numpy.random.Generator
        Batch order, and passed to the problem.
    lower, upper : None, float or array
        Box constraints enforced by projection.
    eval_full : bool
        Evaluate the full objective and gradient after every epoch for the
        history (monitoring: not counted as work, so an epoch costs 2 work units
        either way); otherwise the history reports the mean mini-batch loss.
    callback : callable ``(x, row)``, optional
        Called after every epoch; raise ``StopIteration`` to stop.
    verbose : bool
        Print one row per epoch (epoch, mean batch loss, [f, |g|], lr, |Δx|,
        work units) under a header with the label and the options.
    label : str, optional
        The solver's name in the header and in ``result.solver`` (default
        ``"SGD"``, ``"SGD (Nesterov)"``).

    Returns
    -------
    OptimizeResult
        Status ``completed`` after ``n_epochs`` (a success);
        ``x`` is the iterate at the end of the last completed epoch;
        ``fun`` is the full objective at ``x`` with ``eval_full`` and the last
        epoch's mean mini-batch loss otherwise (NaN before the first epoch);
        ``nit`` counts the updates that led to ``x``; ``info`` has ``epochs``
        (completed), ``n_batches`` and ``n_minibatch_gradients``.
    """
    schedule = check_schedule(learning_rate)
    momentum = check_real("momentum", momentum, low=0.0, high=1.0, high_open=True)
    nesterov = check_bool("nesterov", nesterov)
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
    state = {"v": None}

    def update(x, g, lr, t):
        if momentum == 0.0:
            return x - lr * g
        v = g if state["v"] is None else momentum * state["v"] + g
        state["v"] = v
        return x - lr * (g + momentum * v) if nesterov else x - lr * v

    label = check_label(label, "SGD" + (" (Nesterov)" if nesterov else ""))
    return run_stochastic(problem, x0, update, solver=label, schedule=schedule, n_epochs=n_epochs, rng=rng,
                          lower=lower, upper=upper, eval_full=eval_full, callback=callback, verbose=verbose,
                          info=options_text(learning_rate=schedule_text(schedule), momentum=momentum),
                          max_work_units=max_work_units)
