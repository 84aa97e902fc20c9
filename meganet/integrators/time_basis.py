r"""Weights parameterized in time, ``θ(t) = Σ_k p_k(t) θ_k`` (Meganet.m's ``A`` in ``ResNN.m``).

A time-stepping block with ``N`` steps of size ``h = T/N`` evaluates its layer
at the step times ``t_j = j·h`` (``j = 0, …, N−1``) with the weights

.. math:: θ(t_j) = \sum_{k=0}^{n_\mathrm{basis}-1} B_{jk}\, θ_k,
          \qquad B_{jk} = p_k(t_j),\quad B \in \mathbb{R}^{N × n_\mathrm{basis}},

where ``θ_k`` are the learned coefficient vectors, each of the layer's length
``n_θ``.  Fewer basis functions than steps give weights that are shared or
smooth in time (Haber & Ruthotto 2017, §5.3; Meganet.m ``integrators/ResNN.m``,
whose ``A`` is ``Bᵀ``).

Data layout (relied upon by the multilevel prolongation)
---------------------------------------------------------
The block's flat θ is the concatenation of the coefficient vectors,
``θ = (θ_0, θ_1, …, θ_{n_basis−1})``; :meth:`TimeBasis.coefficients` is the
zero-copy view ``θ.reshape(n_basis, n_θ)`` whose row ``k`` is ``θ_k`` (for a
batch of vectors ``(..., n_basis·n_θ) → (..., n_basis, n_θ)``).

* identity basis (``B = I``, ``n_basis = N``): row ``j`` is the weight of step
  ``j``, i.e. the value ``θ(t_j)`` at ``t_j = j·h``.  Prolongation from N to 2N
  steps interpolates the rows piecewise linearly in time from the grid
  ``j·h`` to ``j·h/2``.
* hat basis (``n_basis`` nodes ``τ_k = k·T/(n_basis−1)``): row ``k`` is the
  value ``θ(τ_k)``; θ(t) is piecewise linear.  The function θ(t) does not
  depend on N, so a block with 2N steps and the same coefficients is
  :meth:`TimeBasis.resample` ``(2N)`` — no interpolation needed.
* constant basis: one row shared by all steps (``resample`` likewise).

Stage times
-----------
Multi-stage integrators (Runge–Kutta 4) need θ between step times,
``θ(t_j + c·h)`` with ``c ∈ [0, 1]``.  The hat and constant bases are functions
of time and are evaluated there exactly.  The identity basis and a user matrix
define weights per *step* only; they are taken piecewise constant on
``[t_j, t_{j+1}]``, i.e. every stage of step ``j`` uses row ``j`` of B.

Applying B and Bᵀ is cheap: each row of B is stored as its non-zero entries
(a Python tuple), so ``θ(t_j)`` of the identity and constant bases is a *view*
of θ (no copy), a hat row costs one ``axpy``, and the adjoint adds ``h·g`` into
one or two rows of the gradient.  The rows hold only Python floats, so they
work for numpy and cupy arrays of either dtype without moving anything.
"""

from __future__ import annotations

from fractions import Fraction
import math
import numbers

import numpy as np

from ..backend import get_array_module, is_cupy_array, to_numpy
from ..core.validation import check_int, check_option

__all__ = ["TimeBasis", "as_time_basis"]

_KINDS = ("identity", "constant", "hat", "matrix")


