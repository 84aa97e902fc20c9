r"""Growth of input perturbations through a block or network,
``‖Y_N − Ỹ_N‖ / ‖Y_0 − Ỹ_0‖`` (Haber & Ruthotto 2017, §3, eq. 3.3–3.4).

A stable forward propagation keeps the ratio bounded independently of the
depth; an unstable one (positive real parts of the Jacobian's eigenvalues,
or forward Euler outside its stability region) makes it grow exponentially
with the number of layers, which is the exploding-gradient phenomenon read
forwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..backend import get_array_module, to_backend, to_numpy
from ..core.element import Element
from ..core.validation import check_bool, check_int, check_positive

__all__ = ["perturbation_growth", "PerturbationGrowth", "block_states"]


def block_states(block, theta, Y):
    r"""States ``Y_0, …, Y_N`` of a time-stepping block's forward pass.

    Read from what the blocks already record, never by re-running shorter
    blocks:

    * :class:`~meganet.integrators.ResNet` (and the antisymmetric ResNet): the
      cache's ``states`` (the input of each step) followed by the output;
    * :class:`~meganet.integrators.RK4ResNet`: the first stage input of every
      step, ``cache.steps[j].stage_inputs[0] = Y_j``, followed by the output;
    * blocks with a ``trajectory(theta, Y)`` method (leapfrog, Hamiltonian
      Verlet): its states; a ``(y, z)`` pair is concatenated along the
      feature axis into the element's state layout ``[y, z]``.

    Parameters
    ----------
    block : Element
    theta : array, shape (n_theta,)
    Y : array, shape (n_examples, *shape_in)

    Returns
    -------
    states : list of arrays, length N + 1, or None
        ``None`` for elements that are not time-stepping blocks (a plain layer
        or a network of blocks).
    """
    return _states_and_output(block, theta, Y)[0]


def _states_and_output(block, theta, Y):
    """``(states or None, output)`` from one forward pass."""
    from ..integrators.resnet import ResNetCache
    from ..integrators.rk4 import RK4Cache

    if callable(getattr(block, "trajectory", None)):
        traj = block.trajectory(theta, Y)
        if isinstance(traj, tuple):
            xp = get_array_module(*traj)
            traj = xp.concatenate(traj, axis=-1)
        states = [traj[j] for j in range(traj.shape[0])]
        return states, states[-1]
    Z, cache = block.forward(theta, Y)
    if isinstance(cache, ResNetCache):
        return list(cache.states) + [Z], Z
    if isinstance(cache, RK4Cache):
        return [st.stage_inputs[0] for st in cache.steps] + [Z], Z
    return None, Z


@dataclass
class PerturbationGrowth:
    r"""Result of :func:`perturbation_growth`.

    Attributes
    ----------
    ratio : numpy array, shape (n_trials,)
        ``‖Y_N − Ỹ_N‖_F / ‖Y_0 − Ỹ_0‖_F`` over the whole batch, per trial.
    ratio_per_example : numpy array, shape (n_trials, n_examples)
        The same ratio for each example separately.
    ratio_per_step : numpy array, shape (n_trials, N + 1), or None
        ``‖Y_j − Ỹ_j‖_F / ‖Y_0 − Ỹ_0‖_F`` after every step ``j = 0, …, N``
        (column 0 is 1) for time-stepping blocks, ``None`` otherwise.
    delta : float
        Relative size of the input perturbations.
    """

    ratio: np.ndarray
    ratio_per_example: np.ndarray
    ratio_per_step: Optional[np.ndarray]
    delta: float

    @property
    def max_ratio(self) -> float:
        """Largest batch ratio over the trials."""
        return float(np.max(self.ratio))

    @property
    def mean_ratio(self) -> float:
        """Mean batch ratio over the trials."""
        return float(np.mean(self.ratio))

    def __str__(self):
        s = (f"perturbation growth (delta = {self.delta:g}, {self.ratio.size} trial(s)): "
             f"max ratio {self.max_ratio:.4g}, mean {self.mean_ratio:.4g}")
        if self.ratio_per_step is not None:
            s += f", over {self.ratio_per_step.shape[1] - 1} steps max {float(self.ratio_per_step.max()):.4g}"
        return s


def perturbation_growth(element, theta, Y0, *, delta=1e-3, rng=None, n_trials=1, per_step=True):
    r"""Measure ``‖Y_N − Ỹ_N‖ / ‖Y_0 − Ỹ_0‖`` for random input perturbations.

    Each trial draws a standard normal direction ``E`` (float64 on the host,
    then cast and moved like ``Y0``), scales every example's row to
    ``‖E_i‖ = delta · ‖Y0_i‖`` (or ``delta`` where ``Y0_i = 0``) and
    propagates ``Ỹ_0 = Y_0 + E`` with the same weights.  For small ``delta``
    the ratio approximates the gain ``‖J_Y E‖/‖E‖`` of the linearized
    propagation (Haber & Ruthotto 2017, eq. 3.4); for larger ``delta`` it
    measures the nonlinear sensitivity.

    Parameters
    ----------
    element : Element
        A time-stepping block (ResNet, RK4, antisymmetric, Verlet, leapfrog),
        or any element (a network of blocks, a layer); ``shape_in`` need not
        equal ``shape_out`` for the final ratio.
    theta : array, shape (n_theta,)
    Y0 : array, shape (n_examples, *shape_in)
    delta : float
        Relative perturbation size (> 0).
    rng : None, int or numpy.random.Generator
    n_trials : int
        Number of independent perturbations.
    per_step : bool
        Also record the ratio after every step (time-stepping blocks only; the
        states come from the blocks' caches, see :func:`block_states`).

    Returns
    -------
    PerturbationGrowth
    """
    if not isinstance(element, Element):
        raise TypeError(f"element must be an Element, got {type(element).__name__}")
    delta = check_positive("delta", delta)
    n_trials = check_int("n_trials", n_trials, minimum=1)
    per_step = check_bool("per_step", per_step)
    theta, xp, dtype = element._prepare(theta, Y0, Y_name="Y0")
    if Y0.shape[0] == 0:
        raise ValueError("Y0 has 0 examples; the growth ratio ‖Y_N − Ỹ_N‖ / ‖Y_0 − Ỹ_0‖ needs at least one")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = Y0.shape[0]

    if per_step:
        states, ZN = _states_and_output(element, theta, Y0)
    else:
        states, ZN = None, element.forward(theta, Y0)[0]

    Y0_host = np.asarray(to_numpy(Y0), dtype=np.float64).reshape(n, -1)
    row_norms = np.linalg.norm(Y0_host, axis=1)
    row_scale = np.where(row_norms > 0, delta * row_norms, delta)

    ratios, ratios_ex, ratios_step = [], [], []
    for _ in range(n_trials):
        E = rng.standard_normal(Y0_host.shape)
        E *= (row_scale / np.linalg.norm(E, axis=1))[:, None]
        E = E.reshape(Y0.shape).astype(dtype)
        Yp = Y0 + to_backend(E, xp)
        dY0 = _rows(Yp - Y0)  # the perturbation as represented in the working precision
        n0 = float(np.linalg.norm(dY0))
        n0_ex = np.linalg.norm(dY0, axis=1)
        if states is None:
            dZ = _rows(element.forward(theta, Yp)[0] - ZN)
        else:
            pstates = _states_and_output(element, theta, Yp)[0]
            ratios_step.append([float(np.linalg.norm(_rows(a - b))) / n0 for a, b in zip(pstates, states)])
            dZ = _rows(pstates[-1] - ZN)
        ratios.append(float(np.linalg.norm(dZ)) / n0)
        ratios_ex.append(np.linalg.norm(dZ, axis=1) / n0_ex)
    return PerturbationGrowth(
        ratio=np.asarray(ratios),
        ratio_per_example=np.asarray(ratios_ex),
        ratio_per_step=np.asarray(ratios_step) if states is not None else None,
        delta=delta,
    )


def _rows(a):
    """Host float64 copy, one row per example."""
    return np.asarray(to_numpy(a), dtype=np.float64).reshape(a.shape[0], -1)
