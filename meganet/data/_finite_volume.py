"""Cell-centred finite volumes on a uniform 2-D tensor grid (the solvers of the CDR/DCR data sets).

Unknowns live at the ``n1 × n2`` cell centres of ``(0, L1) × (0, L2)``, stored C-ordered: cell
``(i1, i2)`` is entry ``i1 * n2 + i2`` of a vector of length ``n_cells = n1 n2``.  Fluxes live on the
faces: first the ``(n1 + 1) × n2`` faces normal to x1 (C-ordered, face ``(k, i2)`` between cells
``(k − 1, i2)`` and ``(k, i2)``), then the ``n1 × (n2 + 1)`` faces normal to x2.  This is the mimetic
layout of Haber, *Computational Methods in Geophysical Electromagnetics* (SIAM 2014, ch. 3) and of
Meganet.m's ``getCellCenteredGrad``/``getFaceToCellCenterMatrix``:

* ``G = face_gradient(grid)``: ``(G u)_f = (u_R − u_L)/h`` on interior faces and ``0`` on boundary faces,
  which *is* the zero-flux (homogeneous Neumann) condition ``σ∇u·n = 0``;
* ``Div = divergence(grid)``: ``(Div F)_c = Σ_faces ±F_f / h`` over the 4 faces of cell ``c``;
  on interior faces ``Div = −Gᵀ`` (the discrete Gauss theorem), so
* ``A(σ) = −Div diag(σ_f) G = Gᵀ diag(σ_f) G`` (``diffusion_matrix``) is symmetric positive
  semidefinite with exactly the constants in its null space (the cell graph is connected).  The grid is
  uniform, so the cell-volume inner product ``⟨u, w⟩ = v Σ u_c w_c`` is a multiple of the Euclidean
  one and ``A`` is symmetric in both.

Coefficients are averaged to faces harmonically (``harmonic_face_average``: the exact flux of a
1-D two-layer medium), convection uses first-order upwinding of the face-normal velocity
(``upwind_convection_matrix``), which keeps the scheme conservative and monotone.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "Grid2D",
    "face_gradient",
    "divergence",
    "face_average",
    "harmonic_face_average",
    "diffusion_matrix",
    "upwind_convection_matrix",
    "face_velocity_from_streamfunction",
]


@dataclass(frozen=True)
class Grid2D:
    """A uniform cell-centred grid of ``shape = (n1, n2)`` cells on ``(0, L1) × (0, L2)``.

    Attributes
    ----------
    shape : tuple of int, ``(n1, n2)``
    extent : tuple of float, ``(L1, L2)``
    """

    shape: tuple
    extent: tuple = (1.0, 1.0)

    def __post_init__(self):
        shape = tuple(self.shape)
        if len(shape) != 2 or any(not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 2
                                  for n in shape):
            raise ValueError(f"shape must be two integers >= 2, got {self.shape!r}")
        extent = tuple(float(L) for L in self.extent)
        if len(extent) != 2 or not all(np.isfinite(L) and L > 0 for L in extent):
            raise ValueError(f"extent must be two positive lengths, got {self.extent!r}")
        object.__setattr__(self, "shape", (int(shape[0]), int(shape[1])))
        object.__setattr__(self, "extent", extent)

    @property
    def h(self):
        """Cell widths ``(h1, h2) = (L1/n1, L2/n2)``."""
        return (self.extent[0] / self.shape[0], self.extent[1] / self.shape[1])

    @property
    def n_cells(self):
        return self.shape[0] * self.shape[1]

    @property
    def n_faces(self):
        """``(n1 + 1) n2 + n1 (n2 + 1)``."""
        n1, n2 = self.shape
        return (n1 + 1) * n2 + n1 * (n2 + 1)

    @property
    def cell_volume(self):
        """``h1 h2`` (all cells are equal)."""
        return self.h[0] * self.h[1]

    def centers_1d(self):
        """Cell-centre coordinates along each axis: ``((i + ½) h1), ((j + ½) h2)``."""
        (n1, n2), (h1, h2) = self.shape, self.h
        return (np.arange(n1) + 0.5) * h1, (np.arange(n2) + 0.5) * h2

    def cell_centers(self):
        """Cell centres ``X1, X2``, each of shape ``(n1, n2)`` (``indexing='ij'``)."""
        return np.meshgrid(*self.centers_1d(), indexing="ij")

    def nodes_1d(self):
        """Node (cell-corner) coordinates along each axis: ``k h1`` (``n1 + 1``), ``k h2`` (``n2 + 1``)."""
        (n1, n2), (h1, h2) = self.shape, self.h
        return np.arange(n1 + 1) * h1, np.arange(n2 + 1) * h2

    def cell_index(self, x1, x2):
        """Flat index of the cell containing the point ``(x1, x2)`` (points on the boundary belong to
        the boundary cell)."""
        (n1, n2), (h1, h2) = self.shape, self.h
        i1 = np.clip(np.floor(np.asarray(x1) / h1).astype(int), 0, n1 - 1)
        i2 = np.clip(np.floor(np.asarray(x2) / h2).astype(int), 0, n2 - 1)
        return i1 * n2 + i2

    def boundary_face_mask(self):
        """Boolean ``(n_faces,)``: True on the faces of ``∂Ω``."""
        n1, n2 = self.shape
        m1 = np.zeros((n1 + 1, n2), bool)
        m1[[0, -1], :] = True
        m2 = np.zeros((n1, n2 + 1), bool)
        m2[:, [0, -1]] = True
        return np.concatenate([m1.ravel(), m2.ravel()])


def _grad_1d(n, h):
    """``(n + 1, n)``: ``(u_k − u_{k−1})/h`` on interior faces ``k = 1..n−1``, zero rows on the two
    boundary faces (zero flux)."""
    k = np.arange(1, n)
    rows = np.concatenate([k, k])
    cols = np.concatenate([k - 1, k])
    vals = np.concatenate([-np.ones(n - 1), np.ones(n - 1)]) / h
    return sp.csr_matrix((vals, (rows, cols)), shape=(n + 1, n))


def _div_1d(n, h):
    """``(n, n + 1)``: ``(F_{i+1} − F_i)/h``."""
    return sp.diags([-np.ones(n), np.ones(n)], [0, 1], shape=(n, n + 1), format="csr") / h


def _avg_1d(n):
    """``(n + 1, n)``: mean of the two neighbours on interior faces, the adjacent cell on boundary faces."""
    k = np.arange(1, n)
    rows = np.concatenate([k, k, [0, n]])
    cols = np.concatenate([k - 1, k, [0, n - 1]])
    vals = np.concatenate([np.full(2 * (n - 1), 0.5), [1.0, 1.0]])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n + 1, n))


def _select_1d(n, side):
    """``(n + 1, n)``: the left (``side=0``) or right (``side=1``) neighbour of each interior face;
    zero rows on the boundary faces."""
    k = np.arange(1, n)
    return sp.csr_matrix((np.ones(n - 1), (k, k - 1 + side)), shape=(n + 1, n))


def _stack_axes(grid, op_1d):
    """Apply a 1-D face operator along x1 and along x2 and stack: ``[op ⊗ I; I ⊗ op]``."""
    (n1, n2), (h1, h2) = grid.shape, grid.h
    A1, A2 = op_1d(n1, h1), op_1d(n2, h2)
    return sp.vstack([sp.kron(A1, sp.identity(n2)), sp.kron(sp.identity(n1), A2)], format="csr")


def face_gradient(grid):
    """Face gradient with zero-flux boundary.

    ``(G u)_f = (u_R − u_L)/h`` on interior faces, ``0`` on boundary faces (``∇u·n = 0``).

    Returns
    -------
    G : scipy.sparse.csr_matrix, shape (n_faces, n_cells)
    """
    return _stack_axes(grid, _grad_1d)


def divergence(grid):
    """Cell divergence of face fluxes, ``(Div F)_c = (F_E − F_W)/h1 + (F_N − F_S)/h2`` (all faces,
    boundary included: ``v Σ_c (Div F)_c`` is the net outward flux through ``∂Ω``).

    Returns
    -------
    Div : scipy.sparse.csr_matrix, shape (n_cells, n_faces)
    """
    (n1, n2), (h1, h2) = grid.shape, grid.h
    return sp.hstack([sp.kron(_div_1d(n1, h1), sp.identity(n2)),
                      sp.kron(sp.identity(n1), _div_1d(n2, h2))], format="csr")


def face_average(grid):
    """Arithmetic average of cell values to faces, ``(n_faces, n_cells)`` (boundary faces take the
    adjacent cell's value)."""
    return _stack_axes(grid, lambda n, h: _avg_1d(n))


def harmonic_face_average(grid, sigma):
    """Harmonic average of a positive cell coefficient to the faces,
    ``σ_f = 2 σ_L σ_R / (σ_L + σ_R)`` (boundary faces: the adjacent cell's σ).

    This is the exact effective coefficient of two layers in series, so fluxes across jumps of σ
    stay accurate (Haber 2014, §3.2; Meganet.m / jInv ``getFaceAverageMatrix`` of ``1/σ``).

    Parameters
    ----------
    sigma : array, shape (n_cells,) or (n1, n2)
        Positive, finite.

    Returns
    -------
    sigma_f : array, shape (n_faces,)
    """
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1)
    if sigma.size != grid.n_cells:
        raise ValueError(f"sigma must have {grid.n_cells} cell values for grid {grid.shape}, got {sigma.size}")
    if not np.all(np.isfinite(sigma)) or sigma.min() <= 0:
        raise ValueError(f"sigma must be positive and finite, got range [{sigma.min()}, {sigma.max()}]")
    return 1.0 / (face_average(grid) @ (1.0 / sigma))


