"""Command line: ``meganet train [options]`` (also ``python -m meganet train``) and ``meganet segment [options]``.

With no options it trains the setting of Haber & Ruthotto 2017 §6.3 (peaks,
5 classes, tanh, ``T = 5``): the 2-D input lifted to width 16 by a tanh layer,
an antisymmetric ResNet trained multilevel in depth (8 → 16 → 32 steps, each
level warm-started from the prolongated weights of the previous one,
:func:`meganet.training.train_multilevel`) by Gauss-Newton-CG (100
iterations per level, the Gauss-Newton products on a random quarter of the
examples), prints the solvers' iteration tables and writes a report folder
(see :mod:`meganet.report`) under ``./runs/``.  Time and accuracy: see the
README ("The main job"), which states the measured numbers and the machine.

``--data cdr`` / ``--data dcr`` train the PDE surrogates of the GNvpro paper
(Newman, Ruthotto, Hart & van Bloemen Waanders 2020; data from
:func:`meganet.data.cdr` / :func:`meganet.data.dcr`) in its setting: the
antisymmetric RK4 network (``antisym_rk4``), T = 1, 2 → 4 → 8 steps,
α₁ = α₂ = 1e-10, least squares with the classifier eliminated and
:func:`meganet.optimizers.minimize_gnvpro`, 200 (CDR) / 400 (DCR) work units
per level; the report adds the per-sample relative errors (mean, std, min,
max on the training, validation and test sets) and ``predicted_vs_true.png``.

What may happen to files (the README's "What happens to your files"):
``--out`` must not exist, or be a meganet report folder replaced with
``--overwrite`` (anything else is refused before training); the default
folder name is unique per process; the report is written atomically; if it
cannot be written where asked, it goes to a sibling ``--out``-1 or to
``$MEGANET_FALLBACK_DIR`` (default ``<temp dir>/meganet-runs``), named on
stderr.  Ctrl-C, SIGTERM and SIGHUP stop the training and write the report of
everything done so far; signals arriving while it is written are held until
it is complete.

Exit status: 0 success; 1 the run failed (NaN/Inf, or an exception inside the
training — the report of the last good iterate is still written, with the
status and message in ``summary.json``); 2 bad options (nothing was run);
3 trained, but the report is in the fallback location named on stderr;
``128 + signal`` when stopped by a signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP;
the report is written).

Use it from Python as ``meganet.cli.main(["train", "--data", "swiss_roll"])``
(returns the exit status) or through :func:`train` with a :class:`TrainConfig`.

``meganet segment [options]`` runs the few-label experiment of Peters (2020,
eq. 3.2 with the output smoother of eq. 4.8–4.9): for every seed, one
reversible segmentation network trained by L-BFGS for every α of a grid from
one shared initial point (:func:`meganet.training.alpha_sweep`), α chosen by the
mIoU on held-out labelled pixels, on the synthetic change-detection scene
(default) or on the user-supplied Indian Pines image (``--data indian-pines``,
files in ``<data folder>/indian-pines``).  Its report folder (``summary.json``
of format ``meganet-segment``, ``alpha_sweep.jsonl``, ``alpha_sweep.md``,
``miou_vs_alpha.png``, ``maps.png``) follows the same rules: written
atomically, replaced with ``--overwrite`` only if it is a segment report
(:func:`segment_replace_refusal`), fallback location and exit status 3 when it
cannot be written, exit statuses 0/1/2/3/128+signal as above (the report holds
the seeds completed).  From Python: :func:`segment` with a :class:`SegmentConfig`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import math
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ._folders import SEGMENT_FILES, SEGMENT_FORMAT

__all__ = ["main", "build_parser", "TrainConfig", "TrainOutcome", "train", "network_regularizer", "DATASETS", "SOLVERS",
           "DEFAULTS", "SegmentConfig", "SegmentOutcome", "segment", "indian_pines_scene", "segment_replace_refusal",
           "SEGMENT_FORMAT", "SEGMENT_FILES"]

DATASETS = ("peaks", "swiss_roll", "ellipses", "cdr", "dcr")
#: Least-squares (PDE-surrogate) problems; the others are classification problems.
REGRESSION = ("cdr", "dcr")
SOLVERS = ("gn", "trn", "gnvpro", "vpro_gncg", "lbfgs", "lbfgs_vpro", "sgd", "adam", "steihaug")
#: Solvers of the reduced (variable projection) objective: θ only, the classifier eliminated.
VARPRO_SOLVERS = ("gnvpro", "vpro_gncg", "lbfgs_vpro")
_SOLVER_NAMES = {  # the Hessian products of the objectives are Gauss-Newton products
    "gn": "Gauss-Newton-{cg} (Armijo line search)",
    "trn": "trust-region Gauss-Newton-Krylov (Lanczos)",
    "steihaug": "trust-region Gauss-Newton with Steihaug-{cg}",
    "gnvpro": "GNvpro: Gauss-Newton-Krylov trust region (Lanczos) on the reduced objective",
    "vpro_gncg": "Gauss-Newton-{cg} (Armijo line search) on the reduced (variable projection) objective",
    "lbfgs": "L-BFGS (Wolfe line search)",
    "lbfgs_vpro": "L-BFGS (Wolfe line search) on the reduced (variable projection) objective",
    "sgd": "SGD with momentum",
    "adam": "Adam",
}


def solver_label(cfg):
    """The name of the method ``cfg`` runs (printed in the solvers' tables and saved in the summary)."""
    return _SOLVER_NAMES[cfg.solver].format(cg="PCG" if cfg.precond else "CG")

#: Statuses after which the run counts as failed (non-zero exit).
FAILED_STATUSES = ("non_finite", "error")


@dataclass
class TrainConfig:
    """Everything a training run depends on (the command-line options).

    ``None`` entries take the per-data-set defaults of :data:`DEFAULTS`.
    """

    data: str = "peaks"
    network: str | None = None
    solver: str | None = None
    steps: int | None = None
    levels: int | None = None
    final_time: float | None = None
    width: int | None = None
    opening: str | None = None
    gamma: float | None = None
    alpha: float | None = None
    alpha_w: float | None = None
    weight_decay: float | None = None
    precond: bool | None = None
    hessian_fraction: float | None = None
    n_train: int | None = None
    max_iter: int | None = None
    cg_iter: int | None = None
    max_work_units: float | None = None
    lr: float | None = None
    batch_size: int | None = None
    seed: int = 0
    dtype: str = "float64"
    out: str | None = None
    overwrite: bool = False
    plots: bool = True
    quiet: bool = False

    def resolved(self, *, validate=True):
        """A copy with every ``None`` replaced by its default for ``data``/``solver``,
        validated (``ValueError`` naming the option and the value)."""
        from .core.validation import check_option

        check_option("data", self.data, DATASETS)
        d = dict(DEFAULTS["common"])
        d.update(DEFAULTS[self.data])
        d.update(DEFAULTS["solver"].get(self.solver if self.solver is not None else d["solver"], {}))
        values = asdict(self)
        for k, v in values.items():
            if v is None and k in d:
                values[k] = d[k]
        out = TrainConfig(**values)
        return out._validated() if validate else out

    def _validated(self):
        from .core.validation import check_bool, check_int, check_option, check_positive

        check_option("data", self.data, DATASETS)
        from .report import NETWORKS

        check_option("network", self.network, NETWORKS)
        check_option("solver", self.solver, SOLVERS)
        check_option("opening", self.opening, ("dense", "pad"))
        check_option("dtype", self.dtype, ("float64", "float32"))
        for name in ("steps", "levels", "width", "n_train", "cg_iter", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("max_iter", self.max_iter, minimum=0)
        check_int("seed", self.seed, minimum=0)
        check_positive("final_time", self.final_time)
        for name in ("gamma", "alpha", "alpha_w", "weight_decay"):
            check_positive(name, getattr(self, name), allow_zero=True)
        if not (isinstance(self.max_work_units, (int, float)) and not isinstance(self.max_work_units, bool)
                and self.max_work_units > 0):
            raise ValueError(f"max_work_units must be a positive number (math.inf: no budget), "
                             f"got {self.max_work_units!r}")
        if not 0.0 < self.hessian_fraction <= 1.0:
            raise ValueError(f"hessian_fraction must lie in (0, 1], got {self.hessian_fraction!r}")
        if self.steps % 2 ** (self.levels - 1):
            raise ValueError(f"steps = {self.steps} must be divisible by 2^(levels-1) = {2 ** (self.levels - 1)} "
                             f"for levels = {self.levels} (each level doubles the number of steps)")
        if self.n_train < MIN_TRAIN[self.data]:
            raise ValueError(f"n_train = {self.n_train} is too small for {self.data}: need >= {MIN_TRAIN[self.data]} "
                             f"(the validation set is {_VAL_SIZE[self.data]} and must not be empty)")
        for name in ("overwrite", "plots", "quiet"):
            check_bool(name, getattr(self, name))
        if self.out is not None and (not isinstance(self.out, (str, os.PathLike)) or not os.fspath(self.out).strip()):
            raise ValueError(f"out must name a folder (a non-empty path), got {self.out!r}")
        return self


#: Smallest training set per data set (the validation set must not be empty).
MIN_TRAIN = {"peaks": 4, "swiss_roll": 2, "ellipses": 4, "cdr": 4, "dcr": 8}
_VAL_SIZE = {"peaks": "n_train // 4", "swiss_roll": "n_train", "ellipses": "n_train // 4", "cdr": "n_train // 2",
             "dcr": "n_train // 8"}

#: The GNvpro setting of the PDE-surrogate problems (Meganet.m ``examples/GNvpro/EVP_CDR_GNvpro.m`` and
#: ``EVP_DCR_GNvpro.m``): dense opening + antisymmetric RK4 ResNet, T = 1, 2 → 4 → 8 steps, γ = 1e-4,
#: α1 = α2 = 1e-10, no smoothness term, the exact Gauss-Newton matrix, 200 (CDR) / 400 (DCR) work units per level.
_SURROGATE = dict(network="antisym_rk4", solver="gnvpro", steps=8, levels=3, final_time=1.0, gamma=1e-4, alpha=0.0,
                  weight_decay=1e-10, alpha_w=1e-10, hessian_fraction=1.0, max_iter=1000)

#: Defaults: common, per data set, per solver (classification: tuned on the peaks problem, seeds 0-2).
DEFAULTS = {
    "common": dict(network="antisym", solver="gn", width=16, opening="dense", gamma=0.0, alpha=1e-3,
                   weight_decay=1e-4, alpha_w=1e-3, cg_iter=20, precond=False, hessian_fraction=0.25, batch_size=64,
                   lr=None, steps=32, levels=3, final_time=5.0, max_iter=50, max_work_units=math.inf),
    "peaks": dict(n_train=5000, max_iter=100),
    "swiss_roll": dict(n_train=512),
    "ellipses": dict(n_train=2000),
    "cdr": dict(_SURROGATE, width=8, n_train=400, max_work_units=200.0),
    "dcr": dict(_SURROGATE, width=16, n_train=8000, max_work_units=400.0),
    "solver": {
        "sgd": dict(lr=0.05),
        "adam": dict(lr=0.01),
    },
}


@dataclass
class TrainOutcome:
    """What :func:`train` returns."""

    path: str | None
    summary: dict
    exit_code: int
    theta: object = None
    w: object = None
    history: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- argument parsing
def _number(kind, *, minimum, open_min=False, maximum=None, what):
    """An argparse ``type``: ``kind`` (int or float) in ``[minimum, maximum]`` (``(minimum, ...`` if
    ``open_min``), finite; the error says ``expected <what>, got '<text>'``."""

    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        ok = math.isfinite(v) and (v > minimum if open_min else v >= minimum) and (maximum is None or v <= maximum)
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    parse.__name__ = what  # argparse names the type in some messages
    return parse


_positive_int = _number(int, minimum=1, what="a positive integer")
_nonneg_int = _number(int, minimum=0, what="a non-negative integer")
_positive_float = _number(float, minimum=0.0, open_min=True, what="a positive finite number")
_nonneg_float = _number(float, minimum=0.0, what="a non-negative finite number")
_fraction = _number(float, minimum=0.0, open_min=True, maximum=1.0, what="a number in (0, 1]")


def _folder(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder name, got an empty string")
    return text


def build_parser():
    """The ``argparse`` parser of the ``meganet`` command."""
    parser = argparse.ArgumentParser(
        prog="meganet",
        description="Deep neural networks as discretized ODEs, trained as PDE-constrained optimization.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    tr = sub.add_parser(
        "train", help="train a stable network on a 2-D or PDE-surrogate problem and write a report folder",
        description=("Train a network on a 2-D classification problem (Haber & Ruthotto 2017, §6) or a PDE-surrogate "
                     "regression problem (GNvpro, Newman et al. 2020) and write a report folder: parameters "
                     "(params.npz + model.json, load with meganet.report.load_run), history (CSV, JSON), "
                     "decision-region or predicted-vs-true and convergence plots, summary.json. Defaults: peaks, "
                     "antisymmetric ResNet, width 16, T = 5, multilevel 8 -> 16 -> 32 steps, Gauss-Newton-CG; "
                     "cdr/dcr: the GNvpro setting (antisymmetric RK4 ResNet, T = 1, 2 -> 4 -> 8 steps, GNvpro, "
                     "200/400 work units per level)."))
    tr.set_defaults(_parser=tr)
    g = tr.add_argument_group("problem")
    g.add_argument("--data", choices=DATASETS, default="peaks",
                   help="data set: peaks (5 classes, §6.3; default), swiss_roll (2 spirals), ellipses "
                        "(concentric rings), cdr (CDR-like surrogate, y in R^55 -> c in R^72), dcr (DCR-like "
                        "surrogate, y in R^3 -> c in R^882); cdr/dcr are generated by meganet's PDE solvers "
                        "once and cached (see meganet.data.cdr)")
    g.add_argument("--n-train", type=_positive_int, default=None, metavar="N",
                   help="number of training examples (validation: as many again for the swiss roll, half for "
                        "cdr (and a test set of the same size), an eighth for dcr (and a test set), a quarter "
                        "for the others); default per data set (peaks 5000, swiss_roll 512, ellipses 2000, "
                        "cdr 400, dcr 8000)")
    g.add_argument("--seed", type=_nonneg_int, default=0,
                   help="seed of the data and of the initial weights (default 0); the cdr/dcr data are the "
                        "same for every seed (generator seed 0), the seed draws the initial weights")
    g = tr.add_argument_group("network")
    g.add_argument("--network", choices=("antisym", "verlet", "resnet", "leapfrog", "antisym_rk4"), default=None,
                   help="time-stepping block: antisymmetric ResNet (eq. 4.12), Hamiltonian Verlet (eq. 4.17), "
                        "plain ResNet, leapfrog (eq. 4.16), antisym_rk4 (RK4 of sigma((K - K^T - gamma I)u + b), "
                        "the GNvpro network); default antisym, antisym_rk4 for cdr/dcr")
    g.add_argument("--width", type=_positive_int, default=None, help="network width (default 16)")
    g.add_argument("--opening", choices=("dense", "pad"), default=None,
                   help="lift the 2-D input to the width by a trainable tanh layer (dense) or by zero padding "
                        "(default dense)")
    g.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                   help="number of time steps (layers) of the finest level (default 32)")
    g.add_argument("--levels", type=_positive_int, default=None, metavar="L",
                   help="multilevel in depth: train with N/2^(L-1), ..., N/2, N steps (default 3; 1 = single level)")
    g.add_argument("--final-time", type=_positive_float, default=None, metavar="T", help="final time T (default 5)")
    g.add_argument("--gamma", type=_nonneg_float, default=None,
                   help="shift gamma of the antisymmetric ResNet, K - K^T - gamma I (default 0)")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="default float64")
    g = tr.add_argument_group("optimization")
    g.add_argument("--solver", choices=SOLVERS, default=None,
                   help="gn: Gauss-Newton-CG (line search); trn: Gauss-Newton-Krylov trust region; steihaug: trust "
                        "region with Steihaug-CG; gnvpro: GNvpro, the Gauss-Newton-Krylov trust region on the "
                        "variable-projection (reduced) objective (Newman et al. 2020); vpro_gncg: Gauss-Newton-CG "
                        "with line search on the reduced objective; lbfgs; lbfgs_vpro: L-BFGS on the reduced "
                        "objective; sgd; adam (default gn, gnvpro for cdr/dcr)")
    g.add_argument("--max-iter", type=_nonneg_int, default=None, metavar="K",
                   help="iterations per level (epochs for sgd/adam); default 100 for peaks, 1000 for cdr/dcr, "
                        "50 otherwise")
    g.add_argument("--max-work-units", type=_positive_float, default=None, metavar="W",
                   help="work-unit budget per level (forward + adjoint passes over the training set; SGD/Adam "
                        "spend 2 per epoch); default: none, 200 for cdr, 400 for dcr")
    g.add_argument("--cg-iter", type=_positive_int, default=None, metavar="K",
                   help="CG / Krylov iterations per Newton step (default 20)")
    g.add_argument("--alpha", type=_nonneg_float, default=None,
                   help="smoothness in time of the block's weights, alpha/(2h) sum_j |K_j - K_(j-1)|^2 "
                        "(H&R 2017 eq. 5.23; default 1e-3)")
    g.add_argument("--weight-decay", type=_nonneg_float, default=None,
                   help="weight decay of the network weights, weight_decay/2 * integral of |theta(t)|^2 dt "
                        "(default 1e-4)")
    g.add_argument("--alpha-w", type=_nonneg_float, default=None,
                   help="weight decay of the classifier (default 1e-3)")
    g.add_argument("--precond", dest="precond", action="store_const", const=True, default=None,
                   help="precondition CG with the diagonal of the regularizers' Hessian (H&R 2017 §6.4) and the "
                        "exact diagonal of the classifier block (default: no preconditioner)")
    g.add_argument("--hessian-fraction", type=_fraction, default=None, metavar="P",
                   help="fraction of the training examples the Gauss-Newton products use, redrawn every "
                        "iteration (H&R 2017 §2; default 0.25)")
    g.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate of sgd/adam (default 0.05 / 0.01)")
    g.add_argument("--batch-size", type=_positive_int, default=None, help="mini-batch size of sgd/adam (default 64)")
    g = tr.add_argument_group("output")
    g.add_argument("--out", type=_folder, default=None, metavar="DIR",
                   help="report folder (default ./runs/<data>-<network>-<solver>-<time>-seed<S>-<pid>, unique per "
                        "process); an existing folder is only replaced with --overwrite, and only if it is a meganet "
                        "report folder")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing report folder (never a folder that is not a meganet report)")
    g.add_argument("--no-plots", dest="plots", action="store_false", help="do not draw the PNG plots")
    g.add_argument("--quiet", action="store_true", help="print only the final summary line")
    _add_segment_parser(sub)
    return parser


def _config_from_args(args):
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})
    res = cfg.resolved(validate=False)
    tr = args._parser  # the 'train' sub-parser, for its error()
    if res.steps % 2 ** (res.levels - 1):
        tr.error(f"--steps {res.steps} must be divisible by 2^(levels-1) = {2 ** (res.levels - 1)} for "
                 f"--levels {res.levels} (each level doubles the number of steps)")
    if res.opening == "pad" and res.width < 2:
        tr.error(f"--width {res.width} is too small to pad the 2-D input (need >= 2)")
    if res.network == "verlet" and res.width < 2:
        tr.error(f"--width {res.width} is too small for the Verlet network (need >= 2)")
    try:
        res = res._validated()
        if res.out is not None:
            _check_target(res.out, res.overwrite)
    except (ValueError, FileExistsError) as err:
        tr.error(str(err))
    return res