class TimeBasis:
    r"""Basis matrix ``B`` (``n_steps × n_basis``) of a weight function θ(t).

    ``θ(t_j + c·h) = Σ_k p_k((j + c)/N) θ_k`` in normalized time ``s = t/T``.

    Parameters
    ----------
    kind : {'identity', 'constant', 'hat', 'matrix'}
        ``'identity'``: one weight set per step, ``B = I`` (Meganet.m default
        ``A = eye(nt)``).  ``'constant'``: one weight set for all steps,
        ``B = 1`` (an N × 1 column of ones; the "identical layers" of Haber &
        Ruthotto 2017, Fig. 2).  ``'hat'``: piecewise linear hat functions
        ``p_k`` on the uniform nodes ``τ_k = k/(n_basis−1)`` of ``[0, 1]``
        (smooth weights on a coarser time grid).  ``'matrix'``: a user matrix.
    n_steps : int
        Number of time steps N (rows of B); inferred from ``matrix`` for
        ``'matrix'``.
    n_basis : int
        Number of hat functions (``kind='hat'`` only, ≥ 2).
    matrix : array_like, shape (n_steps, n_basis)
        ``B`` for ``kind='matrix'``, evaluated at the step times.

    Notes
    -----
    Prefer the constructors :meth:`identity`, :meth:`constant`, :meth:`hat`,
    :meth:`from_matrix`.  For Runge–Kutta 4, ``TimeBasis.hat(N, 2N + 1)`` has
    nodes at every ``t_j``, ``t_j + h/2`` and ``t_j + h``, so every stage uses
    one coefficient vector unchanged: this is Meganet.m ``ResNNrk4.m`` with its
    default ``A = eye(2nt − 1)``.

    Examples
    --------
    >>> B = TimeBasis.hat(4, 3)
    >>> B.matrix()
    array([[1. , 0. , 0. ],
           [0.5, 0.5, 0. ],
           [0. , 1. , 0. ],
           [0. , 0.5, 0.5]])
    """

    def __init__(self, kind, *, n_steps=None, n_basis=None, matrix=None):
        self.kind = check_option("kind", kind, _KINDS)
        if kind == "matrix":
            if n_basis is not None:
                raise ValueError("n_basis must not be given for kind='matrix' (it is matrix.shape[1])")
            M = _check_matrix(matrix)
            if n_steps is not None and check_int("n_steps", n_steps, minimum=1) != M.shape[0]:
                raise ValueError(f"matrix must have n_steps = {n_steps} rows, got shape {M.shape}")
            self.n_steps, self.n_basis = M.shape
            self._matrix = M
        else:
            if matrix is not None:
                raise ValueError(f"matrix must be None for kind={kind!r}, it is only used with kind='matrix'")
            if n_steps is None:
                raise ValueError(f"n_steps is required for kind={kind!r}")
            self.n_steps = check_int("n_steps", n_steps, minimum=1)
            if kind == "hat":
                if n_basis is None:
                    raise ValueError("n_basis is required for kind='hat'")
                self.n_basis = check_int("n_basis", n_basis, minimum=2)
            else:
                if n_basis is not None:
                    raise ValueError(f"n_basis must not be given for kind={kind!r}")
                self.n_basis = self.n_steps if kind == "identity" else 1
            self._matrix = None
        self._rows = {}

    # ------------------------------------------------------------ factories
    @classmethod
    def identity(cls, n_steps):
        """One weight set per step, ``B = I_N``."""
        return cls("identity", n_steps=n_steps)

    @classmethod
    def constant(cls, n_steps):
        """One weight set shared by all ``n_steps`` steps."""
        return cls("constant", n_steps=n_steps)

    @classmethod
    def hat(cls, n_steps, n_basis):
        """Piecewise linear θ(t) with ``n_basis`` uniform nodes on ``[0, T]``."""
        return cls("hat", n_steps=n_steps, n_basis=n_basis)

    @classmethod
    def from_matrix(cls, matrix):
        """A user basis matrix ``B`` of shape ``(n_steps, n_basis)``."""
        return cls("matrix", matrix=matrix)

    # ----------------------------------------------------------- structure
    def rows(self, offset=0.0):
        """Sparse rows of B at the times ``t_j + offset·h``.

        Parameters
        ----------
        offset : float in [0, 1]
            Stage offset ``c`` (0 for the step times; 0.5 and 1 for RK4).

        Returns
        -------
        tuple of (indices, weights), one per step
            ``θ(t_j + c h) = Σ_i weights[i] · θ_{indices[i]}``; Python ints and
            floats, zero weights dropped.
        """
        c = _offset(offset)
        rows = self._rows.get(c)
        if rows is None:
            rows = tuple(self._row(j, c) for j in range(self.n_steps))
            self._rows[c] = rows
        return rows

    def _row(self, j, c):
        if self.kind == "identity":
            return (j,), (1.0,)
        if self.kind == "constant":
            return (0,), (1.0,)
        if self.kind == "matrix":
            nz = np.flatnonzero(self._matrix[j])
            return tuple(int(k) for k in nz), tuple(float(self._matrix[j, k]) for k in nz)
        # hat: position on the node grid, exact rational arithmetic (no 1 - 1e-16 weights)
        p = (j + c) / self.n_steps * (self.n_basis - 1)
        k = min(math.floor(p), self.n_basis - 2)
        w1 = p - k
        w0 = 1 - w1
        idx, wts = [], []
        for kk, w in ((k, w0), (k + 1, w1)):
            if w != 0:
                idx.append(kk)
                wts.append(float(w))
        return tuple(idx), tuple(wts)

    def matrix(self, offset=0.0):
        """Dense ``B`` (float64 numpy, shape ``(n_steps, n_basis)``) at ``t_j + offset·h``."""
        B = np.zeros((self.n_steps, self.n_basis))
        for j, (idx, wts) in enumerate(self.rows(offset)):
            B[j, list(idx)] = wts
        return B

    def coefficients(self, theta):
        """View ``θ → (..., n_basis, n_θ)``; row ``k`` is ``θ_k``.  No copy."""
        n = theta.shape[-1]
        if n % self.n_basis:
            raise ValueError(f"theta must have a length divisible by n_basis = {self.n_basis}, got {n}")
        return theta.reshape(*theta.shape[:-1], self.n_basis, n // self.n_basis)

    # ------------------------------------------------------------ products
    def weights_at(self, coeffs, j, offset=0.0):
        """``θ(t_j + offset·h) = Σ_k B_jk θ_k``.

        Parameters
        ----------
        coeffs : array, shape (..., n_basis, n_θ)
            From :meth:`coefficients`.
        j : int
            Step index, ``0 ≤ j < n_steps``.
        offset : float in [0, 1]

        Returns
        -------
        array, shape (..., n_θ)
            A view of ``coeffs`` where the row of B is a unit vector
            (identity, constant, hat at a node), else a new array.
        """
        idx, wts = self.rows(offset)[j]
        if len(idx) == 1 and wts[0] == 1.0:
            return coeffs[..., idx[0], :]
        if not idx:
            return get_array_module(coeffs).zeros_like(coeffs[..., 0, :])
        out = wts[0] * coeffs[..., idx[0], :]
        for k, w in zip(idx[1:], wts[1:]):
            out += w * coeffs[..., k, :]
        return out

    def add_adjoint(self, grad, j, g, offset=0.0, scale=1.0):
        """Accumulate the adjoint of :meth:`weights_at`: ``grad_k += scale·B_jk·g``.

        Parameters
        ----------
        grad : array, shape (..., n_basis, n_θ)
            Gradient w.r.t. the coefficients, updated in place.
        j : int
        g : array, shape (..., n_θ)
            Gradient w.r.t. ``θ(t_j + offset·h)``.
        offset : float in [0, 1]
        scale : float
            Python float factor (e.g. the step size h).
        """
        idx, wts = self.rows(offset)[j]
        for k, w in zip(idx, wts):
            a = scale * w
            if a == 1.0:
                grad[..., k, :] += g
            else:
                grad[..., k, :] += a * g

    def apply(self, coeffs, offset=0.0):
        """All step weights ``B Θ``: ``(..., n_basis, n_θ) → (..., n_steps, n_θ)``."""
        xp = get_array_module(coeffs)
        return xp.stack([self.weights_at(coeffs, j, offset) for j in range(self.n_steps)], axis=-2)

    def apply_T(self, G, offset=0.0):
        """``Bᵀ G``: ``(..., n_steps, n_θ) → (..., n_basis, n_θ)``."""
        xp = get_array_module(G)
        out = xp.zeros((*G.shape[:-2], self.n_basis, G.shape[-1]), dtype=G.dtype)
        for j in range(self.n_steps):
            self.add_adjoint(out, j, G[..., j, :], offset)
        return out

    # ------------------------------------------------------------ multilevel
    def resample(self, n_steps):
        """The same weight function θ(t) on a grid of ``n_steps`` steps.

        Defined for the constant and hat bases, whose coefficients do not
        depend on N (a block with 2N steps reuses θ unchanged).  The identity
        basis and user matrices tie coefficients to steps: prolongate their θ
        instead (piecewise linear interpolation in time, see the module notes).
        """
        if self.kind == "constant":
            return TimeBasis.constant(n_steps)
        if self.kind == "hat":
            return TimeBasis.hat(n_steps, self.n_basis)
        raise ValueError(
            f"resample is defined for kind 'constant' or 'hat', got kind={self.kind!r}; "
            "the coefficients of this basis are per step and must be prolongated"
        )

    def __eq__(self, other):
        if not isinstance(other, TimeBasis):
            return NotImplemented
        return (self.kind, self.n_steps, self.n_basis) == (other.kind, other.n_steps, other.n_basis) and (
            self.kind != "matrix" or np.array_equal(self._matrix, other._matrix)
        )

    __hash__ = None

    def __repr__(self):
        if self.kind == "hat":
            return f"TimeBasis('hat', n_steps={self.n_steps}, n_basis={self.n_basis})"
        if self.kind == "matrix":
            return f"TimeBasis('matrix', n_steps={self.n_steps}, n_basis={self.n_basis})"
        return f"TimeBasis({self.kind!r}, n_steps={self.n_steps})"


def as_time_basis(basis, n_steps, name="basis"):
    """Normalize the ``basis`` argument of a time-stepping block.

    Parameters
    ----------
    basis : None, 'identity', 'constant', TimeBasis or array_like (n_steps, n_basis)
        ``None`` means ``'identity'``.
    n_steps : int
        The block's number of steps; the basis must have as many rows.

    Returns
    -------
    TimeBasis
    """
    if basis is None or (isinstance(basis, str) and basis == "identity"):
        return TimeBasis.identity(n_steps)
    if isinstance(basis, str):
        if basis == "constant":
            return TimeBasis.constant(n_steps)
        raise ValueError(
            f"{name} must be None, 'identity', 'constant', a TimeBasis or a matrix of shape "
            f"(n_steps, n_basis), got {basis!r}; for hat functions use TimeBasis.hat(n_steps, n_basis)"
        )
    if not isinstance(basis, TimeBasis):
        if isinstance(basis, (numbers.Number, bool)) or basis is Ellipsis:
            raise TypeError(f"{name} must be None, 'identity', 'constant', a TimeBasis or a 2-D array, got {basis!r}")
        try:
            basis = TimeBasis.from_matrix(basis)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name}: {err}") from err
    if basis.n_steps != n_steps:
        raise ValueError(
            f"{name} must have n_steps = {n_steps} rows (one per time step), got {basis!r} "
            f"with {basis.n_steps} rows"
        )
    return basis


def _check_matrix(matrix):
    if matrix is None:
        raise ValueError("matrix is required for kind='matrix'")
    if is_cupy_array(matrix):
        matrix = to_numpy(matrix)
    try:
        M = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"matrix must be a real 2-D array of shape (n_steps, n_basis), got {type(matrix).__name__}") from err
    if M.ndim != 2 or M.shape[0] < 1 or M.shape[1] < 1:
        raise ValueError(f"matrix must be a 2-D array of shape (n_steps, n_basis) with n_steps, n_basis >= 1, got shape {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError("matrix contains non-finite values (NaN or Inf)")
    return M


def _offset(offset):
    if not isinstance(offset, numbers.Real) or isinstance(offset, bool):
        raise TypeError(f"offset must be a real number in [0, 1], got {offset!r}")
    c = Fraction(offset)
    if not 0 <= c <= 1:
        raise ValueError(f"offset must be in [0, 1], got {offset!r}")
    return c
