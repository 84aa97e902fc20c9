r"""Alternating training of constrained CNNs from image-level tags (Pathak, Krähenbühl &
Darrell 2015, "Constrained convolutional neural networks for weakly supervised segmentation",
as presented by Rabinovich 2020): the P-step projects the network's per-pixel distributions
onto the constraints the tags imply, the θ-step fits the network to the projected
distributions, and the two repeat.

Per image ``I`` with ``n`` pixels, network distributions ``Q_I`` (per-pixel softmax of the
logits, shape ``(n, L)``) and constraints ``A_I p̄ ≥ b_I`` on the label fractions
``p̄ = (1/n) Σ_i P_i`` (:mod:`meganet.weak.constraints`):

**P-step** (Rabinovich eq. 1–2; with slack eq. 4–5)::

    P_I = argmin_P KL(P‖Q_I)   s.t.  A_I p̄ ≥ b_I              (:func:`~meganet.weak.kl_projection`)

**θ-step** (the latent distribution fixed, a cross-entropy with soft targets)::

    min_{θ, w}  −(1/(N n)) Σ_I Σ_i Σ_l P_{I,i}(l) log softmax(W Y_N(θ, X_I)_i + μ)_l  (+ regularizers)

which is :class:`~meganet.objectives.NetworkObjective` with
:class:`~meganet.losses.SoftmaxCrossEntropy` (``per_pixel=True``) and the targets ``P`` —
any of :mod:`meganet.optimizers` solves it.  Up to the entropy of ``P`` (a constant of the
θ-step) this is ``mean_I KL(P_I‖Q_I(θ))``: the two steps are block-coordinate descent on
``KL(P‖Q(θ))`` over ``P`` in the constraint set and ``θ``.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field

import numpy as np

from ..backend import get_array_module, to_backend
from ..core.validation import check_bool, check_int
from ..objectives.network_objective import NetworkObjective
from ..optimizers import Status
from ..optimizers.result import History
from .constraints import LinearConstraints, background, foreground, stack, suppression
from .kl_projection import kl_projection

__all__ = ["tag_constraints", "p_step", "PStepResult", "train_constrained", "ConstrainedTrainingResult",
           "kl_divergence"]


def tag_constraints(tags, *, foreground_fraction=None, background_bounds=None, background_label=0,
                    suppress=True):
    r"""The constraints of Pathak et al. (Rabinovich 2020, §"constraints") for every image, from its tags.

    Parameters
    ----------
    tags : bool array, shape (n_images, n_labels)
        ``tags[I, l]``: label ``l`` is present in image ``I``.
    foreground_fraction : None, float or array (n_labels,)
        Lower bound ``a_l`` on the fraction of pixels of each present non-background label (eq. 6,
        divided by the number of pixels); ``None``: no foreground constraints.
    background_bounds : None or (float, float)
        ``lower ≤ p̄(background) ≤ upper``; ``None``: none.
    background_label : int
        The label that is never suppressed and has no foreground constraint (default 0).
    suppress : bool
        Suppression constraints ``p̄(l) ≤ 0`` for the labels not in the tags (default True).

    Returns
    -------
    list of LinearConstraints
        One ``(A, b)`` per image; images with no constraint row get an empty ``(0, n_labels)`` pair,
        on which the P-step returns ``Q`` unchanged.
    """
    tags = np.asarray(tags)
    if tags.ndim != 2 or tags.dtype != bool or tags.shape[0] < 1 or tags.shape[1] < 2:
        raise ValueError(f"tags must be a bool array of shape (n_images, n_labels ≥ 2), got dtype {tags.dtype} and "
                         f"shape {tags.shape}")
    n, L = tags.shape
    background_label = check_int("background_label", background_label, minimum=0)
    if background_label >= L:
        raise ValueError(f"background_label must be < n_labels = {L}, got {background_label}")
    suppress = check_bool("suppress", suppress)
    if foreground_fraction is not None:
        a = np.asarray(foreground_fraction, dtype=np.float64)
        a = np.full(L, float(a)) if a.ndim == 0 else a
        if a.shape != (L,) or not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
            raise ValueError(f"foreground_fraction must be a number or {L} numbers in [0, 1], got "
                             f"{foreground_fraction!r}")
    if background_bounds is not None:
        try:
            lo, hi = (float(v) for v in background_bounds)
        except (TypeError, ValueError):
            raise ValueError(f"background_bounds must be None or a pair (lower, upper), got {background_bounds!r}") \
                from None
    out = []
    for I in range(n):
        present = [int(l) for l in np.flatnonzero(tags[I])]
        parts = []
        if suppress:
            s = suppression(sorted(set(present) | {background_label}), L)
            if s.A.shape[0]:
                parts.append(s)
        fg = [l for l in present if l != background_label]
        if foreground_fraction is not None and fg:
            parts.append(foreground(fg, [float(a[l]) for l in fg], L))
        if background_bounds is not None:
            parts.append(background(background_label, lo, hi, L))
        out.append(stack(*parts) if parts else LinearConstraints(np.zeros((0, L)), np.zeros(0)))
    return out


def kl_divergence(P, Q, *, axis=1):
    r"""``KL(P‖Q) = Σ_l P(l) log(P(l)/Q(l))`` along ``axis`` (terms with ``P(l) = 0`` are 0), elementwise over
    the other axes.  ``Q`` must be positive where ``P`` is."""
    xp = get_array_module(P, Q)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = xp.where(P > 0, P * (xp.log(xp.where(P > 0, P, 1.0)) - xp.log(xp.where(P > 0, Q, 1.0))), 0.0)
    return t.sum(axis=axis)


@dataclass
class PStepResult:
    """Result of :func:`p_step`.

    Attributes
    ----------
    P : array (n_images, n_labels, H, W)
        Projected distributions (float64, host), rows summing to 1 over the label axis.
    kl : array (n_images,)
        ``KL(P_I‖Q_I)`` per image, **averaged over its pixels**.
    violation_Q, violation_P : array (n_images,)
        ``max(0, max_k (b − A q̄)_k)`` for the network's ``Q`` and for ``P`` (≈ 0 without slack).
    results : list of KLProjectionResult
    """

    P: np.ndarray
    kl: np.ndarray
    violation_Q: np.ndarray
    violation_P: np.ndarray
    results: list = field(repr=False, default_factory=list)


def _log_softmax(Z, axis):
    m = Z.max(axis=axis, keepdims=True)
    return Z - m - np.log(np.exp(Z - m).sum(axis=axis, keepdims=True))


def p_step(logits, constraints, *, beta=None, **options):
    r"""The P-step on a batch of images: ``P_I = argmin KL(P‖Q_I)`` s.t. ``A_I p̄ ≥ b_I`` (with slack ``β``).

    Parameters
    ----------
    logits : array (n_images, n_labels, H, W)
        Network logits; ``Q_I = softmax`` over the label axis (computed as log-probabilities in float64 on the
        host: the P-step is a small problem per image).
    constraints : sequence of (A, b)
        One pair per image (e.g. :func:`tag_constraints`).
    beta : None, float or array
        Slack weights (eq. 4), passed to :func:`kl_projection`.
    **options
        ``gtol``, ``max_iter`` of :func:`kl_projection`.

    Returns
    -------
    PStepResult
    """
    Z = np.asarray(to_backend(logits, np), dtype=np.float64)
    if Z.ndim < 3:
        raise ValueError(f"logits must have shape (n_images, n_labels, *spatial), got {Z.shape}")
    n, L = Z.shape[:2]
    if not np.isfinite(Z).all():
        raise ValueError("logits must be finite (the network output holds NaN/Inf)")
    if len(constraints) != n:
        raise ValueError(f"constraints must hold one (A, b) pair per image ({n}), got {len(constraints)}")
    logQ = _log_softmax(Z, axis=1).reshape(n, L, -1).transpose(0, 2, 1)   # (n, pixels, L)
    P = np.empty_like(logQ)
    kl, vq, vp, results = np.zeros(n), np.zeros(n), np.zeros(n), []
    for I, (A, b) in enumerate(constraints):
        A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if A.ndim != 2 or A.shape[1] != L:
            raise ValueError(f"constraints[{I}]: A must have shape (m, n_labels={L}), got {A.shape}")
        Qbar = np.exp(logQ[I]).mean(axis=0)
        if A.shape[0] == 0:
            P[I] = np.exp(logQ[I])
            results.append(None)
            continue
        vq[I] = max(0.0, float((b - A @ Qbar).max()))
        r = kl_projection(logQ[I], A, b, beta=beta, log=True, **options)
        P[I], vp[I], kl[I] = r.P, r.violation, r.kl / logQ.shape[1]
        results.append(r)
    P = P.transpose(0, 2, 1).reshape(Z.shape)
    return PStepResult(P=P, kl=kl, violation_Q=vq, violation_P=vp, results=results)


@dataclass
class ConstrainedTrainingResult:
    """Result of :func:`train_constrained`.

    Attributes
    ----------
    x : array (n,)
        ``(θ, w)`` after the last θ-step (the last finite one if ``status == "non_finite"``).
    status : Status
        ``completed`` (all outer iterations), ``non_finite`` (a θ-step or the network output went
        NaN/Inf: ``x`` is the iterate before it), ``callback_stop``.
    message : str
    history : History
        One row per outer iteration: ``outer``, ``kl`` (mean over images of the per-pixel
        ``KL(P‖Q)`` of the P-step), ``violation_Q`` / ``violation_P`` (largest constraint violation of
        the network's distributions before the P-step and of ``P``), ``loss`` (cross-entropy against ``P``
        after the θ-step), ``theta_status``, ``work_units`` (cumulative network passes), ``seconds``.
    P : array (n_images, n_labels, H, W)
        The last latent distributions.
    theta_results : list of OptimizeResult
    wall_time : float
    """

    x: object
    status: Status
    message: str
    history: History
    P: np.ndarray
    theta_results: list = field(repr=False, default_factory=list)
    wall_time: float = 0.0

    @property
    def success(self) -> bool:
        return self.status == Status.COMPLETED


_MESSAGES = {
    Status.COMPLETED: "completed the requested outer iterations (P-step, θ-step).",
    Status.NON_FINITE: ("a θ-step or the network output produced NaN/Inf; x is the last finite iterate. Lower the "
                        "θ-step's learning rate or add regularization."),
    Status.CALLBACK_STOP: "the callback asked to stop.",
}


def train_constrained(net, loss, X, constraints, x0, *, outer_iter=10, beta=None, theta_solver="adam",
                      theta_solver_options=None, objective_options=None, projection_options=None, callback=None,
                      verbose=False):
    r"""Train a segmentation network from weak labels by alternating the P-step and the θ-step
    (Pathak et al. 2015; Rabinovich 2020) — see the module docstring.

    Parameters
    ----------
    net : network
        Maps ``(N, C, H, W)`` to ``(N, channels, H, W)``.
    loss : SoftmaxCrossEntropy
        With ``per_pixel=True`` and ``n_classes = n_labels``.
    X : array (N, C, H, W)
        The images.
    constraints : sequence of (A, b)
        One constraint set per image (:func:`tag_constraints`).
    x0 : array (n,)
        Initial ``(θ, w)`` (e.g. ``NetworkObjective.init_x``, or a network pretrained otherwise).
    outer_iter : int
        P-step / θ-step pairs.
    beta : None, float or array
        Slack weights of the P-step (eq. 4); ``None``: hard constraints.
    theta_solver : str or callable
        Solver of the θ-step (names of :data:`meganet.training._common.SOLVERS`); default ``'adam'``.
    theta_solver_options : dict, optional
        Its options (e.g. ``{'n_epochs': 2, 'learning_rate': 1e-2}``; for the stochastic solvers ``rng`` is
        set to the outer iteration unless given).
    objective_options : dict, optional
        Keyword options of :class:`~meganet.objectives.NetworkObjective` (``regularizer``, ``batch_size``, …).
    projection_options : dict, optional
        ``gtol``, ``max_iter`` of :func:`kl_projection`.
    callback : callable ``(x, row)``, optional
        After every outer iteration; raise ``StopIteration`` to stop.
    verbose : bool
        Print one row per outer iteration.

    Returns
    -------
    ConstrainedTrainingResult
    """
    from ..training._common import check_options, resolve_solver

    outer_iter = check_int("outer_iter", outer_iter, minimum=1)
    verbose = check_bool("verbose", verbose)
    solver = resolve_solver("theta_solver", theta_solver)
    t_opts = check_options("theta_solver_options", theta_solver_options)
    o_opts = check_options("objective_options", objective_options)
    p_opts = check_options("projection_options", projection_options)
    unknown = set(p_opts) - {"gtol", "max_iter"}
    if unknown:
        raise ValueError(f"projection_options accepts 'gtol' and 'max_iter', got {sorted(unknown)}")
    if getattr(loss, "per_pixel", False) is not True or not hasattr(loss, "probabilities"):
        raise TypeError("loss must be a per-pixel SoftmaxCrossEntropy (per_pixel=True)")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (x, row) or None, got {type(callback).__name__}")
    xp = get_array_module(X)
    N = X.shape[0]
    if len(constraints) != N:
        raise ValueError(f"constraints must hold one (A, b) pair per image ({N}), got {len(constraints)}")
    if beta is not None and isinstance(beta, numbers.Real) and not isinstance(beta, bool) and not beta >= 0:
        raise ValueError(f"beta must be None or nonnegative, got {beta!r}")
    # the objective's labels are replaced every outer iteration; build it once for its layout and checks
    dummy = np.zeros((N, *loss.spatial), dtype=np.int64)
    obj = NetworkObjective(net, loss, X, to_backend(dummy, xp), **o_opts)
    obj._check_vec("x0", x0, obj.n)
    x = x0
    history, theta_results = History(), []
    status, work, t_start = Status.COMPLETED, 0.0, time.perf_counter()
    P = None
    if verbose:
        print(f"{'outer':>5} {'KL(P|Q)':>11} {'viol(Q)':>9} {'viol(P)':>9} {'loss':>11} {'θ-status':>14} "
              f"{'work':>8}")
    for k in range(1, outer_iter + 1):
        theta, w = obj.split(x)
        logits = loss.logits(net(theta, X), w)
        work += 1.0
        if not bool(xp.isfinite(logits).all()):
            status = Status.NON_FINITE
            break
        ps = p_step(logits, constraints, beta=beta, **p_opts)
        P = ps.P
        target = to_backend(P.astype(obj.dtype), xp)
        sub = NetworkObjective(net, loss, X, target, **o_opts)
        opts = dict(t_opts)
        if solver.__name__ in ("minimize_adam", "minimize_sgd"):
            opts.setdefault("rng", k)
        res = solver(sub, x, **opts)
        theta_results.append(res)
        work += float(res.work_units)
        row = dict(outer=k, kl=float(ps.kl.mean()), violation_Q=float(ps.violation_Q.max()),
                   violation_P=float(ps.violation_P.max()), loss=float(res.fun), theta_status=str(res.status),
                   work_units=work, seconds=time.perf_counter() - t_start)
        if res.status == Status.NON_FINITE or not bool(xp.isfinite(res.x).all()):
            status = Status.NON_FINITE
            history.append(row)
            break
        x = res.x
        history.append(row)
        if verbose:
            print(f"{k:5d} {row['kl']:11.4e} {row['violation_Q']:9.2e} {row['violation_P']:9.2e} "
                  f"{row['loss']:11.4e} {row['theta_status']:>14} {work:8.4g}", flush=True)
        if callback is not None:
            try:
                callback(x, row)
            except StopIteration:
                status = Status.CALLBACK_STOP
                break
    return ConstrainedTrainingResult(x=x, status=status, message=_MESSAGES[status], history=history,
                                     P=P if P is not None else np.zeros(0), theta_results=theta_results,
                                     wall_time=time.perf_counter() - t_start)