def main(argv=None):
    """Entry point of ``meganet`` / ``python -m meganet``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "data":  # meganet data fetch NAME / meganet data list
        from .data.__main__ import main as data_main

        return data_main(argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the sub-command's usage, not the top-level one
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "train":
        cfg = _config_from_args(args)
        if cfg.quiet:  # also the "compiling numba kernels" notice of a first run
            from . import kernels

            kernels.set_compile_message(False)
        return train(cfg).exit_code
    if args.command == "segment":
        cfg = _segment_config_from_args(args)
        if cfg.quiet:
            from . import kernels

            kernels.set_compile_message(False)
        return segment(cfg).exit_code
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first


# ---------------------------------------------------------------------------- the training run
def _make_data(cfg):
    from .data import cdr, dcr, ellipses, peaks, swiss_roll

    n = cfg.n_train
    if cfg.data == "cdr":  # 400 / 200 / 200 as Meganet.m's setupCDR(400, 200); the data do not depend on --seed
        return cdr(2 * n, n_train=n, n_val=n // 2, seed=0, progress=not cfg.quiet)
    if cfg.data == "dcr":  # 8000 / 1000 / 1000 as setupDCR
        return dcr(n + n // 4, n_train=n, n_val=n // 8, seed=0, progress=not cfg.quiet)
    if cfg.data == "peaks":
        return peaks(n + n // 4, val_fraction=(n // 4) / (n + n // 4), seed=cfg.seed)
    if cfg.data == "swiss_roll":
        return swiss_roll(2 * n, val_fraction=0.5, seed=cfg.seed)
    return ellipses(n + n // 4, val_fraction=(n // 4) / (n + n // 4), seed=cfg.seed)


def _level_steps(cfg):
    return [cfg.steps // 2 ** (cfg.levels - 1 - k) for k in range(cfg.levels)]


def network_regularizer(model, alpha, weight_decay):
    r"""Regularizer of the network weights, a discretization of
    ``α/2 ∫‖∂_t θ(t)‖² dt + β/2 ∫‖θ(t)‖² dt`` (plus ``β/2 ‖θ_open‖²`` on the opening layer):
    ``α/(2h) Σ_j ‖θ_j − θ_{j−1}‖²`` (H&R 2017 eq. 5.23) and ``β h/2 Σ_j ‖θ_j‖²``.
    Both terms are integrals in time, so their values are consistent across the levels of
    multilevel training (prolongation to ``2N`` steps keeps them nearly unchanged)."""
    from .regularizers import BlockRegularizer, Tikhonov, TimeDifference

    net, block = model.network, model.block
    n = net.n_theta
    start = n - block.n_theta  # the block is the last part of θ
    N = block.n_steps
    h = block.final_time / N
    terms = []
    if weight_decay > 0.0:
        if start > 0:
            terms.append(((0, start), Tikhonov(start, alpha=weight_decay)))
        terms.append(((start, n), Tikhonov(block.n_theta, alpha=weight_decay * h)))
    if alpha > 0.0 and N > 1 and block.n_theta % N == 0:
        terms.append(((start, n), Tikhonov(TimeDifference(N, block.n_theta // N, h=h), alpha=alpha)))
    return BlockRegularizer(n, terms) if terms else None


def _classifier_regularizer(model, alpha_w):
    from .regularizers import Tikhonov

    return None if alpha_w == 0.0 else Tikhonov(model.loss.n_w, alpha=alpha_w)


def _objective(cfg, model, data, *, rng):
    from . import objectives

    Y = model.features(data.Y_train)
    R = network_regularizer(model, cfg.alpha, cfg.weight_decay)
    kw = dict(regularizer=R, classifier_regularizer=_classifier_regularizer(model, cfg.alpha_w),
              preconditioner="regularizer" if cfg.precond and R is not None else None,
              hessian_fraction=cfg.hessian_fraction)
    if cfg.solver in VARPRO_SOLVERS:
        return objectives.VarProObjective(model.network, model.loss, Y, data.C_train, rng=rng, **kw)
    batch = cfg.batch_size if cfg.solver in ("sgd", "adam") else None
    return objectives.NetworkObjective(model.network, model.loss, Y, data.C_train, batch_size=batch, rng=rng, **kw)


def _solver(cfg, rng):
    """The solver function of ``cfg.solver`` and its options (per level)."""
    from . import optimizers as opt

    k, label = cfg.max_iter, solver_label(cfg)
    budget = None if math.isinf(cfg.max_work_units) else float(cfg.max_work_units)
    if cfg.solver in ("gn", "vpro_gncg"):
        fn, opts = opt.minimize_newton_cg, dict(max_iter=k, cg_max_iter=cfg.cg_iter, gtol=1e-8)
    elif cfg.solver == "gnvpro":
        fn, opts = opt.minimize_gnvpro, dict(max_iter=k, krylov_dim=cfg.cg_iter, gtol=1e-12)
    elif cfg.solver == "trn":
        fn, opts = opt.minimize_trust_region_krylov, dict(max_iter=k, krylov_dim=cfg.cg_iter, gtol=1e-8)
    elif cfg.solver == "steihaug":
        fn, opts = opt.minimize_trust_region_steihaug, dict(max_iter=k, cg_max_iter=cfg.cg_iter, gtol=1e-8)
    elif cfg.solver in ("lbfgs", "lbfgs_vpro"):
        fn, opts = opt.minimize_lbfgs, dict(max_iter=k, gtol=1e-8)
    elif cfg.solver == "sgd":
        fn, opts = opt.minimize_sgd, dict(learning_rate=cfg.lr, momentum=0.9, n_epochs=k, rng=rng, eval_full=True)
    else:
        fn, opts = opt.minimize_adam, dict(learning_rate=cfg.lr, n_epochs=k, rng=rng, eval_full=True)
    return fn, dict(opts, label=label, max_work_units=budget)


def _metrics(model, theta, w, Y, C):
    """Loss (data term only) and the metric of the model on raw inputs ``Y`` (not counted as work):
    the accuracy (classification) or the mean per-sample relative error ``‖W[F; 1] − c‖/‖c‖`` (least squares)."""
    F = model.output(theta, Y)
    w = np.asarray(w, dtype=model.dtype)
    loss = float(model.loss.value(F, w, C))
    if model.spec["loss"] == "least_squares":
        return loss, float(np.mean(_relative_errors(model, theta, w, Y, C)))
    return loss, float(model.loss.accuracy(F, w, C))


def _relative_errors(model, theta, w, Y, C):
    from .plotting.observables import relative_errors

    return relative_errors(model.predict(theta, w, Y), C)


def relative_error_table(model, theta, w, data):
    """Per-sample relative errors ``‖W[Y_N; 1] − c‖/‖c‖`` as mean, std, min, max on the training, validation
    and (when the data set has one) test sets — the table Meganet.m's GNvpro EVP scripts print."""
    sets = [("train", data.Y_train, data.C_train), ("val", data.Y_val, data.C_val)]
    if getattr(data, "Y_test", None) is not None and len(data.Y_test):
        sets.append(("test", data.Y_test, data.C_test))
    table = {}
    for name, Y, C in sets:
        e = _relative_errors(model, theta, w, Y, C)
        table[name] = dict(mean=float(e.mean()), std=float(e.std(ddof=1)) if e.size > 1 else 0.0,
                           min=float(e.min()), max=float(e.max()), n=int(e.size))
    return table


