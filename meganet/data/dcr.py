"""The DCR-like data set: a direct-current-resistivity surrogate problem ``y ∈ R³ ↦ c ∈ R⁸⁸²``.

The GNvpro paper (Newman, Ruthotto, Hart & van Bloemen Waanders 2020, §5; Meganet.m ``setupDCR.m``)
predicts surface data of the DC resistivity problem

    −∇·(m(x; y) ∇u) = q   in Ω,     ∇u·n = 0 on ∂Ω,

from three parameters of an anomaly (depth, volume, rotation).  The paper's problem is 3-D (the
rotation is in the horizontal x1–x2 plane and 882 = 2 × 21 × 21 surface differences), and its data
files and generator were never published.  This module regenerates a *cheaper 2-D half-space
variant* of the same size with our own solver, so results on it are ours ("DCR-like"), not the
paper's (``/work/shared/research/pde_surrogates.md``):

* Ω = (0, 2) × (0, 1), ``x1`` horizontal, ``x2`` depth (the surface is ``x2 = 0``); all of ∂Ω is
  insulating (zero flux), the surface truly, the other sides as a truncation of the half space;
* conductivity ``m = σ0 exp(ln(σ1/σ0) S)`` with background ``σ0 = 1``, anomaly ``σ1 = 10``
  (conductive) and the smoothed indicator ``S = ½(1 − tanh(r/δ))``, ``δ = 0.03``, of a rotated
  ellipse: with ``(ξ, η)`` the coordinates relative to the centre ``(65/64, depth)`` rotated by
  ``−angle``, ``ρ = sqrt((ξ/a)² + (η/b)²)``, ``r = (ρ − 1) sqrt(ab)``, semi-axes ``a = √3 size``,
  ``b = size/√3`` (aspect 3);
* ``y = (depth, size, angle)``: ``depth ~ U(0.3, 0.6)`` of the centre, ``size ~ U(0.05, 0.12)``,
  the radius of the disc of equal area (the 2-D "volume" is ``π size²``), ``angle ~ U(0, π)`` of the
  major axis from the ``x1`` axis, a rotation *in the vertical section* (the 2-D stand-in for the
  slides' rotation, which is in the horizontal plane of a 3-D body);
* 21 surface electrodes (the top cells containing ``x1 = 65/64 + (k − 10)/16``, ``k = 0..20``) and
  42 dipole sources of unit current, zero sum: source ``s = 21 side + k`` injects at electrode ``k``
  and returns at the left (``side = 0``) or right (``side = 1``) end of the surface,
  ``q = (δ_k − δ_return)/v`` (``v`` the cell volume);
* observables: for each source the potentials at the 21 electrodes minus their mean,
  ``c[21 s + k]`` (882 values).  They vary only a few % around their mean over the samples
  (over the 10,000 default samples: std/|mean| has median 2.7 % per output, the mean std is 2.4 % of
  the mean |c|, and the centred targets are 1.8 % of the raw ones in norm; the *average* of
  std/|mean| over the 882 outputs is about 15 % on 400 samples, but only because a few outputs, whose
  electrode sits near the mean potential, have a mean close to zero: max 26), so :func:`dcr` centres
  them by the training mean.

Discretization (:mod:`meganet.data._finite_volume`): cell-centred finite volumes, ``m`` averaged
harmonically to the faces, ``A = −Div diag(m_f) G`` symmetric positive semidefinite with the constants
as null space.  The null space is removed by *grounding*: the equation and unknown of the deepest
corner cell are deleted (``u = 0`` there), leaving a symmetric positive definite matrix (the cell
graph is connected); the deleted equation holds automatically because ``Σ q = 0``.  The potential is
then shifted to zero mean (the observables do not depend on the shift).  One sparse LU per sample
serves all 42 sources: they are superpositions of unit currents at the 23 contact cells (21
electrodes, 2 returns), so one solve with 23 right-hand sides gives all 42 potentials.

Cost: about 6–7 ms per sample at the default 64 × 32 grid (measured on 20 samples, one core of the
development machine); the 10,000 samples took 70 s.  They are cached (see :func:`dcr`).
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._finite_volume import Grid2D, diffusion_matrix, divergence, face_gradient, harmonic_face_average
from ._surrogate import check_split, load_or_generate, split_surrogate
from ..core.validation import check_bool

__all__ = ["dcr", "dcr_solve", "dcr_problem", "dcr_conductivity", "dcr_operator", "grounded_lu", "solve_grounded",
           "GENERATOR_VERSION"]

#: Bumped whenever the generated numbers change; part of the cache key.
GENERATOR_VERSION = 1

EXTENT = (2.0, 1.0)
SIGMA_BACKGROUND, SIGMA_ANOMALY = 1.0, 10.0
SMOOTHING = 0.03
ASPECT = 3.0
CENTER_X1 = 65.0 / 64.0
Y_LOW = np.array([0.3, 0.05, 0.0])
Y_HIGH = np.array([0.6, 0.12, np.pi])
N_ELECTRODES = 21
ELECTRODE_SPACING = 1.0 / 16.0
N_SOURCES = 2 * N_ELECTRODES  # 42
N_OUTPUTS = N_SOURCES * N_ELECTRODES  # 882
MIN_GRID = (32, 8)


def _check_grid(grid):
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or any(not isinstance(n, numbers.Integral) or isinstance(n, bool) for n in grid)):
        raise TypeError(f"grid must be a pair of integers (n1, n2), got {grid!r}")
    grid = (int(grid[0]), int(grid[1]))
    if grid[0] < MIN_GRID[0] or grid[1] < MIN_GRID[1]:
        raise ValueError(f"grid must have n1 >= {MIN_GRID[0]} (21 distinct electrodes 1/16 apart) and "
                         f"n2 >= {MIN_GRID[1]} cells, got {grid}")
    return grid


@dataclass(frozen=True)
class DCRProblem:
    """The ``y``-independent parts of the DCR-like problem on one grid.

    Attributes
    ----------
    grid : Grid2D
    G : scipy.sparse.csr_matrix, shape (n_faces, n_cells)
    Div : scipy.sparse.csr_matrix, shape (n_cells, n_faces)
    electrodes : int array, shape (21,)
        Flat indices of the electrode cells.
    returns : int array, shape (2,)
        The left and right return-electrode cells.
    Q : array, shape (n_cells, 42)
        Sources ``q_s = (δ_k − δ_return)/v``; every column sums to zero.
    """

    grid: Grid2D
    G: sp.csr_matrix
    Div: sp.csr_matrix
    electrodes: np.ndarray
    returns: np.ndarray
    Q: np.ndarray


@functools.lru_cache(maxsize=8)
def dcr_problem(grid=(64, 32)):
    """Assemble :class:`DCRProblem` on an ``n1 × n2`` grid of ``(0, 2) × (0, 1)`` (cached per grid)."""
    grid = _check_grid(grid)
    g = Grid2D(grid, EXTENT)
    h1, h2 = g.h
    x = CENTER_X1 + (np.arange(N_ELECTRODES) - N_ELECTRODES // 2) * ELECTRODE_SPACING
    electrodes = g.cell_index(x, np.full_like(x, h2 / 2))
    returns = g.cell_index(np.array([h1 / 2, EXTENT[0] - h1 / 2]), np.array([h2 / 2, h2 / 2]))
    Q = np.zeros((g.n_cells, N_SOURCES))
    for side in range(2):
        for k in range(N_ELECTRODES):
            s = N_ELECTRODES * side + k
            Q[electrodes[k], s] += 1.0 / g.cell_volume
            Q[returns[side], s] -= 1.0 / g.cell_volume
    return DCRProblem(g, face_gradient(g), divergence(g), electrodes, returns, Q)


def dcr_conductivity(y, grid):
    """Cell conductivities ``m(x; y) = σ0 exp(ln(σ1/σ0) S(x; y))`` of the rotated elliptical anomaly
    (see the module docstring).

    Parameters
    ----------
    y : array, shape (3,)
        ``(depth, size, angle)``.
    grid : Grid2D

    Returns
    -------
    m : array, shape (n_cells,)
    """
    depth, size, angle = (float(v) for v in y)
    X1, X2 = (X.ravel() for X in grid.cell_centers())
    d1, d2 = X1 - CENTER_X1, X2 - depth
    c, s = np.cos(angle), np.sin(angle)
    xi, eta = c * d1 + s * d2, -s * d1 + c * d2
    a, b = np.sqrt(ASPECT) * size, size / np.sqrt(ASPECT)
    r = (np.sqrt((xi / a) ** 2 + (eta / b) ** 2) - 1.0) * np.sqrt(a * b)
    S = 0.5 * (1.0 - np.tanh(r / SMOOTHING))
    return SIGMA_BACKGROUND * np.exp(np.log(SIGMA_ANOMALY / SIGMA_BACKGROUND) * S)


def dcr_operator(m, problem):
    """``A(m) = −Div diag(harmonic_face_average(m)) G``, the zero-flux discretization of ``−∇·(m∇u)``.

    Returns
    -------
    A : scipy.sparse.csr_matrix, shape (n_cells, n_cells)
        Symmetric positive semidefinite; null space: the constants.
    """
    g = problem.grid
    return diffusion_matrix(g, harmonic_face_average(g, m), G=problem.G, Div=problem.Div)


def grounded_lu(A):
    """Sparse LU (``scipy.sparse.linalg.splu``) of ``A`` with its last row and column deleted.

    Deleting one unknown of a connected zero-flux operator ("grounding" it, ``u = 0`` there)
    removes the constant null space: the remaining matrix is symmetric positive definite.
    """
    import scipy.sparse.linalg as spla  # here, not at import (start-up time of `import meganet`)

    return spla.splu(sp.csc_matrix(A)[:-1, :-1].tocsc())


def solve_grounded(A, Q, *, lu=None):
    """Mean-zero solution of the singular Neumann system ``A U = Q``, every column of ``Q`` summing to
    zero (the compatibility condition).

    The last unknown is grounded (``U[-1] = 0``, its equation deleted: it holds automatically since
    ``Σ_c Q[c, s] = 0``), the symmetric positive definite rest is solved by one sparse LU for all
    columns of ``Q``, and each column is then shifted to zero mean.

    Parameters
    ----------
    A : sparse matrix, shape (n, n)
    Q : array, shape (n, n_rhs)
    lu : optional
        :func:`grounded_lu` of ``A``, if already computed.

    Returns
    -------
    U : array, shape (n, n_rhs)
    """
    Q = np.asarray(Q, dtype=np.float64)
    scale = np.abs(Q).sum(axis=0) + np.finfo(float).tiny
    if np.any(np.abs(Q.sum(axis=0)) > 1e-12 * scale):
        raise ValueError("every column of Q must sum to zero (the Neumann compatibility condition)")
    lu = grounded_lu(A) if lu is None else lu
    U = np.zeros(Q.shape)
    U[:-1] = lu.solve(np.ascontiguousarray(Q[:-1]))
    return U - U.mean(axis=0)


def _contact_solution(A, P):
    """Grounded potentials ``X`` of unit point currents at the 23 contact cells (21 electrodes and
    2 returns), shape ``(n_cells, 23)``, and the combination ``S`` (23, 42) with ``q_s = E S[:, s]``.

    By superposition the grounded solution of source ``s`` is ``X S[:, s]``; 23 right-hand sides
    instead of 42 halve the triangular solves (and stay below the size where the threaded BLAS of
    SuperLU's multi-right-hand-side solve starts to oversubscribe a busy machine).
    """
    g = P.grid
    contacts = np.concatenate([P.electrodes, P.returns])
    E = np.zeros((g.n_cells - 1, contacts.size))
    E[contacts, np.arange(contacts.size)] = 1.0 / g.cell_volume
    X = np.zeros((g.n_cells, contacts.size))
    X[:-1] = grounded_lu(A).solve(E)
    S = np.zeros((contacts.size, N_SOURCES))
    for side in range(2):
        for k in range(N_ELECTRODES):
            S[k, N_ELECTRODES * side + k] += 1.0
            S[N_ELECTRODES + side, N_ELECTRODES * side + k] -= 1.0
    return X, S


def dcr_solve(y, *, grid=(64, 32), return_field=False):
    """The 882 observables of one DCR-like sample (see the module docstring for the PDE).

    One sparse LU of the grounded operator; the 42 sources are superpositions of unit currents at the
    23 contact cells, so one solve with 23 right-hand sides serves all of them.

    Parameters
    ----------
    y : array, shape (3,)
        ``(depth, size, angle)``.
    grid : tuple of int ``(n1, n2)``
        Cells in ``x1`` (``≥ 32``) and depth (``≥ 8``).
    return_field : bool
        Also return the potentials.

    Returns
    -------
    c : array, shape (882,)
        ``c[21 s + k] = u_s(electrode k) − mean_k u_s(electrode k)``.
    U : array, shape (n1, n2, 42)
        The mean-zero potential of every source; only with ``return_field=True``.
    """
    grid = _check_grid(grid)
    return_field = check_bool("return_field", return_field)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (3,):
        raise ValueError(f"y must have shape (3,) = (depth, size, angle), got {y.shape}")
    if not np.all(np.isfinite(y)) or y[1] <= 0:
        raise ValueError(f"y must be finite with a positive size y[1], got {y}")
    P = dcr_problem(grid)
    X, S = _contact_solution(dcr_operator(dcr_conductivity(y, P.grid), P), P)
    V = X[P.electrodes] @ S  # (21, 42)
    c = (V - V.mean(axis=0)).T.ravel()
    if not return_field:
        return c
    U = X @ S
    return c, (U - U.mean(axis=0)).reshape(grid[0], grid[1], N_SOURCES)


def dcr(n_examples=10000, *, n_train=8000, n_val=1000, seed=0, grid=(64, 32), cache_dir=None, progress=True):
    """The DCR-like surrogate data set ``y ∈ R³ ↦ c ∈ R⁸⁸²`` (GNvpro paper §5; Meganet.m ``setupDCR``).

    ``y = (depth, size, angle)`` uniform in ``[0.3, 0.6] × [0.05, 0.12] × [0, π)``, drawn with
    ``numpy.random.default_rng(seed)``; ``c = dcr_solve(y)`` (the 2-D stand-in for the paper's
    unpublished 3-D problem, see the module docstring).  A permutation drawn from the same generator
    splits the samples into ``n_train`` training, ``n_val`` validation and the rest test examples
    (Meganet.m: 10,000 = 8000 / 1000 / 1000).  All ``C`` are centred by the *training* mean
    ``c_mean``: the raw observables vary only a few % around their mean.

    Generating costs about 6–7 ms per sample at the defaults (10,000 samples: about 70 s); the raw
    ``Y, C`` are cached in ``cache_dir`` (default ``$MEGANET_DATA_DIR`` or ``~/.cache/meganet/data``)
    under a name hashing ``name, version, seed, n_examples, grid``; a damaged or mismatching cache
    file is regenerated with a warning.

    Parameters
    ----------
    n_examples : int
    n_train, n_val : int
        ``n_train + n_val < n_examples``.
    seed : int, ``≥ 0``
    grid : tuple of int ``(n1, n2)``
    cache_dir : str, path or None
    progress : bool
        One-line progress bar on stderr while generating.

    Returns
    -------
    SurrogateDataset
        ``Y_*`` of shape ``(n, 3)``, ``C_*`` of shape ``(n, 882)``, ``c_mean`` the training mean,
        ``name = "DCR-like"``.
    """
    n_examples, n_train, n_val, seed, progress = check_split(n_examples, n_train, n_val, seed, cache_dir,
                                                             progress)
    grid = _check_grid(grid)
    rng = np.random.default_rng(seed)
    Y = Y_LOW + (Y_HIGH - Y_LOW) * rng.uniform(size=(n_examples, 3))
    perm = rng.permutation(n_examples)
    params = dict(name="DCR-like", version=GENERATOR_VERSION, seed=seed, n_examples=n_examples, grid=list(grid))
    C = load_or_generate(params, Y, lambda y: dcr_solve(y, grid=grid), N_OUTPUTS, cache_dir=cache_dir,
                         progress=progress)
    return split_surrogate(Y, C, perm, n_train=n_train, n_val=n_val, center=True, name="DCR-like", params=params)
