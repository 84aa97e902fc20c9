"""Command line: ``meganet train [options]`` (also ``python -m meganet train``).

With no options it trains the setting of Haber & Ruthotto 2017 §6.3 (peaks,
5 classes, tanh, ``T = 5``): the 2-D input lifted to width 16 by a tanh layer,
an antisymmetric ResNet trained multilevel in depth (8 → 16 → 32 steps, each
level warm-started from the prolongated weights of the previous one,
:func:`meganet.training.train_multilevel`) by Gauss-Newton-PCG (100
iterations per level, the Gauss-Newton products on a random quarter of the
examples), prints the solvers' iteration tables and writes a report folder
(see :mod:`meganet.report`) under ``./runs/``.  On 2 cores this takes about
one to two minutes and reaches about 98.8 % validation accuracy (seeds 0–2:
98.8–99.2 %; the paper reports 98.8–99.1 %).

Exit status: 0 on success; 1 when the run stopped because values became
NaN/Inf (the report of the last good iterate is still written, and the
status and message are in ``summary.json``); 2 for bad options (argparse);
130 when interrupted by Ctrl-C (a report of the last iterate is written).

Use it from Python as ``meganet.cli.main(["train", "--data", "swiss_roll"])``
(returns the exit status) or through :func:`train` with a :class:`TrainConfig`.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np

__all__ = ["main", "build_parser", "TrainConfig", "TrainOutcome", "train", "network_regularizer", "DATASETS", "SOLVERS",
           "DEFAULTS"]

DATASETS = ("peaks", "swiss_roll", "ellipses")
SOLVERS = ("gn", "trn", "gnvpro", "lbfgs", "sgd", "adam", "steihaug")
_SOLVER_NAMES = {
    "gn": "Gauss-Newton-PCG (Armijo line search)",
    "trn": "Newton-Krylov trust region (Lanczos)",
    "steihaug": "trust-region Gauss-Newton with Steihaug-CG",
    "gnvpro": "GNvpro: Gauss-Newton-PCG on the reduced (variable projection) objective",
    "lbfgs": "L-BFGS (Wolfe line search)",
    "sgd": "SGD with momentum",
    "adam": "Adam",
}
#: Statuses after which the run counts as failed (non-zero exit).
FAILED_STATUSES = ("non_finite", "error")


@dataclass
class TrainConfig:
    """Everything a training run depends on (the command-line options).

    ``None`` entries take the per-data-set defaults of :data:`DEFAULTS`.
    """

    data: str = "peaks"
    network: str = "antisym"
    solver: str = "gn"
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
        d.update(DEFAULTS["solver"].get(self.solver, {}))
        values = asdict(self)
        for k, v in values.items():
            if v is None and k in d:
                values[k] = d[k]
        out = TrainConfig(**values)
        return out._validated() if validate else out

    def _validated(self):
        from .core.validation import check_int, check_option, check_positive

        check_option("data", self.data, DATASETS)
        check_option("network", self.network, ("antisym", "verlet", "resnet", "leapfrog"))
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
        if not 0.0 < self.hessian_fraction <= 1.0:
            raise ValueError(f"hessian_fraction must lie in (0, 1], got {self.hessian_fraction!r}")
        if self.steps % 2 ** (self.levels - 1):
            raise ValueError(f"steps = {self.steps} must be divisible by 2^(levels-1) = {2 ** (self.levels - 1)} "
                             f"for levels = {self.levels} (each level doubles the number of steps)")
        return self


#: Defaults: common, per data set, per solver (tuned on the peaks problem, seeds 0-2).
DEFAULTS = {
    "common": dict(width=16, opening="dense", gamma=0.0, alpha=1e-3, weight_decay=1e-4, alpha_w=1e-3, cg_iter=20,
                   precond=False, hessian_fraction=0.25, batch_size=64, lr=None, steps=32, levels=3,
                   final_time=5.0, max_iter=50),
    "peaks": dict(n_train=5000, max_iter=100),
    "swiss_roll": dict(n_train=512),
    "ellipses": dict(n_train=2000),
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
def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return v


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a non-negative finite number, got {text!r}")
    return v


def _fraction(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return v


def build_parser():
    """The ``argparse`` parser of the ``meganet`` command."""
    parser = argparse.ArgumentParser(
        prog="meganet",
        description="Deep neural networks as discretized ODEs, trained as PDE-constrained optimization.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    tr = sub.add_parser(
        "train", help="train a stable network on a 2-D problem and write a report folder",
        description=("Train a network on a 2-D classification problem (Haber & Ruthotto 2017, §6) and write a "
                     "report folder: parameters (params.npz + model.json, load with meganet.report.load_run), "
                     "history (CSV, JSON), decision-region and convergence plots, summary.json. Defaults: "
                     "peaks, antisymmetric ResNet, width 16, T = 5, multilevel 8 -> 16 -> 32 steps, Gauss-Newton-PCG."))
    tr.set_defaults(_parser=tr)
    g = tr.add_argument_group("problem")
    g.add_argument("--data", choices=DATASETS, default="peaks",
                   help="data set: peaks (5 classes, §6.3; default), swiss_roll (2 spirals), ellipses "
                        "(concentric rings)")
    g.add_argument("--n-train", type=_positive_int, default=None, metavar="N",
                   help="number of training examples (validation: as many again for the swiss roll, a quarter "
                        "for the others); default per data set (peaks 5000, swiss_roll 512, ellipses 2000)")
    g.add_argument("--seed", type=_nonneg_int, default=0,
                   help="seed of the data and of the initial weights (default 0)")
    g = tr.add_argument_group("network")
    g.add_argument("--network", choices=("antisym", "verlet", "resnet", "leapfrog"), default="antisym",
                   help="time-stepping block: antisymmetric ResNet (eq. 4.12), Hamiltonian Verlet (eq. 4.17), "
                        "plain ResNet, leapfrog (eq. 4.16); default antisym")
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
    g.add_argument("--solver", choices=SOLVERS, default="gn",
                   help="gn: Gauss-Newton-PCG; trn: Newton-Krylov trust region; steihaug: trust region with "
                        "Steihaug-CG; gnvpro: GN-PCG on the variable-projection objective; lbfgs; sgd; adam "
                        "(default gn)")
    g.add_argument("--max-iter", type=_nonneg_int, default=None, metavar="K",
                   help="iterations per level (epochs for sgd/adam); default 100 for peaks, 50 otherwise")
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
    g.add_argument("--out", default=None, metavar="DIR",
                   help="report folder (default ./runs/<data>-<network>-<solver>-<timestamp>); an existing folder "
                        "is only replaced with --overwrite")
    g.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    g.add_argument("--no-plots", dest="plots", action="store_false", help="do not draw the PNG plots")
    g.add_argument("--quiet", action="store_true", help="print only the final summary line")
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
    if res.data == "swiss_roll" and res.n_train < 2:
        tr.error(f"--n-train {res.n_train} is too small for the swiss roll (need >= 2)")
    if res.out is not None and os.path.lexists(res.out) and not res.overwrite:
        tr.error(f"--out {res.out!r} already exists; choose another folder or pass --overwrite")
    try:
        return res._validated()
    except ValueError as err:
        tr.error(str(err))


def main(argv=None):
    """Entry point of ``meganet`` / ``python -m meganet``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        cfg = _config_from_args(args)
        return train(cfg).exit_code
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first