def format_relative_error_table(table):
    """The table of :func:`relative_error_table` as text (Meganet.m's layout)."""
    lines = [f"{'':8s}{'mean':>10s} {'+/-std':>10s} {'min':>10s} {'max':>10s}"]
    for name, label in (("train", "Train:"), ("val", "Val:"), ("test", "Test:")):
        if name in table:
            r = table[name]
            lines.append(f"{label:8s}{r['mean']:10.4f} {r['std']:10.4f} {r['min']:10.4f} {r['max']:10.4f}")
    return "\n".join(lines)


def _default_out(cfg):
    """``runs/<data>-<network>-<solver>-<time>-seed<S>-<pid>``: unique per process, so parallel runs
    started in the same second never collide (:func:`~meganet._folders.unique_path` on top)."""
    from ._folders import unique_path

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return unique_path(os.path.join("runs", f"{cfg.data}-{cfg.network}-{cfg.solver}-{stamp}-seed{cfg.seed}-"
                                            f"{os.getpid()}"))


def _check_target(out, overwrite, kind="run"):
    """Raise ``FileExistsError`` if ``out`` exists and may not be replaced by a report of ``kind``
    (``"run"`` or ``"segment"``; see :mod:`meganet._folders`)."""
    from ._folders import check_replaceable

    if os.path.lexists(out):
        if not overwrite:
            raise FileExistsError(f"--out {os.fspath(out)!r} already exists; choose another folder or pass "
                                  "--overwrite")
        check_replaceable(out, kind=kind)


