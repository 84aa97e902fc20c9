r"""Few labels: Peters' output regularization with α chosen on held-out labelled pixels.

Peters (2020), "Deep connections between learning from limited labels & physical parameter estimation",
eq. (3.2): train a segmentation network on a few labelled pixels (the selection ``Q``) with

.. math::

    \min_{θ, w} \; \ell(Q\, y_n(θ, w), c) + α R(y_n), \qquad
    R(y_n) = \tfrac12 \|∇_1 y_n\|^2 + \tfrac12 \|∇_2 y_n\|^2 \quad\text{(eq. 4.8, gradient eq. 4.9)}

on the predicted map ``y_n`` (softmax probabilities or logits), and pick α by the mIoU on held-out labelled
pixels (the paper's mIoU-against-α figure).  :func:`alpha_sweep` runs this for one scene: one network
(:func:`meganet.networks.segmentation_network`), one initial point ``x0`` drawn once and shared by every α,
L-BFGS (:func:`meganet.optimizers.minimize_lbfgs`) on
:class:`~meganet.objectives.NetworkObjective` with the per-pixel softmax cross-entropy on the training mask
plus :class:`~meganet.losses.OutputRegularizedLoss`, and scores from
:func:`meganet.metrics.segmentation_scores`.  :func:`sweep_summary` and :func:`sweep_markdown` aggregate
several sweeps (seeds) into the numbers and the table that ``meganet segment`` and
``examples/peters_alpha_sweep.py`` write.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["alpha_sweep", "AlphaSweepResult", "best_alpha", "sweep_summary", "sweep_markdown"]

_FAILED = ("non_finite", "error")


@dataclass
class AlphaSweepResult:
    """What :func:`alpha_sweep` returns.

    Attributes
    ----------
    alphas : list of float
        The α values, ascending (0 first).
    rows : list of dict
        One per α, in the order of ``alphas``: ``alpha``, ``val_miou``, ``val_iou`` (per class, ``None`` for a
        class absent from both the validation labels and the prediction there), ``full_miou``, ``full_iou``,
        ``full_pixel_accuracy`` (``None`` without ground truth), ``boundary_ratio`` (label-boundary length of the
        prediction over that of the ground truth, :func:`meganet.metrics.boundary_length`: above 1 for oscillatory
        maps, near 0 for over-smoothed ones; ``None`` without ground truth), ``train_pixel_accuracy``, ``status``,
        ``message``, ``iterations``, ``seconds``.
    maps : int64 array, shape (n_alphas, H, W)
        The predicted class of every pixel for every α.
    best_alpha : float
        The α with the largest validation mIoU (ties: the smaller α).
    x0 : array, shape (n_theta + n_w,)
        The initial point shared by every α.
    n_classes : int
    status : str
        ``'completed'``, or ``'failed'`` when an α ended with status ``non_finite`` or ``error``.
    message : str
    seconds : float
        Wall time of the whole sweep.
    """

    alphas: list
    rows: list
    maps: np.ndarray
    best_alpha: float
    x0: np.ndarray
    n_classes: int
    status: str = "completed"
    message: str = ""
    seconds: float = 0.0
    config: dict = field(default_factory=dict)

    def row(self, alpha):
        """The row of ``alpha`` (``KeyError`` if it was not run)."""
        for r in self.rows:
            if r["alpha"] == alpha:
                return r
        raise KeyError(f"alpha = {alpha!r} was not run; the sweep has {self.alphas}")

    def map(self, alpha):
        """The predicted map of ``alpha``, shape (H, W)."""
        return self.maps[self.alphas.index(self.row(alpha)["alpha"])]


def best_alpha(rows, key="val_miou"):
    """The α of the row with the largest ``key`` (ties, and NaN/None scores, go to the smaller α)."""
    best, score = None, -math.inf
    for r in sorted(rows, key=lambda r: r["alpha"]):
        v = r.get(key)
        v = -math.inf if v is None or not math.isfinite(v) else v
        if best is None or v > score:
            best, score = r["alpha"], v
    return best


def _plain(v):
    """JSON-ready: floats (NaN → None) and lists."""
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _check_alphas(alphas):
    try:
        vals = [float(a) for a in alphas]
    except (TypeError, ValueError):
        raise ValueError(f"alphas must be a sequence of non-negative finite numbers, got {alphas!r}") from None
    if any(isinstance(a, bool) for a in alphas):
        raise ValueError(f"alphas must be numbers, not booleans, got {alphas!r}")
    bad = [a for a in vals if not (math.isfinite(a) and a >= 0.0)]
    if bad:
        raise ValueError(f"alphas must be non-negative and finite, got {bad}")
    if 0.0 not in vals:
        raise ValueError(f"alphas must contain 0 (the unregularized baseline), got {vals}")
    return sorted(set(vals))


def _check_mask(name, m, shape):
    m = np.asarray(m)
    if m.shape != shape:
        raise ValueError(f"{name} must have the labels' shape {shape}, got {m.shape}")
    if m.dtype != bool:
        raise ValueError(f"{name} must be a boolean array, got dtype {m.dtype}")
    if not m.any():
        raise ValueError(f"{name} is empty: it must select at least one labelled pixel")
    return m


def _check_inputs(X, labels, train_mask, val_mask, n_classes, ground_truth, ignore_label):
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[0] != 1:
        raise ValueError(f"X must be one image of shape (1, C, H, W), got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        raise ValueError(f"X must be float32 or float64, got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (it holds NaN or Inf)")
    shape = (1,) + X.shape[2:]
    labels = np.asarray(labels)
    if labels.shape != shape:
        raise ValueError(f"labels must have shape (1, H, W) = {shape} to match X, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
    train_mask = _check_mask("train_mask", train_mask, shape)
    val_mask = _check_mask("val_mask", val_mask, shape)
    if np.any(train_mask & val_mask):
        raise ValueError(f"train_mask and val_mask must be disjoint; {int(np.sum(train_mask & val_mask))} pixels "
                         "are in both")
    if ground_truth is not None:
        ground_truth = np.asarray(ground_truth)
        if ground_truth.shape != shape:
            raise ValueError(f"ground_truth must have shape {shape}, got {ground_truth.shape}")
        if not np.issubdtype(ground_truth.dtype, np.integer):
            raise ValueError(f"ground_truth must be an integer array, got dtype {ground_truth.dtype}")
    if ignore_label is not None and (isinstance(ignore_label, bool) or not isinstance(ignore_label, (int, np.integer))):
        raise ValueError(f"ignore_label must be an integer or None, got {ignore_label!r}")
    known = labels[train_mask | val_mask]
    if n_classes is None:
        n_classes = max(2, int(known.max()) + 1)
    from ..core.validation import check_int

    n_classes = check_int("n_classes", n_classes, minimum=2)
    if known.min() < 0 or known.max() >= n_classes:
        raise ValueError(f"labels on the training and validation pixels must lie in 0..{n_classes - 1} "
                         f"(n_classes = {n_classes}), got values {int(known.min())}..{int(known.max())}")
    gt_mask = None
    if ground_truth is not None:
        gt_mask = np.ones(shape, bool) if ignore_label is None else ground_truth != ignore_label
        if not gt_mask.any():
            raise ValueError(f"ground_truth holds only the ignore_label {ignore_label}: no pixel to score")
        g = ground_truth[gt_mask]
        if g.min() < 0 or g.max() >= n_classes:
            raise ValueError(f"ground_truth must lie in 0..{n_classes - 1} (n_classes = {n_classes}) outside the "
                             f"ignore_label {ignore_label}, got values {int(g.min())}..{int(g.max())}")
    return X, labels, train_mask, val_mask, n_classes, ground_truth, gt_mask


def alpha_sweep(X, labels, train_mask, val_mask, alphas, *, n_classes=None, ground_truth=None, ignore_label=None,
                width=8, n_layers=6, max_iter=150, on="probabilities", seed=0, log=None):
    r"""Train one network per α from one shared initial point and score the predicted maps (Peters 2020).

    For every α (ascending): minimize, by L-BFGS from the same ``x0``,

    .. math::

        f_α(θ, w) = \frac{1}{|Q|}\sum_{p \in Q} \mathrm{CE}\bigl(\mathrm{softmax}(W y_n(θ)_p + μ), c_p\bigr)
                    + α R(M), \qquad R(M) = \tfrac12\|∇_1 M\|^2 + \tfrac12\|∇_2 M\|^2

    (eq. 3.2 with eq. 4.8; the gradient of ``R`` is eq. 4.9), ``Q`` the training pixels, ``y_n`` the output
    of :func:`~meganet.networks.segmentation_network` (reversible Hamiltonian block at full resolution) and
    ``M`` the per-pixel class probabilities (``on='probabilities'``) or logits.  α = 0 is the plain
    partial-label cross-entropy.  The predicted class map is scored on the validation pixels (mIoU; it picks
    α), on the training pixels (pixel accuracy) and, when ``ground_truth`` is given, on every pixel whose
    ground truth is not ``ignore_label``.

    Parameters
    ----------
    X : float array, shape (1, C, H, W)
        The scene (bands as channels), finite.
    labels : int array, shape (1, H, W)
        Classes ``0..n_classes-1`` on the training and validation pixels (any value elsewhere).
    train_mask, val_mask : bool arrays, shape (1, H, W)
        Labelled training pixels (the loss) and validation pixels (choice of α); disjoint, non-empty.
    alphas : sequence of float
        Non-negative, finite, containing 0; sorted and de-duplicated.
    n_classes : int ≥ 2, optional
        Default: ``1 + max(labels on the masks)`` (at least 2).
    ground_truth : int array, shape (1, H, W), optional
        The full map in the coding of ``labels`` (e.g. the change map of
        :func:`meganet.data.change_detection_scene`); pixels equal to ``ignore_label`` (e.g. Indian Pines'
        unlabelled pixels, coded -1 after shifting the classes 1..16 to 0..15) are left out of the full-map
        scores.
    ignore_label : int, optional
    width, n_layers : int
        Channels (even) and layers of the network.
    max_iter : int ≥ 0
        L-BFGS iterations per α (0: every α keeps ``x0``, so all maps are equal).
    on : {'probabilities', 'logits'}
        The map ``M`` that ``R`` smooths.
    seed : int ≥ 0
        Seed of ``x0`` (``NetworkObjective.init_x(rng=seed)``).
    log : callable, optional
        Called with one line of text per α (e.g. ``print``); nothing is printed otherwise.

    Returns
    -------
    AlphaSweepResult

    Raises
    ------
    ValueError
        Bad shapes, masks that overlap or are empty, α values that are negative, not finite or lack 0, labels
        or ground truth outside ``0..n_classes-1``; the message names the parameter.
    """
    from ..core.validation import check_int, check_option
    from ..losses import OutputRegularizedLoss, SoftmaxCrossEntropy
    from ..metrics import boundary_length, segmentation_scores
    from ..networks import segmentation_network
    from ..objectives import NetworkObjective
    from ..optimizers import minimize_lbfgs

    alphas = _check_alphas(alphas)
    X, labels, train_mask, val_mask, n_classes, ground_truth, gt_mask = _check_inputs(
        X, labels, train_mask, val_mask, n_classes, ground_truth, ignore_label)
    width = check_int("width", width, minimum=2)
    if width % 2:
        raise ValueError(f"width must be even (the Hamiltonian block splits the channels in two), got {width}")
    n_layers = check_int("n_layers", n_layers, minimum=1)
    max_iter = check_int("max_iter", max_iter, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    on = check_option("on", on, ("probabilities", "logits"))
    if log is not None and not callable(log):
        raise ValueError(f"log must be a callable (e.g. print) or None, got {log!r}")

    t_start = time.perf_counter()
    H, W = X.shape[2:]
    net = segmentation_network(X.shape[1], (H, W), width=width, n_layers=n_layers)
    base = SoftmaxCrossEntropy(net.shape_out, n_classes, per_pixel=True)
    C = np.where(train_mask, labels, 0).astype(np.int64)  # unlabelled pixels: any valid class, masked out
    mask = train_mask.astype(X.dtype)
    x0 = None
    rows, maps = [], []
    for a in alphas:
        loss = OutputRegularizedLoss(base, a, on=on) if a > 0 else base
        obj = NetworkObjective(net, loss, X, C, mask=mask)
        if x0 is None:
            x0 = obj.init_x(rng=seed)
        t0 = time.perf_counter()
        res = minimize_lbfgs(obj, x0.copy(), max_iter=max_iter)
        theta, w = obj.split(res.x)
        pred = np.asarray(base.predict(net(theta, X), w)).astype(np.int64)
        val = segmentation_scores(labels, pred, n_classes, mask=val_mask)
        train = segmentation_scores(labels, pred, n_classes, mask=train_mask)
        full = segmentation_scores(ground_truth, pred, n_classes, mask=gt_mask) if ground_truth is not None else None
        if ground_truth is not None:  # the oscillatory artifacts of Peters §4, as a number: B(prediction) / B(truth)
            b_true = float(boundary_length(ground_truth, mask=gt_mask).sum())
            b_ratio = float(boundary_length(pred, mask=gt_mask).sum()) / b_true if b_true > 0 else None
        else:
            b_ratio = None
        status = getattr(res.status, "value", str(res.status))
        rows.append(dict(alpha=a, val_miou=_plain(val.miou), val_iou=_plain(val.iou),
                         full_miou=None if full is None else _plain(full.miou),
                         full_iou=None if full is None else _plain(full.iou),
                         full_pixel_accuracy=None if full is None else _plain(full.pixel_accuracy),
                         boundary_ratio=b_ratio, train_pixel_accuracy=_plain(train.pixel_accuracy), status=status,
                         message=str(res.message), iterations=int(res.nit), seconds=time.perf_counter() - t0))
        maps.append(pred[0])
        if log is not None:
            r = rows[-1]
            whole = "" if full is None else f", whole map {r['full_miou']:.3f}"
            log(f"seed {seed} α = {a:g}: mIoU validation {r['val_miou']:.3f}{whole} "
                f"({status}, {r['iterations']} iterations, {r['seconds']:.1f} s)")
    failed = [r for r in rows if r["status"] in _FAILED]
    status = "failed" if failed else "completed"
    message = ("; ".join(f"α = {r['alpha']:g}: {r['status']}: {r['message']}" for r in failed) if failed
               else f"{len(alphas)} values of α trained from one initial point")
    return AlphaSweepResult(alphas=alphas, rows=rows, maps=np.stack(maps), best_alpha=best_alpha(rows), x0=x0,
                            n_classes=n_classes, status=status, message=message,
                            seconds=time.perf_counter() - t_start,
                            config=dict(width=width, n_layers=n_layers, max_iter=max_iter, on=on, seed=seed,
                                        n_train=int(train_mask.sum()), n_val=int(val_mask.sum())))


def sweep_summary(rows):
    """Aggregate the rows of several sweeps (each row with a ``seed`` key) per α and per seed.

    Returns
    -------
    dict
        ``per_alpha``: one entry per α with ``mean``/``min``/``max`` over the seeds of ``val_miou`` and
        ``full_miou`` (``None`` where there is no ground truth) and the mean ``train_pixel_accuracy``;
        ``per_seed``: ``seed``, ``best_alpha`` (by validation mIoU, ties to the smaller α) and the scores at
        α = 0, at the best α and at the largest α; ``best_alpha_of_mean``: the α with the best mean validation
        mIoU.
    """
    alphas = sorted({r["alpha"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})

    def stats(vals):
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        return dict(mean=float(np.mean(vals)), min=float(np.min(vals)), max=float(np.max(vals)), n=len(vals))

    per_alpha = []
    for a in alphas:
        rs = [r for r in rows if r["alpha"] == a]
        per_alpha.append(dict(alpha=a, val_miou=stats([r["val_miou"] for r in rs]),
                              full_miou=stats([r.get("full_miou") for r in rs]),
                              boundary_ratio=stats([r.get("boundary_ratio") for r in rs]),
                              train_pixel_accuracy=stats([r["train_pixel_accuracy"] for r in rs])))
    per_seed = []
    for s in seeds:
        rs = {r["alpha"]: r for r in rows if r["seed"] == s}
        b = best_alpha(list(rs.values()))
        top = max(rs)
        per_seed.append(dict(seed=s, best_alpha=b, val_miou_alpha0=rs[0.0]["val_miou"] if 0.0 in rs else None,
                             val_miou_best=rs[b]["val_miou"], full_miou_alpha0=rs.get(0.0, {}).get("full_miou"),
                             full_miou_best=rs[b].get("full_miou"), largest_alpha=top,
                             full_miou_largest=rs[top].get("full_miou"), val_miou_largest=rs[top]["val_miou"]))
    mean_rows = [dict(alpha=p["alpha"], val_miou=p["val_miou"]["mean"] if p["val_miou"] else None) for p in per_alpha]
    return dict(alphas=alphas, seeds=seeds, per_alpha=per_alpha, per_seed=per_seed,
                best_alpha_of_mean=best_alpha(mean_rows))


def _f(v):
    return "n/a" if v is None else f"{v:.3f}"


def sweep_markdown(rows, *, title, intro=()):
    """The markdown table of several sweeps: per seed (α = 0, the best α by validation mIoU, the largest α)
    and per α (means over the seeds).  ``intro``: paragraphs printed under the title."""
    s = sweep_summary(rows)
    top = s["alphas"][-1]
    lines = [f"# {title}", ""]
    for p in intro:
        lines += [p, ""]
    lines += ["| seed | mIoU (val) α = 0 | best α (by val mIoU) | mIoU (val) at best α | whole-map mIoU α = 0 | "
              f"whole-map mIoU at best α | whole-map mIoU α = {top:g} |", "|---|---|---|---|---|---|---|"]
    for p in s["per_seed"]:
        lines.append(f"| {p['seed']} | {_f(p['val_miou_alpha0'])} | {p['best_alpha']:g} | {_f(p['val_miou_best'])} | "
                     f"{_f(p['full_miou_alpha0'])} | {_f(p['full_miou_best'])} | {_f(p['full_miou_largest'])} |")
    n = len(s["seeds"])
    lines += ["", f"Every α (mean over {n} seed{'s' if n > 1 else ''}; min–max in brackets):", "",
              "| α | mIoU (val) | whole-map mIoU | boundary length / true | train pixel accuracy |",
              "|---|---|---|---|---|"]

    def rng(st):
        return "n/a" if st is None else f"{st['mean']:.3f} [{st['min']:.3f}–{st['max']:.3f}]"

    for p in s["per_alpha"]:
        tpa = p["train_pixel_accuracy"]
        lines.append(f"| {p['alpha']:g} | {rng(p['val_miou'])} | {rng(p['full_miou'])} | "
                     f"{rng(p.get('boundary_ratio'))} | {_f(tpa['mean'] if tpa else None)} |")
    return "\n".join(lines) + "\n"