# ---------------------------------------------------------------------------- the training run
def _make_data(cfg):
    from .data import ellipses, peaks, swiss_roll

    n = cfg.n_train
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
    if cfg.solver == "gnvpro":
        return objectives.VarProObjective(model.network, model.loss, Y, data.C_train, rng=rng, **kw)
    batch = cfg.batch_size if cfg.solver in ("sgd", "adam") else None
    return objectives.NetworkObjective(model.network, model.loss, Y, data.C_train, batch_size=batch, rng=rng, **kw)


def _solver(cfg, rng):
    """The solver function of ``cfg.solver`` and its options (per level)."""
    from . import optimizers as opt

    k = cfg.max_iter
    if cfg.solver in ("gn", "gnvpro"):
        return opt.minimize_newton_cg, dict(max_iter=k, cg_max_iter=cfg.cg_iter, gtol=1e-8)
    if cfg.solver == "trn":
        return opt.minimize_trust_region_krylov, dict(max_iter=k, krylov_dim=cfg.cg_iter, gtol=1e-8)
    if cfg.solver == "steihaug":
        return opt.minimize_trust_region_steihaug, dict(max_iter=k, cg_max_iter=cfg.cg_iter, gtol=1e-8)
    if cfg.solver == "lbfgs":
        return opt.minimize_lbfgs, dict(max_iter=k, gtol=1e-8)
    if cfg.solver == "sgd":
        return opt.minimize_sgd, dict(learning_rate=cfg.lr, momentum=0.9, n_epochs=k, rng=rng, eval_full=True)
    return opt.minimize_adam, dict(learning_rate=cfg.lr, n_epochs=k, rng=rng, eval_full=True)