def _save(out, save, *, overwrite, warn):
    """Save the report with ``save(path, overwrite=...)`` (which returns the report's path) at ``out``;
    if that fails, at a free sibling name (``out`` appeared meanwhile) or under
    :func:`~meganet._folders.fallback_root` (``out`` cannot be written).  A finished run is never
    discarded because its folder cannot be written.

    Returns ``(path, fallback_reason)``; the reason is ``None`` when the report is at ``out``.
    """
    from ._folders import fallback_root, unique_path

    try:
        return save(out, overwrite=overwrite), None
    except FileExistsError as err:
        reason = str(err)
        target = unique_path(out)
    except Exception as err:  # noqa: BLE001 - whatever went wrong, the report goes elsewhere
        reason = f"{type(err).__name__}: {err}"
        target = None
    if target is not None:
        warn(f"cannot write the report to {os.path.abspath(out)} ({reason}); writing it to {target}")
        try:
            return save(target, overwrite=False), reason
        except Exception as err:  # noqa: BLE001
            reason += f"; {target}: {type(err).__name__}: {err}"
    target = unique_path(os.path.join(fallback_root(), os.path.basename(os.path.abspath(out))))
    warn(f"cannot write the report to {os.path.abspath(out)} ({reason}); writing it to {target}")
    return save(target, overwrite=False), reason


class _Progress:
    """What the solver callback saw: the last iterate with finite values (and its model), and the
    validation metrics of every iterate (not counted as work)."""

    def __init__(self, model, theta, w):
        self.model, self.theta, self.w = model, theta, w
        self.val = {}  # (n_steps, row time) -> (loss, accuracy)


def _collect(cfg, data, levels, ml, progress, *, status, message):
    """History, per-level results and the final (model, θ, w) of a complete or partial run."""
    from .optimizers import History

    history, level_results = History(), []
    work_offset = time_offset = 0.0
    for lev in (ml.levels if ml is not None else []):
        model, obj = levels[lev.n_steps]
        res = lev.result
        rows = list(lev.history)
        if res is None:  # the interrupted level: its rows so far, after its starting point
            f0 = None
            with contextlib.suppress(Exception):
                f0 = float(obj.value(lev.x0))
            rows = [dict(iter=0, f=f0, work_units=0.0, time=0.0)] + rows
        for i, row in enumerate(rows):
            if i == 0:  # the starting point of the level (recorded without a callback)
                vl, va = _safe_metrics(model, *obj.split(lev.x0), data.Y_val, data.C_val)
            else:
                vl, va = progress.val.get((lev.n_steps, row.get("time")), (None, None))
            merged = {"level": lev.level, "n_steps": lev.n_steps,
                      **{k: v for k, v in row.items() if k not in ("level", "n_steps")}}
            if merged.get("f") is None:
                merged["f"] = merged.get("f_batch")
            merged["work_units"] = work_offset + float(row.get("work_units") or 0.0)
            merged["time"] = time_offset + float(row.get("time") or 0.0)
            merged["val_loss"], merged[_metric_column(model)] = vl, va
            history.append(merged)
        if res is not None:
            level_results.append(dict(level=lev.level, n_steps=lev.n_steps, status=res.status.value,
                                      message=res.message, success=bool(res.success), fun=res.fun, nit=res.nit,
                                      work_units=res.work_units, wall_time_s=res.wall_time,
                                      transfer=_json_transfer(lev.transfer)))
            work_offset += float(res.work_units)
            time_offset += float(res.wall_time)
        else:
            last_row = rows[-1]
            level_results.append(dict(level=lev.level, n_steps=lev.n_steps, status=status, message=message,
                                      success=False, fun=last_row.get("f"), nit=len(rows) - 1,
                                      work_units=float(obj.counter.work_units),
                                      wall_time_s=float(last_row.get("time") or 0.0)))
    work_units = float(sum(obj.counter.work_units for _, obj in levels.values()))
    complete = ml is not None and not ml.partial
    if complete:
        final = ml.levels[-1]
        model, obj = levels[final.n_steps]
        theta, w = obj.split(ml.x)
        status, message = final.result.status.value, final.result.message
        success = bool(final.result.success)
        # a failed coarse level stops nothing in train_multilevel; report the first failure
        for lev in ml.levels:
            if lev.result.status.value in FAILED_STATUSES:
                status, message = lev.result.status.value, f"level {lev.level} ({lev.n_steps} steps): " \
                                                           f"{lev.result.message}"
                success = False
                break
        final_objective = float(final.result.fun)
        work_units = float(ml.work_units)
        if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(w))):
            model, theta, w = progress.model, progress.theta, progress.w
    else:
        model, theta, w = progress.model, progress.theta, progress.w
        final_objective, success = math.nan, False
    return dict(history=history, level_results=level_results, model=model, theta=np.asarray(theta),
                w=np.asarray(w), status=status, message=message, success=success, final_objective=final_objective,
                work_units=work_units)


