"""Adam (Kingma & Ba, ICLR 2015, Algorithm 1)."""

from __future__ import annotations

from ..backend import get_array_module
from ._common import check_label, check_real, options_text
from .sgd import check_schedule, run_stochastic, schedule_text

__all__ = ["minimize_adam"]


def minimize_adam(problem, x0, *, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, n_epochs=10,
                  max_work_units=None, rng=None, lower=None, upper=None, eval_full=False, callback=None,
                  verbose=False, label=None):
    """Adam: adaptive moment estimation (Kingma & Ba 2015, Alg. 1)::

        m ← β₁ m + (1 − β₁) g,        v ← β₂ v + (1 − β₂) g²
        m̂ = m / (1 − β₁ᵗ),           v̂ = v / (1 − β₂ᵗ)
        x ← x − lr · m̂ / (sqrt(v̂) + ε)

    (``t`` counts updates), then the projection onto ``[lower, upper]`` if
    bounds are given.

    Parameters
    ----------
    problem, x0, n_epochs, rng, lower, upper, eval_full, callback, verbose
        As in :func:`~meganet.optimizers.minimize_sgd`.
    learning_rate : float or callable ``epoch -> float``
        Step size α (default 1e-3 as in the paper), or a schedule.
    beta1, beta2 : float
        Decay rates of the moment estimates, in ``[0, 1)``.
    epsilon : float
        ε > 0 added to ``sqrt(v̂)``.
    max_work_units : float, optional
        Work-unit budget, checked at the start of every epoch; as in
        :func:`~meganet.optimizers.minimize_sgd`.
    label : str, optional
        The solver's name in the header and in ``result.solver`` (default ``"Adam"``).

    Returns
    -------
    OptimizeResult
        As :func:`~meganet.optimizers.minimize_sgd` returns it.
    """
    schedule = check_schedule(learning_rate)
    beta1 = check_real("beta1", beta1, low=0.0, high=1.0, high_open=True)
    beta2 = check_real("beta2", beta2, low=0.0, high=1.0, high_open=True)
    epsilon = check_real("epsilon", epsilon, low=0.0, low_open=True)
    state = {}

    def update(x, g, lr, t):
        if not state:
            state["m"], state["v"] = g * 0.0, g * 0.0
        m = beta1 * state["m"] + (1.0 - beta1) * g
        v = beta2 * state["v"] + (1.0 - beta2) * (g * g)
        state["m"], state["v"] = m, v
        mhat = m * (1.0 / (1.0 - beta1 ** t))
        vhat = v * (1.0 / (1.0 - beta2 ** t))
        xp = get_array_module(g)
        return x - lr * mhat / (xp.sqrt(vhat) + epsilon)

    label = check_label(label, "Adam")
    return run_stochastic(problem, x0, update, solver=label, schedule=schedule, n_epochs=n_epochs, rng=rng,
                          lower=lower, upper=upper, eval_full=eval_full, callback=callback, verbose=verbose,
                          info=options_text(learning_rate=schedule_text(schedule), beta1=beta1, beta2=beta2),
                          max_work_units=max_work_units)

