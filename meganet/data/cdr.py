"""The CDR-like data set: a convection–diffusion–reaction surrogate problem ``y ∈ R⁵⁵ ↦ c ∈ R⁷²``.

The GNvpro paper (Newman, Ruthotto, Hart & van Bloemen Waanders 2020, §5; Meganet.m ``setupCDR.m``)
trains a network to predict observations of the PDE

    ∂u/∂t = ∇·(D∇u) − v·∇u + f − (Σ_j y_j φ_j(x)) u    on Ω = (0, 1)², t ∈ (0, T],
    D∇u·n = 0 on ∂Ω,   u(0) = 0,

from its 55 reaction parameters.  The paper's data files and generator were never published; this
module regenerates a problem of the same form and size with our own solver, so results on it are
ours ("CDR-like"), not the paper's.  Our choices (``/work/shared/research/pde_surrogates.md``):

* ``D = 0.02``, ``T = 1``; cellular flow ``v = (sin πx1 cos πx2, −cos πx1 sin πx2)`` (divergence
  free, ``v·n = 0`` on ∂Ω), the curl of the stream function ``ψ = sin πx1 sin πx2 / π``;
* ``f`` a Gaussian source of unit mass centred at ``(0.25, 0.5)``, width ``0.07``;
* ``φ_j`` Gaussian bumps on an ``11 × 5`` grid of centres ``((a + ½)/11, (b + ½)/5)``, widths
  ``(0.6/11, 0.6/5)``, ``j = 5a + b``; ``y_j ~ U(0, 5)`` (non-negative rates keep the problem stable);
* observables ``c``: ``u`` at 6 sensor cells (the cells containing ``(0.25, 0.25), (0.5, 0.2),
  (0.75, 0.25), (0.75, 0.75), (0.5, 0.8), (0.25, 0.75)``, a ring around the vortex in the order
  of the flow) at the 12 times ``t_k = kT/12``, ``k = 1..12``; ``c[6(k−1) + s] = u_s(t_k)``
  (72 values).  No scaling (``c_mean = 0``).  The reaction damps the transported source strongly,
  so the outputs span many orders of magnitude (``~1e-8`` far downstream early on, ``~0.7`` next to
  the source); across the 800 default samples each output varies by about 28 % of its mean
  (std/|mean|, averaged over the 72 outputs; median 26 %, range 7–52 %).

Discretization (:mod:`meganet.data._finite_volume`): cell-centred finite volumes on a
``grid × grid`` grid, zero-flux boundary, first-order upwind convection in conservative form
(face velocities from ψ, so the discrete ``∇·v`` is exactly zero), implicit Euler with
``n_time_steps`` steps; the operator does not depend on ``t``, so one sparse LU per sample serves all
steps.  Values at ``t_k`` between two steps are linearly interpolated (an ``O(Δt²)`` error, below
the ``O(Δt)`` error of the scheme).  The cell Péclet number ``h|v|/D`` is about 1.6 at ``grid=32``:
upwinding adds numerical diffusion of the order of ``D``; the problem is defined by the discrete
scheme at the default sizes.

Cost: about 7 ms per sample at the defaults (grid 32, 100 steps; measured on 20 samples, one core of
the development machine), so the 800 samples take about 9 s; they are cached (see :func:`cdr`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._finite_volume import (Grid2D, diffusion_matrix, divergence, face_gradient,
                             face_velocity_from_streamfunction, upwind_convection_matrix)
from ._surrogate import check_split, load_or_generate, split_surrogate
from ..core.validation import check_bool, check_int

__all__ = ["cdr", "cdr_solve", "cdr_problem", "cdr_operator", "implicit_euler", "GENERATOR_VERSION"]

#: Bumped whenever the generated numbers change; part of the cache key.
GENERATOR_VERSION = 1

DIFFUSION = 0.02
FINAL_TIME = 1.0
N_PARAMS = 55
BUMP_GRID = (11, 5)
Y_RANGE = (0.0, 5.0)
SOURCE_CENTER, SOURCE_WIDTH = (0.25, 0.5), 0.07
SENSORS = ((0.25, 0.25), (0.5, 0.2), (0.75, 0.25), (0.75, 0.75), (0.5, 0.8), (0.25, 0.75))
N_TIMES = 12
N_OUTPUTS = len(SENSORS) * N_TIMES  # 72


def streamfunction(x1, x2):
    """``ψ = sin πx1 sin πx2 / π``; ``v = (∂ψ/∂x2, −∂ψ/∂x1) = (sin πx1 cos πx2, −cos πx1 sin πx2)``."""
    return np.sin(np.pi * x1) * np.sin(np.pi * x2) / np.pi


@dataclass(frozen=True)
class CDRProblem:
    """The ``y``-independent parts of the CDR-like problem on one grid.

    Attributes
    ----------
    grid : Grid2D
    A : scipy.sparse.csr_matrix, shape (n_cells, n_cells)
        ``−Div G``, the zero-flux discretization of ``−Δ`` (symmetric positive semidefinite).
    Conv : scipy.sparse.csr_matrix, shape (n_cells, n_cells)
        Upwind discretization of ``∇·(v u) = v·∇u``.
    f : array, shape (n_cells,)
        Source at the cell centres.
    Phi : array, shape (n_cells, 55)
        Reaction bumps ``φ_j`` at the cell centres.
    sensors : int array, shape (6,)
        Flat indices of the sensor cells.
    obs_times : array, shape (12,)
        ``kT/12``, ``k = 1..12``.
    """

    grid: Grid2D
    A: sp.csr_matrix
    Conv: sp.csr_matrix
    f: np.ndarray
    Phi: np.ndarray
    sensors: np.ndarray
    obs_times: np.ndarray


@functools.lru_cache(maxsize=8)
def cdr_problem(grid=32):
    """Assemble :class:`CDRProblem` on a ``grid × grid`` grid of ``(0, 1)²`` (cached per grid)."""
    grid = check_int("grid", grid, minimum=8)
    g = Grid2D((grid, grid), (1.0, 1.0))
    A = diffusion_matrix(g, np.ones(g.n_faces), G=face_gradient(g), Div=divergence(g))
    Conv = upwind_convection_matrix(g, face_velocity_from_streamfunction(g, streamfunction))
    X1, X2 = (X.ravel() for X in g.cell_centers())
    s = SOURCE_WIDTH
    f = np.exp(-((X1 - SOURCE_CENTER[0]) ** 2 + (X2 - SOURCE_CENTER[1]) ** 2) / (2 * s**2)) / (2 * np.pi * s**2)
    na, nb = BUMP_GRID
    ca, cb = np.meshgrid((np.arange(na) + 0.5) / na, (np.arange(nb) + 0.5) / nb, indexing="ij")  # j = nb*a + b
    sa, sb = 0.6 / na, 0.6 / nb
    Phi = np.exp(-(X1[:, None] - ca.ravel()) ** 2 / (2 * sa**2) - (X2[:, None] - cb.ravel()) ** 2 / (2 * sb**2))
    sensors = np.array([g.cell_index(x1, x2) for x1, x2 in SENSORS])
    obs_times = FINAL_TIME * np.arange(1, N_TIMES + 1) / N_TIMES
    return CDRProblem(g, A, Conv, f, Phi, sensors, obs_times)


def cdr_operator(y, problem, *, diffusion=DIFFUSION, convection=True):
    """``K(y) = D A + Conv + diag(Φ y)``, so that the semi-discrete PDE reads ``du/dt = −K u + f``.

    Parameters
    ----------
    y : array, shape (55,)
        Reaction rates.
    problem : CDRProblem
    diffusion : float
        ``D``.
    convection : bool
        Include ``Conv`` (False: diffusion–reaction only).

    Returns
    -------
    K : scipy.sparse.csc_matrix, shape (n_cells, n_cells)
    """
    K = diffusion * problem.A + sp.diags(problem.Phi @ y)
    if convection:
        K = K + problem.Conv
    return K.tocsc()


def implicit_euler(K, f, u0, *, final_time, n_time_steps, record=None):
    """Implicit Euler for ``du/dt = −K u + f``: ``(I + Δt K) u^{n+1} = u^n + Δt f``, ``Δt = T/N``.

    One sparse LU of ``I + Δt K`` (``scipy.sparse.linalg.splu``) serves all steps (first order in
    ``Δt``; unconditionally stable for ``K`` with positive semidefinite symmetric part).  With zero
    column sums of ``K`` (zero-flux diffusion and convection, no reaction) the sum ``Σ u`` is
    conserved exactly up to the source: ``Σ u^{n+1} = Σ u^n + Δt Σ f``.

    Parameters
    ----------
    K : sparse matrix, shape (n, n)
    f : array, shape (n,)
    u0 : array, shape (n,)
    final_time : float
    n_time_steps : int
    record : int array, shape (m,), optional
        Cells whose values are recorded at every step.

    Returns
    -------
    u : array, shape (n,)
        ``u^N ≈ u(T)``.
    history : array, shape (n_time_steps + 1, m)
        ``u^n[record]`` for ``n = 0..N`` (``None`` without ``record``).
    """
    dt = final_time / n_time_steps
    n = K.shape[0]
    import scipy.sparse.linalg as spla  # here, not at import: it adds ~0.1 s to `import meganet`

    lu = spla.splu(sp.csc_matrix(sp.identity(n, format="csc") + dt * K))
    u = np.array(u0, dtype=np.float64)
    g = dt * np.asarray(f, dtype=np.float64)
    history = None
    if record is not None:
        history = np.empty((n_time_steps + 1, len(record)))
        history[0] = u[record]
    for k in range(n_time_steps):
        u = lu.solve(u + g)
        if history is not None:
            history[k + 1] = u[record]
    return u, history


def cdr_solve(y, *, grid=32, n_time_steps=100, return_field=False):
    """The 72 observables of one CDR-like sample (see the module docstring for the PDE).

    Parameters
    ----------
    y : array, shape (55,)
        Reaction rates (``≥ 0`` keeps the problem stable; any finite values are accepted).
    grid : int
        Cells per direction (``≥ 8``).
    n_time_steps : int
        Implicit Euler steps on ``[0, 1]`` (``≥ 12``).
    return_field : bool
        Also return ``u(T)``.

    Returns
    -------
    c : array, shape (72,)
        ``c[6(k−1) + s] = u_s(k/12)``.
    u : array, shape (grid, grid)
        ``u(T)`` at the cell centres (``u[i1, i2]``); only with ``return_field=True``.
    """
    grid = check_int("grid", grid, minimum=8)
    n_time_steps = check_int("n_time_steps", n_time_steps, minimum=N_TIMES)
    return_field = check_bool("return_field", return_field)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (N_PARAMS,):
        raise ValueError(f"y must have shape ({N_PARAMS},), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y must be finite, got NaN or Inf")
    P = cdr_problem(grid)
    u, hist = implicit_euler(cdr_operator(y, P), P.f, np.zeros(P.grid.n_cells), final_time=FINAL_TIME,
                             n_time_steps=n_time_steps, record=P.sensors)
    t = np.linspace(0.0, FINAL_TIME, n_time_steps + 1)
    obs = np.stack([np.interp(P.obs_times, t, hist[:, s]) for s in range(len(P.sensors))], axis=1)  # (12, 6)
    c = obs.ravel()
    return (c, u.reshape(grid, grid)) if return_field else c


def cdr(n_examples=800, *, n_train=400, n_val=200, seed=0, grid=32, n_time_steps=100, cache_dir=None,
        progress=True):
    """The CDR-like surrogate data set ``y ∈ R⁵⁵ ↦ c ∈ R⁷²`` (GNvpro paper §5; Meganet.m ``setupCDR``).

    ``y ~ U(0, 5)⁵⁵`` are drawn with ``numpy.random.default_rng(seed)``; ``c = cdr_solve(y)`` (see the
    module docstring for the PDE, our stand-in for the unpublished original).  The samples are split
    by a permutation drawn from the same generator into ``n_train`` training, ``n_val`` validation and
    ``n_examples − n_train − n_val`` test examples (Meganet.m: 800 = 400 / 200 / 200); no scaling
    (``c_mean = 0``).

    Generating costs about 7 ms per sample at the defaults (800 samples: about 9 s); the raw ``Y, C``
    are cached in ``cache_dir`` (default ``$MEGANET_DATA_DIR`` or ``~/.cache/meganet/data``) under a
    name hashing ``name, version, seed, n_examples, grid, n_time_steps``; a damaged or mismatching
    cache file is regenerated with a warning.

    Parameters
    ----------
    n_examples : int
    n_train, n_val : int
        ``n_train + n_val < n_examples``.
    seed : int, ``≥ 0``
    grid : int
        Cells per direction (``≥ 8``).
    n_time_steps : int
        Implicit Euler steps (``≥ 12``).
    cache_dir : str, path or None
    progress : bool
        One-line progress bar on stderr while generating.

    Returns
    -------
    SurrogateDataset
        ``Y_*`` of shape ``(n, 55)``, ``C_*`` of shape ``(n, 72)``, ``name = "CDR-like"``.
    """
    n_examples, n_train, n_val, seed, progress = check_split(n_examples, n_train, n_val, seed, cache_dir,
                                                             progress)
    grid = check_int("grid", grid, minimum=8)
    n_time_steps = check_int("n_time_steps", n_time_steps, minimum=N_TIMES)
    rng = np.random.default_rng(seed)
    Y = rng.uniform(*Y_RANGE, size=(n_examples, N_PARAMS))
    perm = rng.permutation(n_examples)
    params = dict(name="CDR-like", version=GENERATOR_VERSION, seed=seed, n_examples=n_examples, grid=grid,
                  n_time_steps=n_time_steps)
    C = load_or_generate(params, Y, lambda y: cdr_solve(y, grid=grid, n_time_steps=n_time_steps), N_OUTPUTS,
                         cache_dir=cache_dir, progress=progress)
    return split_surrogate(Y, C, perm, n_train=n_train, n_val=n_val, center=False, name="CDR-like",
                           params=params)