def _json_transfer(rec):
    """The warm start of a level (:attr:`LevelResult.transfer`: objective and validation metrics just before and
    just after the prolongation, and after the classifier re-fit) with plain floats, or None on the first level."""
    if rec is None:
        return None

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return float(v) if isinstance(v, (float, np.floating)) else v

    return plain(dict(rec))


def _metric_column(model):
    """History column of the validation metric."""
    return "val_rel_error" if model.spec["loss"] == "least_squares" else "val_accuracy"


def _safe_metrics(model, theta, w, Y, C):
    """:func:`_metrics`, or ``(None, None)`` if it fails (the report is written anyway)."""
    try:
        return _metrics(model, theta, w, Y, C)
    except Exception:  # noqa: BLE001
        return None, None


def train(cfg):
    """Run the training described by ``cfg`` (a :class:`TrainConfig`) and write the report folder.

    The levels run through :func:`meganet.training.train_multilevel`; a
    solver callback records the validation loss and accuracy of every iterate
    (not counted as work) and keeps the last finite iterate.  Whatever stops the
    training — convergence, the iteration budget, NaN/Inf, an exception raised
    inside the solver, a kernel or the objective (``MemoryError``, ``OSError``,
    ...), Ctrl-C, SIGTERM or SIGHUP — a report is written with everything done so
    far (completed levels, the history up to the last iteration, the last finite
    iterate), the status and the message.  While it is written, further
    signals are held (:class:`meganet._signals.SignalGuard`).  If the report
    cannot be written at ``cfg.out`` (read-only, full, a file in the way, the
    folder appeared meanwhile) it goes to a sibling or fallback folder that the
    message names (:func:`_save`).

    Returns
    -------
    TrainOutcome
        ``exit_code`` 0 (success), 1 (NaN/Inf or an error during training; the
        report holds the last good iterate), 3 (trained, but the report went to
        the fallback location named on stderr and in ``path``), ``128 + signal``
        (interrupted: 130 for Ctrl-C, 143 for SIGTERM).

    Raises
    ------
    ValueError, FileExistsError
        Bad options, or ``cfg.out`` exists and may not be replaced (before anything runs).
    """
    from ._folders import fallback_root, writable_problem
    from ._signals import SignalGuard, describe, exit_status
    from .report import Model, build_model, model_spec, save_run
    from .training import time_stepping_blocks, train_multilevel

    cfg = cfg.resolved()
    say = (lambda *a: None) if cfg.quiet else (lambda *a: print(*a, flush=True))

    def warn(msg):
        print(f"meganet train: {msg}", file=sys.stderr, flush=True)

    dtype = np.dtype(cfg.dtype)
    out = os.fspath(cfg.out) if cfg.out is not None else _default_out(cfg)
    _check_target(out, cfg.overwrite)
    problem = writable_problem(out)
    if problem is not None:
        warn(f"the report cannot be written to {os.path.abspath(out)}: {problem}. Training anyway; the report will "
             f"go to {fallback_root()} (exit status 3)")

    say(f"meganet train: generating the {cfg.data} data ...")
    data = _make_data(cfg)
    steps = _level_steps(cfg)
    regression = cfg.data in REGRESSION
    n_out = data.n_outputs if regression else data.n_classes
    spec = model_spec(network=cfg.network, opening=cfg.opening, n_inputs=data.Y_train.shape[1], width=cfg.width,
                      n_steps=steps[0], final_time=cfg.final_time, gamma=cfg.gamma,
                      loss="least_squares" if regression else "softmax", n_outputs=n_out, dtype=cfg.dtype)
    model0 = build_model(spec)
    rng = np.random.default_rng(cfg.seed)
    theta0 = model0.network.init_theta(rng=rng, dtype=dtype)
    w0 = model0.init_w(rng=rng)
    what = f"{n_out} outputs, least squares" if regression else f"{n_out} classes"
    say(f"meganet train: {data.name} ({data.Y_train.shape[0]} training / {data.Y_val.shape[0]} validation examples, "
        f"{what}), {cfg.network} network of width {cfg.width}, T = {cfg.final_time:g}, "
        f"levels {steps} steps, solver {cfg.solver} ({solver_label(cfg)})"
        + ("" if math.isinf(cfg.max_work_units) else f", {cfg.max_work_units:g} work units per level"))

    levels = {}  # n_steps -> (model, objective)
    progress = _Progress(model0, theta0, w0)

    def make_objective(net):
        N = time_stepping_blocks(net)[0].n_steps
        model = Model(spec=dict(spec, n_steps=N), network=net, loss=model0.loss)
        obj = _objective(cfg, model, data, rng=rng)
        levels[N] = (model, obj)
        return obj

    def callback(x, row):
        model, obj = levels[row["n_steps"]]
        th, ww = obj.split(x)
        if not (np.all(np.isfinite(th)) and np.all(np.isfinite(ww))):
            return
        progress.model, progress.theta, progress.w = model, th.copy(), ww.copy()
        progress.val[(row["n_steps"], row.get("time"))] = _metrics(model, th, ww, data.Y_val, data.C_val)

    def held(signum):
        warn(f"{describe(signum)} received while the report is written; stopping as soon as it is complete")

    fn, options = _solver(cfg, rng)
    x0 = theta0 if cfg.solver in VARPRO_SOLVERS else np.concatenate([theta0, w0])
    status, message, ml, stop_signal = "completed", "", None, None
    with SignalGuard(on_hold_signal=held) as guard:
        t_start = time.perf_counter()
        try:
            try:
                ml = train_multilevel(make_objective, model0.network, x0, levels=steps, solver=fn,
                                      solver_options=options, callback=callback, verbose=not cfg.quiet,
                                      validation=(model0.features(data.Y_val), data.C_val))
            finally:
                guard.hold()  # from here on, the report is written whatever arrives
        except KeyboardInterrupt as err:
            ml = getattr(err, "partial_result", None)
            status, stop_signal = "interrupted", getattr(err, "signum", signal.SIGINT)
            message = (f"interrupted by {describe(stop_signal)}; the report holds the completed levels, "
                       "the history up to the last iteration and the last iterate with finite values")
        except Exception as err:  # noqa: BLE001 - any failure still writes the report of the work done
            ml = getattr(err, "partial_result", None)
            status, message = "error", f"{type(err).__name__} raised during training: {err}"
            warn(message)
            traceback.print_exc(file=sys.stderr)
        wall = time.perf_counter() - t_start
        try:
            rec = _collect(cfg, data, levels, ml, progress, status=status, message=message)
        except Exception as err:  # noqa: BLE001 - the parameters are saved even if the records cannot be built
            from .optimizers import History

            warn(f"could not assemble the history ({type(err).__name__}: {err}); saving the last finite iterate")
            rec = dict(history=History(), level_results=[], model=progress.model, theta=np.asarray(progress.theta),
                       w=np.asarray(progress.w), status="error" if status == "completed" else status,
                       message=message or f"{type(err).__name__} while assembling the report: {err}",
                       success=False, final_objective=math.nan,
                       work_units=float(sum(obj.counter.work_units for _, obj in levels.values())))
        model, theta, w = rec["model"], rec["theta"], rec["w"]
        train_loss, train_acc = _safe_metrics(model, theta, w, data.Y_train, data.C_train)
        val_loss, val_acc = _safe_metrics(model, theta, w, data.Y_val, data.C_val)
        rel_table = None
        if regression:  # the metric is the mean relative error, not an accuracy
            train_rel, val_rel, train_acc, val_acc = train_acc, val_acc, None, None
            with contextlib.suppress(Exception):
                rel_table = relative_error_table(model, theta, w, data)
        summary = dict(
            status=rec["status"], message=rec["message"], success=rec["success"],
            failed=rec["status"] in FAILED_STATUSES or rec["status"] == "interrupted",
            final_loss=train_loss, final_objective=rec["final_objective"], train_loss=train_loss,
            train_accuracy=train_acc, val_loss=val_loss, val_accuracy=val_acc, wall_time_s=wall,
            work_units=rec["work_units"], iterations=int(sum(r["nit"] for r in rec["level_results"])),
            levels=steps, n_steps=model.spec["n_steps"], solver=cfg.solver, solver_name=solver_label(cfg),
            data=data.name, n_train=int(data.Y_train.shape[0]), n_val=int(data.Y_val.shape[0]),
            n_classes=None if regression else int(n_out), n_outputs=int(n_out), network=spec["network"],
            n_theta=int(model.network.n_theta),
            n_w=int(model.loss.n_w), config=asdict(cfg), level_results=rec["level_results"],
            command=" ".join(["meganet"] + sys.argv[1:]), out_requested=os.path.abspath(out),
            title=f"{data.name}: {spec['network']} network, solver {cfg.solver}",
        )
        if regression:
            summary.update(train_rel_error=train_rel, val_rel_error=val_rel, relative_errors=rel_table,
                           n_test=int(len(data.Y_test)))
            if rel_table is not None:
                say("meganet train: per-sample relative errors |W[Y_N; 1] - c| / |c|\n"
                    + format_relative_error_table(rel_table))
        say(f"meganet train: writing the report to {os.path.abspath(out)} ...")
        path, fallback = _save(out, functools.partial(save_run, model=model, theta=theta, w=w, history=rec["history"],
                                                      summary=summary, data=data, plots=cfg.plots),
                               overwrite=cfg.overwrite, warn=warn)
    status = rec["status"]
    stop_signal = stop_signal if stop_signal is not None else guard.signum
    if stop_signal is not None:
        code = exit_status(stop_signal)
    elif status in FAILED_STATUSES:
        code = 1
    else:
        code = 3 if fallback is not None else 0
    pct = (lambda v: "n/a" if v is None else f"{100 * v:.2f} %")
    if regression:
        sci = (lambda v: "n/a" if v is None else f"{v:.4e}")
        quality = (f"mean relative error: train {sci(summary['train_rel_error'])}, validation "
                   f"{sci(summary['val_rel_error'])}")
    else:
        quality = f"train accuracy {pct(train_acc)}, validation accuracy {pct(val_acc)}"
    line = (f"{status}: {quality}, "
            f"training loss {train_loss if train_loss is None else format(train_loss, '.4e')}, "
            f"{rec['work_units']:g} work units, {wall:.1f} s; report: {path}")
    if code:
        if code == 1:
            why = f"run failed ({status}): {rec['message']}"
        elif code == 3:
            why = f"the report could not be written to {os.path.abspath(out)}; it is at {path}"
        elif status == "interrupted":
            why = rec["message"]
        else:
            why = f"{describe(stop_signal)} received after training had finished; the report is complete"
        print(f"meganet train: {why}", file=sys.stderr, flush=True)
        print(line, file=sys.stderr, flush=True)
    else:
        print(line, flush=True)
    return TrainOutcome(path=path, summary=summary, exit_code=code, theta=theta, w=w,
                        history=rec["history"].to_dict())


