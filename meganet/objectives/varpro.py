r"""Variable projection (VarPro / GNvpro): the reduced objective over θ alone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..backend import check_dtype
from ..core.validation import check_int, check_option, check_positive
from ..losses.base import LossEval
from ..losses.least_squares import LeastSquares
from . import _classifier
from ._base import DataView, ObjectiveBase, check_rng, check_state_type, same_point
from ._inner_krylov import KrylovLowRankSolver, hessian_operator, solve_classifier_krylov
from ._inner_newton import InnerResult, solve_classifier

__all__ = ["VarProObjective", "VarProState"]

_INNER_METHODS = ("auto", "dense", "cg")
_INNER_SOLVERS = ("trust_region", "krylov")
_DEFAULT_INNER_SOLVER = "trust_region"  # see the class docstring ("Choice of the inner solver")
_DEFAULT_KRYLOV_DIM = None  # None: n_w


@dataclass
class _ReducedCurvature:
    """What the reduced Gauss-Newton products at one θ use (all examples or the subsample)."""

    view: DataView
    Z: Any
    net_cache: Any
    loss_eval: LossEval  # objective dtype, at w(θ)
    solver: Any  # (∇²_ww Φ + ∇²S)⁻¹ in float64 on the same examples


@dataclass
class VarProState:
    """An evaluation of the reduced objective at θ.

    Attributes
    ----------
    x : array
        θ (not copied).
    w : array, shape (n_w,)
        ``w(θ)`` in the objective's dtype.
    w64 : array
        ``w(θ)`` in float64 (the inner solution).
    Z, net_cache : network output and forward cache
    loss_eval : LossEval at ``(Z, w(θ))`` in the objective's dtype
    inner : InnerResult
        Newton iterations, ``‖∇_w Φ‖`` and status of the inner solve.
    value : float
    parts : dict
    grad : array or None
    curvature : _ReducedCurvature or None
    """

    x: Any
    w: Any
    w64: Any
    Z: Any
    net_cache: Any
    loss_eval: LossEval
    inner: InnerResult
    value: float
    parts: dict
    grad: Any = None
    curvature: Optional[_ReducedCurvature] = None
    ev64: Any = None


class VarProObjective(ObjectiveBase):
    r"""The reduced (variable projection) training objective over θ,

    .. math::

        Φ_{red}(θ) = Φ(θ, w(θ)),\qquad w(θ) = \operatorname*{argmin}_w Φ(θ, w),\qquad
        Φ(θ, w) = \mathcal{L}(W F(θ, Y) + μ, C) + R(θ) + S(w)\;[+ R_{out}(F)],

    of Newman, Ruthotto, Hart & van Bloemen Waanders, "Train like a (Var)Pro:
    efficient training of neural networks with variable projection" (SIAM J.
    Math. Data Sci. 2021; arXiv 2007.13171): the classifier is eliminated, and
    the optimizer sees a problem in θ only (GNvpro when minimized with
    Gauss-Newton).  Meganet.m counterparts: ``dnnVarProRegressionObjFctn.m``
    (least squares via the SVD, with the derivative of ``W(θ)`` in the
    Jacobian, as here) and ``dnnVarProObjFctn.m`` (any loss, inner solve by
    Newton; its Hessian holds ``W`` fixed, i.e. omits the ``J_θ w`` term that
    is included here as in the GNvpro paper).

    **Inner problem** (the classifier for fixed features ``F = F(θ, Y)``; float64):

    * least squares with ``S = α/2‖w − w_ref‖²`` (or no ``S``): closed form
      from the thin SVD of the weighted, bias-augmented features
      ``D^{1/2}[F, 1] = U Σ Vᵀ``, ``X = [W, μ] = (TᵀD A + α X_ref)
      (V(Σ² + α)⁻¹Vᵀ + (I − VVᵀ)/α)``; the same SVD gives the Hessian solves
      below.  With ``α = 0`` (no classifier regularizer) the pseudo-inverse
      gives the minimum-norm ``W`` and the Hessian solves act on the range of
      the features — set ``α > 0`` unless there are many more labelled
      samples than features;
    * any other case (cross-entropy, logistic regression, other ``S``):
      ``inner_solver="trust_region"`` (default): trust-region Newton
      (:mod:`._inner_newton`) to ``‖∇_w Φ‖ ≤ inner_tol``, warm-started from the
      previous ``w``; subproblems solved exactly (Moré–Sorensen with Cholesky
      factors, for ``n_w ≤ inner_dense_max``) or by Steihaug-CG.  Cross-entropy and logistic
      regression need a classifier regularizer (``α > 0``), else ``w(θ)`` need
      not exist (separable data).  ``inner_solver="krylov"`` instead uses the
      published GNvpro inner solver (:mod:`._inner_krylov`): a Newton–Krylov
      trust region started from ``w = 0`` at every solve (no warm start;
      ``w0`` and :meth:`warm_start_classifier` are ignored), each step
      Lanczos with full reorthogonalisation on ``K_r(∇²Φ, ∇_wΦ)``
      (``r = inner_krylov_dim``) and the projected regularized least-squares
      problem solved by the SVD of ``H_r`` and ``brentq``; the implicit
      Jacobian then uses the low-rank inverse ``Q_r H_r† Q_{r+1}ᵀ`` built by
      one more Lanczos run at the final ``w`` (Hessian products only, no
      network passes; exact for ``r = n_w``, an approximation — and the
      reduced Gauss-Newton matrix not symmetric — for ``r < n_w``).  Least
      squares keeps the SVD closed form whatever ``inner_solver`` says.

    **Choice of the inner solver** (``benchmarks/inner_ce_solvers.py``,
    ``benchmarks/results/inner_ce/README.md``; peaks with 5 classes, n_w = 45,
    and a 10-class Gaussian mixture with width-24 features, n_w = 250; θ after
    0, 3, 6, 9 outer iterations; 2-core AMD EPYC, single-threaded BLAS): the
    default stays ``"trust_region"``.  Both solvers reach ``inner_tol`` from
    ``w = 0`` in 7–9 trust-region steps and give the same ``w``, but
    ``"trust_region"`` is ~3× faster per inner solve (peaks 0.007–0.010 s vs
    0.031 s; n_w = 250: 0.087–0.120 s from 0 and 0.033–0.070 s warm-started,
    vs 0.27–0.31 s for ``"krylov"`` with ``r = n_w``), and its implicit
    solves are exact.  ``"krylov"`` with ``r = n_w`` gives the same outer
    iterates (Φ_red after 10 outer iterations equal to ~1e-11) at 1.9× and
    4× the outer wall time.  The default ``inner_krylov_dim=None``
    (``r = n_w``, as Meganet.m's ``EVP_Circle_GNvpro.m``, whose
    ``GMRES('m',[])`` means ``m = n_w``; its Indian Pines examples use
    ``m = 500`` for n_w = 528): with ``r < n_w`` the low-rank inverse misses
    the implicit-derivative right-hand sides (relative error 0.95–1.2 vs
    4e-14–6e-12 at ``r = n_w``; it returns mostly < 50 % of their norm).
    The outer objective after 10 iterations with ``r < n_w`` was then
    lower on the 10-class problem and higher on peaks (3 seeds each), the
    same pattern as dropping the implicit term altogether (W held fixed),
    i.e. an effect of the outer curvature model, not of the inner solver.

    **Reduced gradient**: since ``∇_w Φ(θ, w(θ)) = 0``,
    ``∇Φ_red(θ) = ∇_θ Φ(θ, w(θ)) = J_θᵀ ∇_F L + ∇R`` (one adjoint pass).

    **Reduced Gauss-Newton product**: the logits ``z(θ) = W(θ) F(θ) + μ(θ)``
    have the Jacobian ``J_red v = W J_θF v + J_w z · J_θw v`` (the
    ``(Fᵀ ⊗ I) J_θ w`` term of the paper), where the implicit function theorem
    applied to ``∇_w Φ(θ, w(θ)) = 0`` gives
    ``∇²_ww Φ · J_θw = −∇²_wF L · J_θF`` (the exact mixed block of the loss).
    Then

    .. math:: H_{red} v = J_{red}ᵀ H_z J_{red} v + (J_θw)ᵀ ∇²S (J_θw) v + ∇²R v,

    symmetric positive semidefinite, computed with one linearized forward pass
    ``J_θF v``, two solves with the small ``∇²_ww Φ + ∇²S`` and one adjoint
    pass.  With ``hessian_fraction < 1`` all of it (including ``∇²_ww Φ``)
    uses a random subsample of the labelled examples at the current ``w(θ)``,
    redrawn at every new θ.

    Work units (``counter``): as for
    :class:`~meganet.objectives.NetworkObjective`: a value costs one forward
    pass, a gradient one adjoint pass, a Gauss-Newton product two; the inner
    solve touches no network and counts nothing (its iterations are reported
    in ``state.inner`` and :attr:`inner_stats`).

    Parameters
    ----------
    network, loss, Y, C, regularizer, classifier_regularizer, output_regularizer, mask, rng, preconditioner
        As in :class:`~meganet.objectives.NetworkObjective` (``preconditioner``
        here is ``diag(∇²R)`` on θ).
    inner_tol : float
        Inner stopping tolerance on ``‖∇_w Φ‖`` (float64; default 1e-10).
    inner_max_iter : int
        Maximum Newton iterations of one inner solve.
    inner_method : {'auto', 'dense', 'cg'}
        Newton and implicit-derivative solves of ``inner_solver='trust_region'``:
        dense factorisation (Cholesky; eigendecomposition when singular) of the
        assembled ``∇²_ww Φ`` (``'auto'`` when ``n_w ≤ inner_dense_max``) or
        matrix-free CG.  Ignored by ``inner_solver='krylov'``.  Least squares
        with an identity Tikhonov (or none) always uses the SVD.
    inner_dense_max : int
        Largest ``n_w`` solved densely under ``'auto'`` (default 1000).
    w0 : array, optional
        Initial guess of the classifier for the first inner solve (default
        ``loss.init_w`` scaled to zero, i.e. ``w = 0``).
    hessian_fraction : float in (0, 1], optional
    inner_solver : {'trust_region', 'krylov'}
        Cross-entropy / logistic inner solver: today's warm-started exact
        trust-region Newton (``'trust_region'``, default) or the published
        GNvpro Newton–Krylov trust region from ``w = 0`` (``'krylov'``).
        Ignored for least squares with an identity Tikhonov (SVD).
    inner_krylov_dim : int or None
        ``r`` of ``'krylov'``: Krylov dimension of every inner step and rank of
        the low-rank inverse Hessian, ``1 ≤ r ≤ n_w``; ``None`` (default):
        ``n_w`` (exact Newton steps and exact implicit solves).  With the
        Hessian subsample (``hessian_fraction < 1``) the low-rank inverse is
        built on the subsample's Hessian at ``w(θ)``, Lanczos started from the
        subsample's gradient.
    chunk_size : int, optional
        Memory-bounded network passes, as in
        :class:`~meganet.objectives.NetworkObjective`.
    hessian_kind : {'gauss_newton', 'exact'}, default 'gauss_newton'
        What :meth:`hessian_matvec` returns when the caller (a solver) does not say.
    """

    def __init__(self, network, loss, Y, C, *, regularizer=None, classifier_regularizer=None, mask=None,
                 inner_tol=1e-10, inner_max_iter=50, hessian_fraction=None, rng=None, output_regularizer=None,
                 preconditioner=None, inner_method="auto", inner_dense_max=1000, w0=None,
                 inner_solver=_DEFAULT_INNER_SOLVER, inner_krylov_dim=_DEFAULT_KRYLOV_DIM, chunk_size=None,
                 hessian_kind="gauss_newton"):
        self.hessian_kind = hessian_kind
        super().__init__(network, loss, Y, C, regularizer=regularizer, classifier_regularizer=classifier_regularizer,
                         output_regularizer=output_regularizer, mask=mask, hessian_fraction=hessian_fraction,
                         rng=rng, preconditioner=preconditioner, chunk_size=chunk_size)
        self.inner_tol = check_positive("inner_tol", inner_tol)
        self.inner_max_iter = check_int("inner_max_iter", inner_max_iter, minimum=1)
        self.inner_method = check_option("inner_method", inner_method, _INNER_METHODS)
        self.inner_dense_max = check_int("inner_dense_max", inner_dense_max, minimum=1)
        if not isinstance(inner_solver, str):
            raise TypeError(f"inner_solver must be a str, one of {_INNER_SOLVERS}; got {type(inner_solver).__name__}")
        self.inner_solver = check_option("inner_solver", inner_solver, _INNER_SOLVERS)
        if inner_krylov_dim is None:
            self.inner_krylov_dim = loss.n_w
        else:
            if isinstance(inner_krylov_dim, bool) or not isinstance(inner_krylov_dim, (int, np.integer)):
                raise TypeError(f"inner_krylov_dim must be an int or None; got {type(inner_krylov_dim).__name__}")
            if not 1 <= int(inner_krylov_dim) <= loss.n_w:
                raise ValueError(f"inner_krylov_dim must be in [1, n_w] = [1, {loss.n_w}] (None: n_w); "
                                 f"got {inner_krylov_dim}")
            self.inner_krylov_dim = int(inner_krylov_dim)
        self.use_svd = isinstance(loss, LeastSquares) and _classifier.is_identity_tikhonov(classifier_regularizer)
        if not isinstance(loss, LeastSquares):
            reg = classifier_regularizer
            if reg is None or (getattr(reg, "alpha", 1.0) == 0.0):
                raise ValueError(
                    f"VarProObjective with {type(loss).__name__} needs a classifier_regularizer with alpha > 0 "
                    f"(e.g. meganet.regularizers.Tikhonov(loss.n_w, alpha=1e-3)): without it the minimizing "
                    "classifier w(θ) need not exist (separable data) and the inner Newton solve may not converge")
        xp = self.xp
        # float64 copies for the inner problem
        self._C64 = self.C.astype(np.float64) if self.C.dtype.kind == "f" else self.C
        self._reg64 = self.classifier_regularizer
        if w0 is None:
            self._w_last = xp.zeros(loss.n_w, dtype=np.float64)
        else:
            self._check_vec("w0", w0, loss.n_w)
            self._w_last = w0.astype(np.float64)
        self.inner_stats = dict(solves=0, newton_iterations=0, cg_iterations=0, max_grad_norm=0.0,
                                not_converged=0)
        self._last_state = None
        self._radius_last = None  # trust radius of the inner solves, carried over like w

    # ------------------------------------------------------------ layout
    @property
    def n(self) -> int:
        """Length of θ: ``network.n_theta``."""
        return self.network.n_theta

    @property
    def n_theta(self) -> int:
        return self.network.n_theta

    @property
    def n_w(self) -> int:
        return self.loss.n_w

    def init_x(self, *, rng=None, dtype=None):
        """``network.init_theta`` (default dtype: that of the data)."""
        dtype = self.dtype if dtype is None else check_dtype(dtype)
        return self.network.init_theta(rng=check_rng(rng), dtype=dtype, xp=self.xp)

    def split(self, theta):
        """``(θ, w(θ))`` — the network weights and the eliminated classifier (solved if needed)."""
        return theta, self.classifier(theta)

    def warm_start_classifier(self, w):
        """Use ``w`` as the starting guess of the next inner solve (e.g. from a coarser level)."""
        self._check_vec("w", w, self.loss.n_w)
        self._w_last = w.astype(np.float64)

    def _check_theta(self, theta):
        return self._check_vec("theta", theta, self.n)

    # ------------------------------------------------------------ inner solve
    def _solve_inner(self, Z, view, w_start):
        """``w(θ)`` on the features ``Z`` of ``view`` (float64): an :class:`InnerResult`."""
        loss = self.loss
        Z64 = Z if Z.dtype == np.float64 else Z.astype(np.float64)
        C64 = self._C64 if view.idx is None else self._C64[self.xp.asarray(view.idx)]
        if self.use_svd:
            ev0 = loss.evaluate(Z64, w_start, C64, mask=view.mask, need=())
            svd = _classifier.SVDLeastSquares(loss, ev0, self._reg64)
            w = svd.minimizer()
            ev = loss.evaluate(Z64, w, C64, mask=view.mask)
            g = ev.grad_w
            f = float(ev.value)
            if self._reg64 is not None:
                rv, rg = self._reg64.value_and_gradient(w)
                f, g = f + float(rv), g + rg
            gn = _classifier.norm(g)
            res = InnerResult(w=w, loss_eval=ev, value=f, grad_norm=gn, n_iter=0, n_cg=0,
                              status="closed_form", solver=svd)
        elif self.inner_solver == "krylov":
            res = solve_classifier_krylov(loss, Z64, C64, view.mask, self._reg64, tol=self.inner_tol,
                                          max_iter=self.inner_max_iter, krylov_dim=self.inner_krylov_dim)
        else:
            res = solve_classifier(loss, Z64, C64, view.mask, self._reg64, w_start, tol=self.inner_tol,
                                   max_iter=self.inner_max_iter, method=self.inner_method,
                                   dense_max=self.inner_dense_max, radius0=self._radius_last)
        return res

    @property
    def _krylov(self):
        return self.inner_solver == "krylov" and not self.use_svd

    def _record_inner(self, res):
        st = self.inner_stats
        st["solves"] += 1
        st["newton_iterations"] += res.n_iter
        st["cg_iterations"] += res.n_cg
        st["max_grad_norm"] = max(st["max_grad_norm"], res.grad_norm)
        if res.status not in ("converged", "closed_form"):
            st["not_converged"] += 1

    # ------------------------------------------------------------ protocol
    def value(self, theta):
        """``(Φ_red(θ), state)``: one forward pass and the inner solve for ``w(θ)``."""
        self._check_theta(theta)
        Z, cache = self._forward(theta, self._full_view)
        return self._evaluate(theta, Z, cache)

    def _evaluate(self, theta, Z, cache):
        if not self._finite(Z):  # the network overflowed: f = NaN (solvers stop with 'non_finite')
            w64 = self.xp.full(self.n_w, np.nan)
            res = InnerResult(w=w64, loss_eval=None, value=math.nan, grad_norm=math.nan, n_iter=0, n_cg=0,
                              status="non_finite")
            state = VarProState(x=theta, w=self._nan(self.n_w), w64=w64, Z=Z, net_cache=cache, loss_eval=None, inner=res,
                                value=math.nan, parts=dict(loss=math.nan))
            self._last_state = state
            return math.nan, state
        res = self._solve_inner(Z, self._full_view, self._w_last)
        self._record_inner(res)
        if math.isfinite(res.grad_norm):
            self._w_last = res.w
            if res.n_iter > 0:
                self._radius_last = max(res.radius, 1e-3)
        w = res.w if self.dtype == np.float64 else res.w.astype(self.dtype)
        ev = res.loss_eval if self.dtype == np.float64 else self.loss.evaluate(Z, w, self.C, mask=self.mask)
        parts = dict(loss=float(ev.value), regularizer=self._reg_value(self.regularizer, theta),
                     classifier_regularizer=self._reg_value(self.classifier_regularizer, w))
        if self.output_regularizer is not None:
            parts["output_regularizer"] = float(self.output_regularizer.value(Z))
        f = float(sum(parts.values()))
        state = VarProState(x=theta, w=w, w64=res.w, Z=Z, net_cache=cache, loss_eval=ev, inner=res, value=f,
                            parts=parts, ev64=res.loss_eval)
        self._last_state = state
        return f, state

    def gradient(self, theta, state=None):
        """``∇Φ_red(θ) = J_θᵀ ∇_F L(W(θ)F + μ(θ)) + ∇R``: one adjoint pass."""
        state = self._state_at(theta, state)
        if state.loss_eval is None:
            return self._nan(self.n)
        if state.grad is None:
            gZ = state.loss_eval.grad_Y
            if self.output_regularizer is not None:
                gZ = gZ + self.output_regularizer.gradient(state.Z)
            g = self._adjoint(gZ, theta, self._full_view, state.net_cache)
            state.grad = self._add_reg_grad(g, self.regularizer, theta)
        return state.grad

    def value_and_gradient(self, theta):
        f, state = self.value(theta)
        return f, self.gradient(theta, state), state

    def _state_at(self, theta, state):
        if state is None:
            return self.value(theta)[1]
        check_state_type(state, VarProState, "VarProObjective")
        if not same_point(state.x, theta):
            raise ValueError("state was computed at another θ; pass the state returned by value(theta)")
        return state

    def _curvature(self, theta, state):
        if state.curvature is not None:
            return state.curvature
        view = self.draw_hessian_sample()
        if view.idx is None:
            Z, cache, ev = state.Z, state.net_cache, state.loss_eval
            ev64 = state.ev64
            solver = state.inner.solver if (self.use_svd or self._krylov) else None
        else:
            Z, cache = self._forward(theta, view)
            if not self._finite(Z):
                return None
            ev = self.loss.evaluate(Z, state.w, view.C, mask=view.mask)
            Z64 = Z if Z.dtype == np.float64 else Z.astype(np.float64)
            C64 = self._C64[self.xp.asarray(view.idx)]
            ev64 = self.loss.evaluate(Z64, state.w64, C64, mask=view.mask)
            solver = _classifier.SVDLeastSquares(self.loss, ev64, self._reg64) if self.use_svd else None
        if solver is None and self._krylov:
            # subsample (or no solver from the inner solve): Lanczos on the subsampled Hessian at w(θ),
            # started from the subsample's gradient ∇_w Φ_S(w(θ)) (nonzero: w(θ) minimizes the full Φ)
            start = ev64.grad_w
            if self._reg64 is not None:
                start = start + self._reg64.gradient(state.w64)
            if not _classifier.norm(start) > 0:
                start = self.xp.ones(self.n_w, dtype=np.float64)
            solver = KrylovLowRankSolver(hessian_operator(self.loss, ev64, self._reg64, state.w64), start,
                                         self.inner_krylov_dim)
        if solver is None:
            solver = _classifier.make_solver(self.loss, ev64, self._reg64, state.w64, self.inner_method,
                                             dense_max=self.inner_dense_max)
        state.curvature = _ReducedCurvature(view=view, Z=Z, net_cache=cache, loss_eval=ev, solver=solver)
        return state.curvature

    def _solve64(self, solver, b):
        out = solver.solve(b if b.dtype == np.float64 else b.astype(np.float64))
        return out if self.dtype == np.float64 else out.astype(self.dtype)

    def implicit_derivative(self, theta, v, state=None):
        """``J_θ w(θ) v = −(∇²_ww Φ + ∇²S)⁻¹ ∇²_wF L · J_θF v`` (one linearized forward pass)."""
        self._check_vec("v", v, self.n)
        state = self._state_at(theta, state)
        cs = self._curvature(theta, state) if state.loss_eval is not None else None
        if cs is None:
            return self._nan(self.n_w)
        dF = self._jmv(v, theta, cs.view, cs.Z, cs.net_cache)
        return -self._solve64(cs.solver, self.loss.hess_wY_mv(dF, cs.loss_eval))

    def hessian_matvec(self, theta, v, state=None, *, kind=None):
        r"""Reduced Hessian product: Gauss-Newton (default) or exact.

        ``kind='gauss_newton'``: ``J_redᵀ H_z J_red v + (J_θw)ᵀ∇²S J_θw v + ∇²R v`` (symmetric positive
        semidefinite).

        ``kind='exact'`` (issue 15): the Hessian of ``Φ_red(θ) = Φ(θ, w(θ))``; with ``∇_wΦ(θ, w(θ)) = 0``,

        .. math:: ∇²Φ_{red} v = ∇²_{θθ}Φ\,v + ∇²_{θw}Φ\,J_θw\,v,\qquad
                  J_θw\,v = −(∇²_{ww}Φ)^{-1} ∇²_{wF}L\,dF,\quad dF = J_θF v,

        where ``∇²_{θθ}Φ v = J_θFᵀ ∇²_{FF}L dF + S(∇_F L; v) + ∇²R v`` carries the network's own curvature
        (its second-order adjoint ``S`` with the loss gradient as cotangent) and every loss block is exact
        (the terms of the bilinear classifier included) — i.e. the Schur complement
        ``∇²_θθΦ − ∇²_θwΦ (∇²_wwΦ)⁻¹ ∇²_wθΦ``, whose second derivative of ``w(θ)`` is accounted for by the
        implicit function theorem.  Included: everything, provided ``w(θ)`` is the exact inner minimizer
        (``inner_tol`` small) and the inner Hessian solves are exact (not for ``inner_solver='krylov'`` with
        ``inner_krylov_dim < n_w``, a low-rank inverse); with ``hessian_fraction < 1`` all terms use the
        subsample at the full problem's ``w(θ)``, which does not make ``∇_wΦ`` of the subsample vanish (an
        approximation of the same kind as the subsampled Gauss-Newton product).  Symmetric, indefinite in
        general; costs two linearized forward passes, two adjoint passes and one inner solve.

        Parameters
        ----------
        theta, v : arrays, shape (n_theta,)
        state : VarProState from :meth:`value` at θ
        kind : {'gauss_newton', 'exact'}, optional
            Default: :attr:`hessian_kind`.

        Returns
        -------
        array, shape (n_theta,)
        """
        kind = self._hessian_kind_of_call(kind)
        self._check_vec("v", v, self.n)
        state = self._state_at(theta, state)
        if state.loss_eval is None:
            return self._nan(self.n)
        cs = self._curvature(theta, state)
        if cs is None:
            return self._nan(self.n)
        loss, ev = self.loss, cs.loss_eval
        dF = self._jmv(v, theta, cs.view, cs.Z, cs.net_cache)
        dw = -self._solve64(cs.solver, loss.hess_wY_mv(dF, ev))  # J_θw v
        if kind == "exact":
            HF, _ = loss.hess_mv(dF, dw, ev, gauss_newton=False)  # ∇²_FF L dF + ∇²_Fw L J_θw v
            gZ = ev.grad_Y
            if self.output_regularizer is not None:
                HF = HF + self.output_regularizer.hess_mv(dF, cs.Z)
                gZ = gZ + self.output_regularizer.gradient(cs.Z)
            Hv = self._second_order_adjoint(gZ, HF, v, theta, cs.view, cs.net_cache)
            return self._add_reg_hess(Hv, self.regularizer, v, theta)
        HF, Hw = loss.hess_mv(dF, dw, ev, gauss_newton=True)  # J_Fᵀ H_z dz, J_wᵀ H_z dz
        if self.classifier_regularizer is not None:
            Hw = Hw + self.classifier_regularizer.hess_mv(dw, state.w)
        s = -self._solve64(cs.solver, Hw)
        HF = HF + loss.hess_Yw_mv(s, ev)  # (J_θw)ᵀ r = J_θFᵀ ∇²_Fw L (−H_ww⁻¹ r)
        if self.output_regularizer is not None:
            HF = HF + self.output_regularizer.hess_mv(dF, cs.Z)
        Hv = self._adjoint(HF, theta, cs.view, cs.net_cache)
        return self._add_reg_hess(Hv, self.regularizer, v, theta)

    def preconditioner(self, theta, state=None):
        """``r ↦ (diag ∇²R + δ)⁻¹ r`` (the regularizer's Hessian, Haber & Ruthotto 2017 §6.4;
        entries it does not reach get the mean diagonal), or ``None`` (the default)."""
        if self.preconditioner_kind is None:
            return None
        return self._diagonal_preconditioner([self._reg_diag(self.regularizer, theta)])

    # ------------------------------------------------------------ classifier and reporting
    def classifier(self, theta):
        """``w(θ)`` in the objective's dtype (the last state's when θ was just evaluated;
        otherwise a forward pass and an inner solve, not counted as work)."""
        self._check_theta(theta)
        st = self._last_state
        if st is not None and same_point(st.x, theta):
            return st.w
        Z, _ = self._forward(theta, self._full_view, count=False)
        if not self._finite(Z):
            return self._nan(self.n_w)
        res = self._solve_inner(Z, self._full_view, self._w_last)
        self._record_inner(res)
        return res.w if self.dtype == np.float64 else res.w.astype(self.dtype)

    def full_x(self, theta):
        """``concat(θ, w(θ))``: a point of the corresponding :class:`NetworkObjective`."""
        return self.xp.concatenate([theta, self.classifier(theta)])

    def metrics(self, theta, Y, C, *, mask=None):
        """Data loss and accuracy of ``(θ, w(θ))`` on any data set; counts no work (see
        :meth:`NetworkObjective.metrics`)."""
        w = self.classifier(theta)
        return self._metrics(theta, w, Y, C, mask)

    def __repr__(self):
        return (f"VarProObjective(n_theta={self.n}, n_w={self.n_w}, n_examples={self.n_examples}, "
                f"loss={self.loss!r}, inner={'svd' if self.use_svd else self._inner_name})")

    @property
    def _inner_name(self):
        if self.inner_solver == "krylov":
            return f"krylov(r={self.inner_krylov_dim})"
        return self.inner_method