def diffusion_matrix(grid, sigma_f, *, G=None, Div=None):
    """The zero-flux diffusion operator ``A = −Div diag(σ_f) G``, a discretization of
    ``−∇·(σ∇u)`` with ``σ∇u·n = 0``.

    Symmetric positive semidefinite (``A = Gᵀ diag(σ_f) G`` since ``Div = −Gᵀ`` on interior faces);
    its null space is the constants.  5-point stencil; second order on smooth solutions.

    Parameters
    ----------
    sigma_f : array, shape (n_faces,)
        Positive face coefficients (see :func:`harmonic_face_average`); boundary entries are unused.

    Returns
    -------
    A : scipy.sparse.csr_matrix, shape (n_cells, n_cells)
    """
    G = face_gradient(grid) if G is None else G
    Div = divergence(grid) if Div is None else Div
    sigma_f = np.asarray(sigma_f, dtype=np.float64)
    if sigma_f.shape != (grid.n_faces,):
        raise ValueError(f"sigma_f must have shape ({grid.n_faces},), got {sigma_f.shape}")
    return (-(Div @ sp.diags(sigma_f) @ G)).tocsr()


def upwind_convection_matrix(grid, v_faces):
    """First-order upwind discretization of ``∇·(v u)`` in conservative form.

    Face flux ``F_f = v_f u_L`` if ``v_f ≥ 0`` else ``v_f u_R`` (``v_f`` the velocity normal to the
    face, positive along the axis); boundary fluxes are set to zero (``v·n = 0`` on ``∂Ω``), so the
    columns of ``v · Conv`` sum to zero and ``∫u`` is conserved.  For a divergence-free ``v``,
    ``∇·(v u) = v·∇u``; with face velocities from a stream function
    (:func:`face_velocity_from_streamfunction`) the discrete divergence of ``v`` is zero as well.

    Parameters
    ----------
    v_faces : array, shape (n_faces,)

    Returns
    -------
    Conv : scipy.sparse.csr_matrix, shape (n_cells, n_cells)
        ``Conv = Div (diag(v⁺) S_L + diag(v⁻) S_R)``.
    """
    v = np.asarray(v_faces, dtype=np.float64)
    if v.shape != (grid.n_faces,):
        raise ValueError(f"v_faces must have shape ({grid.n_faces},), got {v.shape}")
    v = np.where(grid.boundary_face_mask(), 0.0, v)
    SL = _stack_axes(grid, lambda n, h: _select_1d(n, 0))
    SR = _stack_axes(grid, lambda n, h: _select_1d(n, 1))
    flux = sp.diags(np.maximum(v, 0.0)) @ SL + sp.diags(np.minimum(v, 0.0)) @ SR
    return (divergence(grid) @ flux).tocsr()


def face_velocity_from_streamfunction(grid, psi):
    """Face-normal velocities of ``v = (∂ψ/∂x2, −∂ψ/∂x1)``, averaged exactly over each face.

    ``v1`` on the x1-face at ``x1 = x_k`` is ``(ψ(x_k, y_{j+1}) − ψ(x_k, y_j))/h2`` and ``v2`` on the
    x2-face at ``x2 = y_k`` is ``−(ψ(x_{i+1}, y_k) − ψ(x_i, y_k))/h1`` (node values of ψ), so the discrete
    divergence of ``v`` vanishes identically (the face fluxes of each cell telescope).

    Parameters
    ----------
    psi : callable ``psi(x1, x2)``, vectorized

    Returns
    -------
    v_faces : array, shape (n_faces,)
    """
    x, y = grid.nodes_1d()
    h1, h2 = grid.h
    P = psi(*np.meshgrid(x, y, indexing="ij"))  # (n1 + 1, n2 + 1) node values
    v1 = (P[:, 1:] - P[:, :-1]) / h2  # (n1 + 1, n2)
    v2 = -(P[1:, :] - P[:-1, :]) / h1  # (n1, n2 + 1)
    return np.concatenate([v1.ravel(), v2.ravel()])