# ---------------------------------------------------------------------------- meganet segment
#: Data sets of ``meganet segment``.
SEGMENT_DATASETS = ("change-detection", "indian-pines")
#: The α grid of the Peters 2020 sweep (α = 0 is the unregularized baseline).
SEGMENT_ALPHAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1, 1.0)
#: Indian Pines: the folder under :func:`meganet.data.data_folder` and the two user-supplied files.
INDIAN_PINES_FILES = ("Indian_pines_corrected.mat", "Indian_pines_gt.mat")


@dataclass
class SegmentConfig:
    """The options of ``meganet segment`` (``None``: the per-data-set default)."""

    data: str = "change-detection"
    size: int | None = None
    bands: int | None = None
    alphas: tuple = SEGMENT_ALPHAS
    seeds: tuple = (0, 1, 2)
    width: int = 8
    layers: int = 6
    max_iter: int = 150
    on: str = "probabilities"
    n_train: int = 200
    n_val: int = 50
    out: str | None = None
    overwrite: bool = False
    plots: bool = True
    quiet: bool = False

    def validated(self):
        """A copy with the defaults filled in, checked (``ValueError`` naming the option)."""
        from .core.validation import check_bool, check_int, check_option

        check_option("data", self.data, SEGMENT_DATASETS)
        c = SegmentConfig(**asdict(self))
        if c.data == "change-detection":
            c.size = 64 if c.size is None else c.size
            c.bands = 20 if c.bands is None else c.bands
        for name in ("width", "layers", "n_train", "n_val"):
            check_int(name, getattr(c, name), minimum=1)
        check_int("max_iter", c.max_iter, minimum=0)
        for name in ("size", "bands"):
            if getattr(c, name) is not None:
                check_int(name, getattr(c, name), minimum=1)
        if c.width % 2:
            raise ValueError(f"width must be even (the Hamiltonian block splits the channels in two), got {c.width}")
        check_option("on", c.on, ("probabilities", "logits"))
        alphas = [float(a) for a in c.alphas]
        if not alphas or any(not (math.isfinite(a) and a >= 0) for a in alphas) or 0.0 not in alphas:
            raise ValueError(f"alphas must be non-negative finite numbers and contain 0, got {alphas}")
        c.alphas = tuple(sorted(set(alphas)))
        seeds = [check_int("seeds", s, minimum=0) for s in c.seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct non-negative integers (at least one), got {list(c.seeds)}")
        c.seeds = tuple(seeds)
        if c.data == "change-detection":
            if c.size < 8:
                raise ValueError(f"size must be >= 8 for the change-detection scene, got {c.size}")
            if c.n_train < 2 or c.n_val < 2:
                raise ValueError(f"n_train and n_val must be >= 2 (both classes in each set), got {c.n_train} "
                                 f"and {c.n_val}")
            if c.n_train + c.n_val > c.size ** 2:
                raise ValueError(f"n_train + n_val = {c.n_train + c.n_val} exceeds the {c.size ** 2} pixels of the "
                                 f"{c.size}x{c.size} scene")
        for name in ("overwrite", "plots", "quiet"):
            check_bool(name, getattr(c, name))
        if c.out is not None and (not isinstance(c.out, (str, os.PathLike)) or not os.fspath(c.out).strip()):
            raise ValueError(f"out must name a folder (a non-empty path), got {c.out!r}")
        return c


@dataclass
class SegmentOutcome:
    """What :func:`segment` returns."""

    path: str | None
    summary: dict
    exit_code: int
    rows: list = field(default_factory=list)


def _add_segment_parser(sub):
    alphas = " ".join(f"{a:g}" for a in SEGMENT_ALPHAS)
    sg = sub.add_parser(
        "segment", help="few labels: Peters 2020 output regularization, alpha sweep on a scene, report folder",
        description=(
            "Peters (2020), eq. (3.2): train a reversible segmentation network on a few labelled pixels (per-pixel "
            "softmax cross-entropy on the training pixels) plus alpha * R, R = 1/2 |grad_1 M|^2 + 1/2 |grad_2 M|^2 "
            "on the predicted map M (eq. 4.8), for every alpha of a grid from ONE initial point per seed (L-BFGS), "
            "and pick alpha by the mIoU on held-out labelled validation pixels. Writes a report folder: "
            "summary.json (configuration, best alpha per seed, mean/min/max over the seeds of the validation and "
            "whole-map mIoU per alpha, machine, status), alpha_sweep.jsonl (one row per seed and alpha), "
            "alpha_sweep.md (the tables), miou_vs_alpha.png, maps.png (true map, alpha = 0, best alpha, largest "
            "alpha). Default: the synthetic change-detection scene (meganet.data.change_detection_scene, 64x64, "
            "2 x 20 bands, 200 training / 50 validation pixels), 3 seeds. --data indian-pines needs the "
            "user-supplied files Indian_pines_corrected.mat and Indian_pines_gt.mat in <data folder>/indian-pines "
            "(data folder: $MEGANET_DATA, default ~/.cache/meganet/data; see 'meganet data fetch indian-pines')."))
    sg.set_defaults(_parser=sg)
    g = sg.add_argument_group("problem")
    g.add_argument("--data", choices=SEGMENT_DATASETS, default="change-detection",
                   help="change-detection: synthetic two-time hyperspectral scene, label = change map (default); "
                        "indian-pines: the AVIRIS Indian Pines image, 16 ground-truth classes (USER-SUPPLIED files, "
                        "see above; unlabelled pixels are left out of the whole-map scores)")
    g.add_argument("--size", type=_positive_int, default=None, metavar="S",
                   help="change-detection: the scene is S x S pixels (default 64); indian-pines: crop the central "
                        "S x S pixels (default: the whole 145 x 145 image)")
    g.add_argument("--bands", type=_positive_int, default=None, metavar="B",
                   help="change-detection: bands per cube (default 20); indian-pines: keep B evenly spaced bands "
                        "(default: all)")
    g.add_argument("--n-train", type=_positive_int, default=200, metavar="N",
                   help="labelled training pixels (default 200, as Peters 2020)")
    g.add_argument("--n-val", type=_positive_int, default=50, metavar="N",
                   help="labelled validation pixels that choose alpha (default 50)")
    g.add_argument("--seeds", type=_nonneg_int, nargs="+", default=[0, 1, 2], metavar="SEED",
                   help="seeds (default 0 1 2); each seed draws the scene (change-detection) or the labelled "
                        "pixels (indian-pines) and the initial weights")
    g = sg.add_argument_group("network and optimization")
    g.add_argument("--width", type=_positive_int, default=8, help="channels of the reversible block (even; default 8)")
    g.add_argument("--layers", type=_positive_int, default=6, help="layers of the reversible block (default 6)")
    g.add_argument("--alphas", type=_nonneg_float, nargs="+", default=list(SEGMENT_ALPHAS), metavar="ALPHA",
                   help=f"the alpha grid, must contain 0 (default {alphas})")
    g.add_argument("--on", choices=("probabilities", "logits"), default="probabilities",
                   help="the map R smooths: softmax probabilities (default) or logits")
    g.add_argument("--max-iter", type=_nonneg_int, default=150, metavar="K", help="L-BFGS iterations per alpha "
                                                                                   "(default 150)")
    g = sg.add_argument_group("output")
    g.add_argument("--out", type=_folder, default=None, metavar="DIR",
                   help="report folder (default ./runs/segment-<data>-<time>-<pid>); an existing folder is only "
                        "replaced with --overwrite, and only if it is a meganet segment report folder")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing segment report folder (never a folder that is not one)")
    g.add_argument("--no-plots", dest="plots", action="store_false", help="do not draw the PNG figures")
    g.add_argument("--quiet", action="store_true", help="print only the final summary line")
    return sg


def _segment_config_from_args(args):
    cfg = SegmentConfig(**{f.name: getattr(args, f.name) for f in fields(SegmentConfig) if hasattr(args, f.name)})
    try:
        cfg = cfg.validated()
        if cfg.out is not None:
            _check_target(cfg.out, cfg.overwrite, kind="segment")
        if cfg.data == "indian-pines":
            _indian_pines_paths()
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        args._parser.error(str(err))
    return cfg


def segment_replace_refusal(path):
    """Why ``path`` may not be replaced by a new segment report, or ``None`` if it may: a real folder (no link),
    not the current directory or one of its parents, with a ``summary.json`` of format ``meganet-segment`` and
    nothing but the files of such a report (:data:`SEGMENT_FILES`); :func:`meganet._folders.replace_refusal`
    with ``kind="segment"``."""
    from ._folders import replace_refusal

    return replace_refusal(path, kind="segment")


def _indian_pines_paths():
    """The two Indian Pines files under ``data_folder()/indian-pines``; ``FileNotFoundError`` naming the folder
    and ``meganet data fetch indian-pines`` when one is missing."""
    from .data import data_folder

    folder = os.path.join(data_folder(), "indian-pines")
    paths = [os.path.join(folder, f) for f in INDIAN_PINES_FILES]
    missing = [os.path.basename(p) for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"--data indian-pines needs the user-supplied files {' and '.join(INDIAN_PINES_FILES)} in {folder} "
            f"(missing: {', '.join(missing)}); put them there (the data folder is $MEGANET_DATA) and see "
            "'meganet data fetch indian-pines' for where to get them")
    return paths


def indian_pines_scene(size=None, bands=None):
    """The Indian Pines image as one scene for :func:`meganet.training.alpha_sweep`.

    Returns ``(X, classes)``: ``X`` of shape (1, B, H, W), every band standardized to mean 0 and standard
    deviation 1 over the image (``bands``: keep that many evenly spaced bands), and ``classes`` of shape
    (1, H, W) with the ground truth 1..16 mapped to 0..15 and the unlabelled pixels (ground truth 0) to -1;
    ``size``: the central ``size x size`` crop.
    """
    from .data import read_indian_pines

    data_path, gt_path = _indian_pines_paths()
    _, _, _, cube, gt = read_indian_pines(data_path, gt_path, return_cube=True)
    H, W = gt.shape
    if size is not None:
        if size > min(H, W):
            raise ValueError(f"size = {size} exceeds the {H} x {W} Indian Pines image")
        r0, c0 = (H - size) // 2, (W - size) // 2
        cube, gt = cube[r0:r0 + size, c0:c0 + size], gt[r0:r0 + size, c0:c0 + size]
    if bands is not None:
        if bands > cube.shape[2]:
            raise ValueError(f"bands = {bands} exceeds the {cube.shape[2]} bands of the Indian Pines cube")
        cube = cube[:, :, np.unique(np.linspace(0, cube.shape[2] - 1, bands).round().astype(int))]
    X = np.asarray(cube, dtype=np.float64).transpose(2, 0, 1)
    mu = X.mean(axis=(1, 2), keepdims=True)
    sd = X.std(axis=(1, 2), keepdims=True)
    X = (X - mu) / np.where(sd > 0, sd, 1.0)
    return X[None], (gt.astype(np.int64) - 1)[None]


def _indian_pines_masks(classes, n_train, n_val, seed):
    """``n_train`` training and ``n_val`` validation pixels drawn (seeded) among the labelled pixels."""
    idx = np.flatnonzero(classes.ravel() >= 0)
    if n_train + n_val > idx.size:
        raise ValueError(f"n_train + n_val = {n_train + n_val} exceeds the {idx.size} labelled pixels of the "
                         "Indian Pines scene")
    pick = np.random.default_rng(seed).choice(idx, size=n_train + n_val, replace=False)
    tr = np.zeros(classes.size, bool)
    va = np.zeros(classes.size, bool)
    tr[pick[:n_train]] = True
    va[pick[n_train:]] = True
    return tr.reshape(classes.shape), va.reshape(classes.shape)


def _machine():
    """CPU model, cores, load average, Python and meganet versions (for the summary and the README)."""
    import platform

    from . import __version__

    cpu = platform.processor() or "cpu"
    with contextlib.suppress(OSError, StopIteration):
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    load = None
    with contextlib.suppress(OSError, AttributeError):
        load = [round(x, 2) for x in os.getloadavg()]
    return dict(cpu=cpu, cores=os.cpu_count(), load=load, python=platform.python_version(), meganet=__version__)


def _segment_default_out(cfg):
    from ._folders import unique_path

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return unique_path(os.path.join("runs", f"segment-{cfg.data}-{stamp}-{os.getpid()}"))


def segment(cfg):
    """Run ``meganet segment``: :func:`meganet.training.alpha_sweep` for every seed, then the report folder.

    Returns
    -------
    SegmentOutcome
        ``exit_code`` 0 (success), 1 (an α ended with NaN/Inf or the training raised; the report holds the
        seeds done), 3 (the report is in the fallback location named on stderr), ``128 + signal``
        (interrupted; the report holds the seeds done).
    """
    import json

    from ._folders import atomic_folder
    from ._signals import SignalGuard, describe, exit_status
    from .training import alpha_sweep, sweep_markdown, sweep_summary

    cfg = cfg.validated()
    say = (lambda *a: None) if cfg.quiet else (lambda *a: print(*a, flush=True))

    def warn(msg):
        print(f"meganet segment: {msg}", file=sys.stderr, flush=True)

    out = os.fspath(cfg.out) if cfg.out is not None else _segment_default_out(cfg)
    _check_target(out, cfg.overwrite, kind="segment")
    mach = _machine()
    pines = None
    if cfg.data == "indian-pines":
        say(f"meganet segment: reading Indian Pines from {os.path.dirname(_indian_pines_paths()[0])} ...")
        pines = indian_pines_scene(cfg.size, cfg.bands)
    rows, first, failures = [], None, []
    status, message, stop_signal = "completed", "", None
    with SignalGuard() as guard:
        t_start = time.perf_counter()
        try:
            try:
                for seed in cfg.seeds:
                    if pines is None:
                        from .data import change_detection_scene

                        sc = change_detection_scene((cfg.size, cfg.size), n_bands=cfg.bands, n_train=cfg.n_train,
                                                    n_val=cfg.n_val, seed=seed)
                        X, labels, tr, va, n_classes, ignore = sc.X, sc.labels, sc.train_mask, sc.val_mask, 2, None
                    else:
                        X, labels = pines
                        tr, va = _indian_pines_masks(labels, cfg.n_train, cfg.n_val, seed)
                        n_classes, ignore = 16, -1
                    res = alpha_sweep(X, labels, tr, va, cfg.alphas, n_classes=n_classes, ground_truth=labels,
                                      ignore_label=ignore, width=cfg.width, n_layers=cfg.layers,
                                      max_iter=cfg.max_iter, on=cfg.on, seed=seed, log=None if cfg.quiet else say)
                    rows += [dict(r, seed=seed) for r in res.rows]
                    if res.status != "completed":
                        failures.append(f"seed {seed}: {res.message}")
                    if first is None:
                        first = (labels[0], tr[0], res)
            finally:
                guard.hold()
        except KeyboardInterrupt as err:
            status, stop_signal = "interrupted", getattr(err, "signum", signal.SIGINT)
            message = f"interrupted by {describe(stop_signal)}; the report holds the seeds completed before"
        except Exception as err:  # noqa: BLE001 - the report of the seeds done is still written
            status, message = "error", f"{type(err).__name__} raised during training: {err}"
            warn(message)
            traceback.print_exc(file=sys.stderr)
        wall = time.perf_counter() - t_start
        if status == "completed" and failures:
            status, message = "non_finite", "; ".join(failures)
        if status == "completed":
            message = f"{len(cfg.seeds)} seeds x {len(cfg.alphas)} values of alpha"
        agg = sweep_summary(rows) if rows else None
        summary = dict(format=SEGMENT_FORMAT, status=status, message=message,
                       failed=status != "completed", config=dict(asdict(cfg), alphas=list(cfg.alphas),
                                                                 seeds=list(cfg.seeds)),
                       data=cfg.data, n_classes=2 if cfg.data == "change-detection" else 16,
                       image_shape=list(pines[0].shape[2:]) if pines is not None else [cfg.size, cfg.size],
                       n_channels=int(pines[0].shape[1]) if pines is not None else 2 * cfg.bands,
                       seeds_done=sorted({r["seed"] for r in rows}),
                       best_alpha_per_seed=[dict(seed=p["seed"], best_alpha=p["best_alpha"]) for p in agg["per_seed"]]
                       if agg else [],
                       best_alpha_of_mean=agg["best_alpha_of_mean"] if agg else None,
                       per_alpha=agg["per_alpha"] if agg else [], per_seed=agg["per_seed"] if agg else [],
                       wall_time_s=wall, machine=mach, command=" ".join(["meganet"] + sys.argv[1:]),
                       out_requested=os.path.abspath(out),
                       reference="Peters (2020), Deep connections between learning from limited labels & physical "
                                 "parameter estimation, eq. (3.2), (4.8)-(4.9)")
        what = ("synthetic change-detection scene " f"{cfg.size}x{cfg.size}, 2 x {cfg.bands} bands"
                if pines is None else f"Indian Pines {pines[0].shape[2]}x{pines[0].shape[3]}, "
                                      f"{pines[0].shape[1]} standardized bands, 16 classes (unlabelled pixels left "
                                      "out of the whole-map scores)")
        intro = [f"Generated by `{summary['command']}` in {wall:.0f} s; machine {mach['cpu']} ({mach['cores']} "
                 f"cores, load {mach['load']}), meganet {mach['meganet']}; status {status}.",
                 f"{what}; {cfg.n_train} labelled training and {cfg.n_val} validation pixels; reversible Hamiltonian "
                 f"network of width {cfg.width} and {cfg.layers} layers; R on the {cfg.on}; L-BFGS, {cfg.max_iter} "
                 "iterations per α, the same initial weights for every α of a seed."]

        def write(folder):
            files = ["alpha_sweep.jsonl", "alpha_sweep.md"]
            with open(os.path.join(folder, "alpha_sweep.jsonl"), "w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps(r) + "\n")
            md = (sweep_markdown(rows, title="Peters 2020: output regularization with few labels — mIoU against α",
                                 intro=intro) if rows else f"# meganet segment\n\nNo seed completed: {message}\n")
            with open(os.path.join(folder, "alpha_sweep.md"), "w", encoding="utf-8") as fh:
                fh.write(md)
            note = "not requested"
            if cfg.plots and rows:
                try:
                    from .plotting import miou_vs_alpha, require_matplotlib, segmentation_maps

                    require_matplotlib()
                    miou_vs_alpha(rows, path=os.path.join(folder, "miou_vs_alpha.png"), n_val=cfg.n_val)
                    truth, trm, res = first
                    top = res.alphas[-1]
                    k = summary["n_classes"]
                    segmentation_maps(
                        np.where(truth >= 0, truth, 0), [("α = 0", res.map(0.0)),
                                                         (f"best α = {res.best_alpha:g} (validation)",
                                                          res.map(res.best_alpha)), (f"α = {top:g}", res.map(top))],
                        n_classes=k, train_mask=trm, ignore=truth < 0 if pines is not None else None,
                        truth_title="true change map" if pines is None else "ground truth",
                        path=os.path.join(folder, "maps.png"), title=f"seed {res.config['seed']}")
                    files += ["miou_vs_alpha.png", "maps.png"]
                    note = "drawn"
                except ImportError as err:
                    note = f"skipped: {err}"
            elif cfg.plots:
                note = "skipped: no seed completed"
            summary.update(plots=note, files=files + ["summary.json"])
            with open(os.path.join(folder, "summary.json"), "w", encoding="utf-8") as fh:
                json.dump(summary, fh, indent=2)

        def save(target, overwrite):
            target = os.path.abspath(target)
            with atomic_folder(target, overwrite=overwrite, kind="segment") as tmp:
                write(tmp)
            return target

        say(f"meganet segment: writing the report to {os.path.abspath(out)} ...")
        path, fallback = _save(out, save, overwrite=cfg.overwrite, warn=warn)
    stop_signal = stop_signal if stop_signal is not None else guard.signum
    if stop_signal is not None:
        code = exit_status(stop_signal)
    elif status != "completed":
        code = 1
    else:
        code = 3 if fallback is not None else 0
    if agg:
        a0 = next(p for p in agg["per_alpha"] if p["alpha"] == 0.0)
        b = next(p for p in agg["per_alpha"] if p["alpha"] == agg["best_alpha_of_mean"])
        quality = (f"mean validation mIoU {a0['val_miou']['mean']:.3f} at α = 0, {b['val_miou']['mean']:.3f} at "
                   f"α = {b['alpha']:g} (best mean; per seed best α "
                   f"{', '.join(format(p['best_alpha'], 'g') for p in agg['per_seed'])})")
    else:
        quality = "no seed completed"
    line = f"{status}: {quality}, {wall:.1f} s; report: {path}"
    if code:
        if code == 3:
            print(f"meganet segment: the report could not be written to {os.path.abspath(out)}; it is at {path}",
                  file=sys.stderr, flush=True)
        elif status != "completed":
            print(f"meganet segment: {message}", file=sys.stderr, flush=True)
        print(line, file=sys.stderr, flush=True)
    else:
        print(line, flush=True)
    return SegmentOutcome(path=path, summary=summary, exit_code=code, rows=rows)