def _split(cfg, objective, x):
    """``(θ, w)`` of a solver iterate (VarPro: ``w = w(θ)``, the eliminated classifier)."""
    return objective.split(x)


def _metrics(model, theta, w, Y, C):
    """Loss (data term only) and accuracy of the model on raw inputs ``Y`` (not counted as work)."""
    F = model.output(theta, Y)
    w = np.asarray(w, dtype=model.dtype)
    return float(model.loss.value(F, w, C)), float(model.loss.accuracy(F, w, C))


def _default_out(cfg):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{cfg.data}-{cfg.network}-{cfg.solver}-{stamp}")


def train(cfg):
    """Run the training described by ``cfg`` (a :class:`TrainConfig`) and write the report folder.

    The levels run through :func:`meganet.training.train_multilevel`; a
    solver callback records the validation loss and accuracy of every iterate
    (not counted as work) and keeps the last finite iterate, which is saved
    if the run fails or is interrupted.

    Returns
    -------
    TrainOutcome
        ``exit_code`` 0 (success), 1 (NaN/Inf, or an error raised inside the
        solver; the report holds the last good iterate) or 130 (interrupted).
    """
    from .optimizers import History
    from .report import Model, build_model, model_spec, save_run, unique_path
    from .training import time_stepping_blocks, train_multilevel

    cfg = cfg.resolved()
    say = (lambda *a: None) if cfg.quiet else (lambda *a: print(*a, flush=True))
    dtype = np.dtype(cfg.dtype)
    out = cfg.out if cfg.out is not None else unique_path(_default_out(cfg))
    if os.path.lexists(out) and not cfg.overwrite:
        raise FileExistsError(f"report folder {out!r} already exists; choose another --out or pass --overwrite")

    data = _make_data(cfg)
    steps = _level_steps(cfg)
    spec = model_spec(network=cfg.network, opening=cfg.opening, n_inputs=data.Y_train.shape[1], width=cfg.width,
                      n_steps=steps[0], final_time=cfg.final_time, gamma=cfg.gamma, loss="softmax",
                      n_outputs=data.n_classes, dtype=cfg.dtype)
    model0 = build_model(spec)
    rng = np.random.default_rng(cfg.seed)
    theta0 = model0.network.init_theta(rng=rng, dtype=dtype)
    w0 = model0.init_w(rng=rng)
    say(f"meganet train: {data.name} ({data.Y_train.shape[0]} training / {data.Y_val.shape[0]} validation examples, "
        f"{data.n_classes} classes), {cfg.network} network of width {cfg.width}, T = {cfg.final_time:g}, "
        f"levels {steps} steps, solver {cfg.solver} ({_SOLVER_NAMES[cfg.solver]})")

    levels = {}  # n_steps -> (model, objective)
    last = {"model": model0, "theta": theta0, "w": w0}
    val = {}  # (n_steps, row time) -> validation (loss, accuracy)

    def make_objective(net):
        N = time_stepping_blocks(net)[0].n_steps
        model = Model(spec=dict(spec, n_steps=N), network=net, loss=model0.loss)
        obj = _objective(cfg, model, data, rng=rng)
        levels[N] = (model, obj)
        say(f"-- level {len(levels)}/{len(steps)}: {N} steps, h = {cfg.final_time / N:g}, "
            f"{net.n_theta} network weights + {model.loss.n_w} classifier weights")
        return obj

    def callback(x, row):
        model, obj = levels[row["n_steps"]]
        th, ww = obj.split(x)
        if not (np.all(np.isfinite(th)) and np.all(np.isfinite(ww))):
            return
        last.update(model=model, theta=th.copy(), w=ww.copy())
        val[(row["n_steps"], row.get("time"))] = _metrics(model, th, ww, data.Y_val, data.C_val)

    fn, options = _solver(cfg, rng)
    x0 = theta0
    if cfg.solver != "gnvpro":
        x0 = np.concatenate([theta0, w0])
    status, message, interrupted, result = "completed", "", False, None
    t_start = time.perf_counter()
    try:
        result = train_multilevel(make_objective, model0.network, x0, levels=steps, solver=fn,
                                  solver_options=options, callback=callback, verbose=not cfg.quiet)
    except KeyboardInterrupt:
        status, interrupted = "interrupted", True
        message = "interrupted by the user (Ctrl-C); the last iterate is saved"
    except (ValueError, FloatingPointError, ArithmeticError) as err:
        status, message = "error", f"{type(err).__name__} raised during training: {err}"
    wall = time.perf_counter() - t_start

    history = History()
    level_results = []
    if result is not None:
        for lev in result.levels:
            model, obj = levels[lev.n_steps]
            res = lev.result
            level_results.append(dict(n_steps=lev.n_steps, status=res.status.value, message=res.message,
                                      fun=res.fun, nit=res.nit, work_units=res.work_units,
                                      wall_time_s=res.wall_time))
        work_offset = time_offset = 0.0
        for lev in result.levels:
            model, obj = levels[lev.n_steps]
            for i, row in enumerate(lev.result.history):
                if i == 0:  # the starting point of the level (recorded without a callback)
                    th0, ww0 = obj.split(lev.x0)
                    vl, va = _metrics(model, th0, ww0, data.Y_val, data.C_val)
                else:
                    vl, va = val.get((lev.n_steps, row.get("time")), (None, None))
                merged = dict(level=lev.level, n_steps=lev.n_steps)
                merged.update(row)
                if merged.get("f") is None:
                    merged["f"] = merged.get("f_batch")
                merged["work_units"] = work_offset + float(row.get("work_units") or 0.0)
                merged["time"] = time_offset + float(row.get("time") or 0.0)
                merged["val_loss"], merged["val_accuracy"] = vl, va
                history.append(merged)
            work_offset += float(lev.result.work_units)
            time_offset += float(lev.result.wall_time)
        final = result.levels[-1]
        model, obj = levels[final.n_steps]
        theta, w = obj.split(result.x)
        status, message = final.result.status.value, final.result.message
        # a failed coarse level stops nothing in train_multilevel; report the first failure
        for lev in result.levels:
            if lev.result.status.value in FAILED_STATUSES:
                status, message = lev.result.status.value, f"level with {lev.n_steps} steps: {lev.result.message}"
                break
        final_objective = float(final.result.fun)
        work_units = float(result.work_units)
    else:
        model, theta, w = last["model"], last["theta"], last["w"]
        final_objective = math.nan
        work_units = float(sum(obj.counter.work_units for _, obj in levels.values()))
    theta = np.asarray(theta)
    w = np.asarray(w)
    train_loss, train_acc = _metrics(model, theta, w, data.Y_train, data.C_train)
    val_loss, val_acc = _metrics(model, theta, w, data.Y_val, data.C_val)
    summary = dict(
        status=status, message=message, success=status not in FAILED_STATUSES and not interrupted,
        final_loss=train_loss, final_objective=final_objective, train_loss=train_loss, train_accuracy=train_acc,
        val_loss=val_loss, val_accuracy=val_acc, wall_time_s=wall, work_units=work_units,
        iterations=int(sum(r["nit"] for r in level_results)), levels=steps, n_steps=model.spec["n_steps"],
        solver=cfg.solver, solver_name=_SOLVER_NAMES[cfg.solver], data=data.name,
        n_train=int(data.Y_train.shape[0]), n_val=int(data.Y_val.shape[0]), n_classes=int(data.n_classes),
        network=spec["network"], n_theta=int(model.network.n_theta), n_w=int(model.loss.n_w), config=asdict(cfg),
        level_results=level_results, command=" ".join(["meganet"] + sys.argv[1:]),
        title=f"{data.name}: {spec['network']} network, solver {cfg.solver}",
    )
    path = save_run(out, model=model, theta=theta, w=w, history=history, summary=summary, data=data,
                    plots=cfg.plots, overwrite=cfg.overwrite)
    code = 130 if interrupted else (1 if status in FAILED_STATUSES else 0)
    line = (f"{status}: train accuracy {100 * train_acc:.2f} %, validation accuracy {100 * val_acc:.2f} %, "
            f"training loss {train_loss:.4e}, {work_units:g} work units, {wall:.1f} s; report: {path}")
    if code:
        print(f"meganet train: run failed ({status}): {message}", file=sys.stderr, flush=True)
        print(line, file=sys.stderr, flush=True)
    else:
        print(line, flush=True)
    return TrainOutcome(path=path, summary=summary, exit_code=code, theta=theta, w=w, history=history.to_dict())
