r"""The small classifier problem (private): Hessian blocks ``∇²_ww Φ`` of the loss
with respect to the classifier ``w = (vec W, μ)`` and solvers for it.

With samples in rows, bias-augmented features ``A = [Y_s, 1]`` (shape
``(n_s, F)``, ``F = n_features + bias``) and ``X = [W, μ]`` (shape
``(n_classes, F)``) the logits are ``Z = A Xᵀ`` and

.. math::

    ∇²_{XX} Φ = \sum_s (q_s/m)\, ∇²ℓ(z_s) ⊗ a_s a_sᵀ

(``⊗`` the Kronecker product, ``∇²ℓ(z_s)`` the per-sample Hessian w.r.t. the
logits).  ``w`` stores ``vec W`` row-major followed by ``μ``; :func:`w_to_X`
gives the index map between the two layouts.

Solvers of ``(∇²_ww Φ + ∇²S) x = b`` (``S`` the classifier regularizer):

* :class:`DenseSolver` — dense Hessian (assembled from the formula above),
  its Cholesky factor and explicit inverse, computed once per point; every
  solve is then one matrix-vector product and exactly symmetric.  A singular
  Hessian falls back to the eigendecomposition and the pseudo-inverse.
* :class:`SVDLeastSquares` — least squares with ``S = α/2‖w − w_ref‖²``:
  the thin SVD ``D^{1/2} A = U Σ Vᵀ`` gives both ``W(θ)`` in closed form and
  the solves, ``X ↦ X (V (Σ² + α)^{-1} Vᵀ + (I − VVᵀ)/α)``
  (Newman et al. 2020, "Train like a (Var)Pro", §3.1).
* :class:`CGSolver` — matrix-free CG with a Jacobi preconditioner, for
  classifiers too large to assemble (``n_w`` above ``dense_max``).

All work in float64.  ``scipy.linalg.cho_solve`` would do the dense solves on
the host; they are written with ``xp.linalg`` so that cupy arrays stay on the
device.  (The eigendecomposition is ~100× slower than Cholesky for the
``n_w ≈ 50`` classifiers of the 2-D problems, hence only the fallback.)
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module, to_backend
from ..losses.base import LossEval
from ..optimizers.cg import pcg
from ..regularizers.tikhonov import Identity, Tikhonov

__all__ = ["curvature_blocks", "features", "w_to_X", "dense_hessian", "hessian_diagonal", "DenseSolver",
           "SVDLeastSquares", "CGSolver", "is_identity_tikhonov"]


def features(loss, ev: LossEval):
    """Bias-augmented sample features ``A``, shape ``(n_s, F)``."""
    Ys = ev.cache.Ys
    if not loss.bias:
        return Ys
    xp = ev.xp
    return xp.concatenate([Ys, xp.ones((Ys.shape[0], 1), dtype=Ys.dtype)], axis=1)


def curvature_blocks(loss, ev: LossEval):
    """``(q_s/m) ∇²ℓ(z_s)`` for every sample, shape ``(n_s, C, C)``.

    Built column by column from the loss's per-sample curvature product
    (``C`` products with unit vectors)."""
    xp = ev.xp
    c = ev.cache
    n_s, C = c.Z.shape
    H = xp.empty((n_s, C, C), dtype=c.Z.dtype)
    E = xp.zeros((n_s, C), dtype=c.Z.dtype)
    for j in range(C):
        E[:, j] = 1.0
        H[:, :, j] = loss._curvature_mv(E, c.curvature)
        E[:, j] = 0.0
    return H * c.weight[:, :, None]


def w_to_X(loss):
    """``perm`` with ``w[i] = X.ravel()[perm[i]]`` (numpy int array of length ``n_w``)."""
    C, f = loss.n_classes, loss.n_features
    F = f + (1 if loss.bias else 0)
    c, k = np.divmod(np.arange(C * f), f)
    perm = [c * F + k]
    if loss.bias:
        perm.append(np.arange(C) * F + f)
    return np.concatenate(perm)


def _to_X(loss, w, perm, xp):
    """``w`` (length n_w) → ``X`` (C × F)."""
    F = loss.n_features + (1 if loss.bias else 0)
    X = xp.empty(loss.n_classes * F, dtype=w.dtype)
    X[perm] = w
    return X.reshape(loss.n_classes, F)


def _from_X(X, perm):
    return X.reshape(-1)[perm]


def dense_hessian(loss, ev: LossEval, Hs=None):
    """``∇²_ww Φ`` as a dense ``(n_w, n_w)`` array (layout of ``w``)."""
    xp = ev.xp
    A = features(loss, ev)
    Hs = curvature_blocks(loss, ev) if Hs is None else Hs
    C, F = loss.n_classes, A.shape[1]
    HX = xp.zeros((C, F, C, F), dtype=A.dtype)
    for i in range(C):
        for j in range(i, C):
            blk = A.T @ (A * Hs[:, i, j][:, None])
            HX[i, :, j, :] = blk
            if j != i:
                HX[j, :, i, :] = blk.T
    HX = HX.reshape(C * F, C * F)
    perm = xp.asarray(w_to_X(loss))
    return HX[perm][:, perm]


def hessian_diagonal(loss, ev: LossEval, Hs=None):
    """``diag ∇²_ww Φ`` (layout of ``w``): ``Σ_s (q_s/m) ∇²ℓ(z_s)_cc a_sk²``."""
    xp = ev.xp
    A = features(loss, ev)
    Hs = curvature_blocks(loss, ev) if Hs is None else Hs
    d = xp.stack([Hs[:, c, c] for c in range(loss.n_classes)], axis=1)  # (n_s, C)
    DX = d.T @ (A * A)  # (C, F)
    return _from_X(DX, xp.asarray(w_to_X(loss)))


def is_identity_tikhonov(reg):
    """True for ``None`` or ``Tikhonov`` with ``L = I`` (weight decay on all of ``w``)."""
    return reg is None or (isinstance(reg, Tikhonov) and isinstance(reg.L, Identity))


def _reg_matrix(reg, w, xp):
    if reg is None:
        return None
    return to_backend(np.asarray(reg.hessian_matrix(w).toarray(), dtype=np.float64), xp)


class DenseSolver:
    """``(∇²_ww Φ + ∇²S)⁻¹`` from the assembled dense Hessian.

    Positive definite Hessians (the usual case: a classifier regularizer with
    ``α > 0``): Cholesky factor ``H = LLᵀ`` and the explicit, symmetrized
    inverse ``L⁻ᵀL⁻¹`` (solves are then one matrix-vector product and exactly
    symmetric, so the reduced Gauss-Newton matrix is symmetric to round-off).
    Singular ones: the eigendecomposition and the pseudo-inverse (eigenvalues
    below ``n·eps·λ_max`` dropped).  ``kind`` is ``'cholesky'`` or ``'eigh'``.

    Parameters
    ----------
    loss, ev : the loss and an evaluation in float64 at ``w``
    reg : classifier Regularizer or None
    w : array, shape (n_w,), float64
    """

    def __init__(self, loss, ev, reg, w):
        self._factor(dense_hessian(loss, ev), reg, w, ev.xp)

    @classmethod
    def from_hessian(cls, H, reg, w, xp=np):
        """The solver of an already assembled loss Hessian ``H`` (e.g. summed over data shards), plus ``reg``."""
        self = cls.__new__(cls)
        self._factor(H, reg, w, xp)
        return self

    def _factor(self, H, reg, w, xp):
        R = _reg_matrix(reg, w, xp)
        if R is not None:
            H = H + R
        H = 0.5 * (H + H.T)
        self.H, self.xp = H, xp
        self.Q = self.lam = None
        try:
            L = xp.linalg.cholesky(H)
            if not bool(xp.isfinite(L).all()):  # cupy reports failure with NaNs instead of raising
                raise np.linalg.LinAlgError("non-finite Cholesky factor")
            Linv = xp.linalg.inv(L)
            Hinv = Linv.T @ Linv
            self.Hinv = 0.5 * (Hinv + Hinv.T)
            self.kind = "cholesky"
        except np.linalg.LinAlgError:
            lam, Q = xp.linalg.eigh(H)
            lmax = float(xp.abs(lam).max()) if lam.size else 0.0
            cut = H.shape[0] * np.finfo(np.float64).eps * lmax
            inv = xp.where(lam > cut, 1.0 / xp.where(lam > cut, lam, 1.0), 0.0)
            self.Hinv = (Q * inv) @ Q.T
            self.Q, self.lam = Q, lam
            self.kind = "eigh"

    def solve(self, b):
        return self.Hinv @ b

    def matvec(self, v):
        return self.H @ v


class SVDLeastSquares:
    r"""Least squares with ``S = α/2 ‖w − w_ref‖²`` (or ``S = 0``): closed form and solves from one SVD.

    ``B = D^{1/2} A = U Σ Vᵀ`` (thin SVD, ``D = diag(q_s/m)``).  The normal
    equations of ``min_X ½ ‖D^{1/2}(A Xᵀ − T)‖² + α/2 ‖X − X_ref‖²`` read
    ``X (AᵀDA + αI) = TᵀDA + α X_ref``, and
    ``(AᵀDA + αI)⁻¹ = V (Σ² + α)⁻¹ Vᵀ + (I − VVᵀ)/α``.  With ``α = 0`` the
    pseudo-inverse ``V Σ⁻² Vᵀ`` (singular values below ``F·eps·σ_max``
    dropped) gives the minimum-norm ``X`` and a Hessian solve restricted to
    the range of the features.

    Parameters
    ----------
    loss : LeastSquares
    ev : LossEval in float64 (any ``w``; only features, targets and weights are used)
    reg : None or Tikhonov with identity ``L``
    """

    kind = "svd"

    def __init__(self, loss, ev, reg):
        xp = ev.xp
        self.loss, self.xp = loss, xp
        self.perm = xp.asarray(w_to_X(loss))
        A = features(loss, ev)
        sw = xp.sqrt(ev.cache.weight)
        B = sw * A
        _, s, Vt = xp.linalg.svd(B, full_matrices=False)
        smax = float(s.max()) if s.size else 0.0
        keep = s > max(B.shape) * np.finfo(np.float64).eps * smax
        self.s, self.V = s[keep], Vt[keep].T  # (F, r)
        self.alpha = 0.0 if reg is None else float(reg.alpha)
        self.w_ref = None if reg is None or reg.theta_ref is None else to_backend(reg.theta_ref, xp)
        self.F = A.shape[1]
        self._TDA = (ev.cache.T * ev.cache.weight).T @ A  # TᵀDA, (C, F)

    def _apply_inverse_X(self, R):
        """``R (AᵀDA + αI)⁻¹`` for ``R`` of shape (C, F)."""
        RV = R @ self.V
        out = (RV / (self.s * self.s + self.alpha)) @ self.V.T
        if self.alpha > 0.0 and self.V.shape[1] < self.F:
            out = out + (R - RV @ self.V.T) / self.alpha
        return out

    def minimizer(self):
        """``w(θ)`` (float64)."""
        rhs = self._TDA
        if self.alpha > 0.0 and self.w_ref is not None:
            rhs = rhs + self.alpha * _to_X(self.loss, self.w_ref, self.perm, self.xp)
        return _from_X(self._apply_inverse_X(rhs), self.perm)

    def solve(self, b):
        return _from_X(self._apply_inverse_X(_to_X(self.loss, b, self.perm, self.xp)), self.perm)


class CGSolver:
    """Matrix-free ``(∇²_ww Φ + ∇²S)⁻¹ b`` by Jacobi-preconditioned CG (float64).

    Products are the loss's exact ``hess_w_mv`` plus the regularizer's; used
    when ``n_w`` is too large to assemble.  Solves are accurate to ``rtol``
    (so the reduced Gauss-Newton matrix is symmetric to about that accuracy).
    """

    kind = "cg"

    def __init__(self, loss, ev, reg, w, *, rtol=1e-12, max_iter=None):
        self.loss, self.ev, self.reg, self.w = loss, ev, reg, w
        d = hessian_diagonal(loss, ev)
        if reg is not None:
            d = d + reg.hessian_diagonal(w)
        xp = ev.xp
        dmax = float(d.max()) if d.size else 1.0
        self.dinv = 1.0 / xp.maximum(d, 1e-12 * max(dmax, 1e-300))
        self.rtol = rtol
        self.max_iter = max_iter if max_iter is not None else max(10 * loss.n_w, 50)
        self.n_matvec = 0
        self.last_info = None

    def matvec(self, v):
        Hv = self.loss.hess_w_mv(v, self.ev)
        if self.reg is not None:
            Hv = Hv + self.reg.hess_mv(v, self.w)
        return Hv

    def solve(self, b, rtol=None):
        res = pcg(self.matvec, b, precond=lambda r: self.dinv * r, rtol=self.rtol if rtol is None else rtol,
                  max_iter=self.max_iter)
        self.n_matvec += res.n_matvec
        self.last_info = res.info
        return res.x


def make_solver(loss, ev, reg, w, method, *, dense_max):
    """Pick ``DenseSolver`` / ``CGSolver`` (method in {'auto', 'dense', 'cg'})."""
    if method == "dense" or (method == "auto" and loss.n_w <= dense_max):
        return DenseSolver(loss, ev, reg, w)
    return CGSolver(loss, ev, reg, w)


def norm(v):
    xp = get_array_module(v)
    s = float(xp.vdot(v, v))
    return math.sqrt(s) if s >= 0 else float("nan")
