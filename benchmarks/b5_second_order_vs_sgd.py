"""B5 ``second_order_vs_sgd``: GNvpro and other second-order solvers against SGD and Adam, at equal work.

The study of issue 10 (``benchmarks/README.md``, section "Workloads", B5).
Every method stops on the same budget of *work units* (forward + adjoint
passes through the network over the training set, Newman, Ruthotto, Hart &
van Bloemen Waanders, "Train like a (Var)Pro", 2020: SGD/Adam 2 per epoch,
GNvpro 2 + 2r per iteration of rank r; inner classifier solves pass through no
network and count nothing) — never on wall-clock time.  Validation and
training-loss evaluations for the curves are made in the callback, outside the
counted work and outside the measured time.

Problems (all generated here; scaled-down choices next to the paper's):

=========  ===========================================================================================
cdr        CDR-like surrogate (:func:`meganet.data.cdr`): y ∈ R⁵⁵ → c ∈ R⁷², 400 / 200 / 200 (paper
           800 samples split the same way), least squares; dense opening 55 → 8 and antisymmetric RK4
           ResNet (γ = 1e-4, T = 1), **single level with 8 steps** (paper: multilevel 2 → 4 → 8),
           α₁ = α₂ = 1e-10 (paper), budget 600 work units (paper: 200 per level × 3 levels).
dcr        DCR-like surrogate (:func:`meganet.data.dcr`): y ∈ R³ → c ∈ R⁸⁸², generated 8000 / 1000 /
           1000 (paper), targets centred by the mean of the 8000; **the study trains on the first 2000**
           (one run on 8000 took 200–250 s on the shared 2-core machine, too long for 5 seeds × 7
           methods), validates on the 1000; width 16, 8 RK4 steps, single level; budget 600 work units
           (paper: 400 per level × 3); mini-batches of 128.
peaks      Haber & Ruthotto 2017 §6.3 peaks, 5 classes, 2000 / 500 examples, softmax cross-entropy;
           width 8, 8 RK4 steps, T = 1; α₁ = 1e-4 (weight decay), classifier weight decay 1e-3
           (VarPro needs α₂ > 0 for cross-entropy); budget 600.
digits     an image problem: scikit-learn's 8×8 digits (1797 images, 64 pixels scaled to [0, 1];
           1000 / 397 / 400), 10 classes, cross-entropy; dense opening 64 → 16, 4 RK4 steps, T = 1,
           same regularization as peaks; budget 600.  (MNIST once the data loaders of the data-set
           issue exist.)
=========  ===========================================================================================

Methods (same initial θ per seed for all; the joint methods start with the
same initial classifier ``w0``):

* ``gnvpro`` — :func:`meganet.optimizers.minimize_gnvpro` on the reduced
  objective (:class:`meganet.objectives.VarProObjective`): Gauss-Newton–Krylov
  trust region with the implicit Jacobian, rank ≤ 20, Meganet.m trnewton radius rule;
* ``gn`` — Gauss-Newton-CG with Armijo line search on the joint (θ, w) problem (no VarPro, ≤ 20 CG steps);
* ``trn`` — Gauss-Newton–Krylov trust region on the joint problem (Lanczos, ≤ 20);
* ``lbfgs`` and ``lbfgs_vpro`` — L-BFGS (memory 10, Wolfe) on the joint and on the reduced problem;
* ``sgd`` (momentum 0.9) and ``adam`` — mini-batches (size per problem below), learning rate from a grid
  (:data:`LR_GRID`) chosen on the validation metric of seed 0 at the same budget.

Output (``--out``, default ``benchmarks/results/b5-<date>``; the committed
results are in ``benchmarks/results/b5``): ``results.jsonl`` (one JSON line per
run), ``lr_grid.jsonl``, ``curves.json``, ``table.md`` (per problem and method:
median and range of the final training loss and validation metric, work units
and seconds to reach the targets), ``b5_<problem>.png`` (training loss and
validation metric vs. work units and vs. seconds: median line, min–max band).

Targets (post hoc, stated): for each problem, ``L*`` = the lowest training
loss reached by any run and ``L0`` = the median initial training loss of the
joint (non-VarPro) runs (the same initial θ and w for every method);
"coarse" = ``sqrt(L0 · L*)`` (half-way on a log scale), "fine" = ``2 L*``;
reported as work units and seconds to first reach them ("–" if never).
VarPro runs start at ``w(θ0)``, the optimal classifier for the initial
features, so they may start below the coarse target (0 work units).

Usage::

    python benchmarks/b5_second_order_vs_sgd.py [--problems cdr dcr peaks digits] [--seeds 5] [--jobs 2]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import cpu_name, limit_threads  # noqa: E402

limit_threads(1)  # one thread per run; runs go in parallel (--jobs)

import numpy as np  # noqa: E402

WORKLOAD = "second_order_vs_sgd"
METHODS = ("gnvpro", "gn", "trn", "lbfgs", "lbfgs_vpro", "sgd", "adam")
VARPRO = ("gnvpro", "lbfgs_vpro")
LR_GRID = {"sgd": (0.3, 0.1, 0.03, 0.01), "adam": (0.03, 0.01, 0.003, 0.001)}

#: Training samples of the DCR-like problem used by the study (of the generator's 8000).
DCR_TRAIN = 2000

PROBLEMS = {
    "cdr": dict(kind="regression", width=8, n_steps=8, final_time=1.0, gamma=1e-4, weight_decay=1e-10,
                alpha_w=1e-10, budget=600.0, batch=32),
    "dcr": dict(kind="regression", width=16, n_steps=8, final_time=1.0, gamma=1e-4, weight_decay=1e-10,
                alpha_w=1e-10, budget=600.0, batch=128),
    "peaks": dict(kind="classification", width=8, n_steps=8, final_time=1.0, gamma=1e-4, weight_decay=1e-4,
                  alpha_w=1e-3, budget=600.0, batch=64),
    "digits": dict(kind="classification", width=16, n_steps=4, final_time=1.0, gamma=1e-4, weight_decay=1e-4,
                   alpha_w=1e-3, budget=600.0, batch=64),
}


# ---------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=None)
def load_data(name):
    """``dict(Y_train, C_train, Y_val, C_val, n_out, name)`` (fixed for all seeds)."""
    if name == "cdr":
        from meganet.data import cdr

        d = cdr(800, n_train=400, n_val=200, seed=0, progress=False)
        return dict(Y_train=d.Y_train, C_train=d.C_train, Y_val=d.Y_val, C_val=d.C_val, n_out=d.n_outputs,
                    name=d.name)
    if name == "dcr":
        from meganet.data import dcr

        d = dcr(10000, n_train=8000, n_val=1000, seed=0, progress=False)
        n = DCR_TRAIN  # a subset of the 8000 training samples (time: see the module docstring)
        return dict(Y_train=d.Y_train[:n], C_train=d.C_train[:n], Y_val=d.Y_val, C_val=d.C_val, n_out=d.n_outputs,
                    name=d.name)
    if name == "peaks":
        from meganet.data import peaks

        d = peaks(2500, val_fraction=0.2, seed=0)
        return dict(Y_train=d.Y_train, C_train=d.C_train, Y_val=d.Y_val, C_val=d.C_val, n_out=d.n_classes,
                    name="peaks")
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:  # pragma: no cover - optional benchmark dependency
            raise SystemExit("the digits problem needs scikit-learn (pip install scikit-learn); "
                             "run with --problems cdr dcr peaks to skip it") from err
        X, y = load_digits(return_X_y=True)
        perm = np.random.default_rng(0).permutation(len(y))
        X, y = X[perm] / 16.0, y[perm].astype(np.int64)
        return dict(Y_train=X[:1000], C_train=y[:1000], Y_val=X[1000:1397], C_val=y[1000:1397], n_out=10,
                    name="sklearn digits 8x8")
    raise ValueError(f"unknown problem {name!r}; expected one of {sorted(PROBLEMS)}")


# ---------------------------------------------------------------------------- one run
def _model(name, data):
    from meganet.report import build_model, model_spec

    p = PROBLEMS[name]
    spec = model_spec(network="antisym_rk4", opening="dense", n_inputs=data["Y_train"].shape[1], width=p["width"],
                      n_steps=p["n_steps"], final_time=p["final_time"], gamma=p["gamma"],
                      loss="least_squares" if p["kind"] == "regression" else "softmax", n_outputs=data["n_out"])
    return build_model(spec)


def _metric(model, theta, w, Y, C, kind):
    """Validation metric: mean per-sample relative error (regression) or accuracy (classification)."""
    if kind == "regression":
        from meganet.plotting.observables import relative_errors

        return float(np.mean(relative_errors(model.predict(theta, w, Y), C)))
    F = model.output(theta, Y)
    return float(model.loss.accuracy(F, w, C))


def run_one(name, method, seed, lr=None, krylov_dim=20):
    """Train once; returns a record with the curve (work units, seconds, training loss, validation metric).
    ``krylov_dim``: the Krylov dimension (rank of the Gauss-Newton model) of gnvpro and trn."""
    from meganet import optimizers as opt
    from meganet.objectives import NetworkObjective, VarProObjective
    from meganet.regularizers import Tikhonov

    p = PROBLEMS[name]
    data = load_data(name)
    model = _model(name, data)
    rng = np.random.default_rng(seed)
    theta0 = model.network.init_theta(rng=rng)
    w0 = model.init_w(rng=rng)
    Y = model.features(data["Y_train"])
    Yv = model.features(data["Y_val"])
    kw = dict(regularizer=Tikhonov(model.network.n_theta, alpha=p["weight_decay"]),
              classifier_regularizer=Tikhonov(model.loss.n_w, alpha=p["alpha_w"]), rng=seed)
    if method in VARPRO:
        obj = VarProObjective(model.network, model.loss, Y, data["C_train"], **kw)
        x0 = theta0.copy()
    else:
        batch = p["batch"] if method in ("sgd", "adam") else None
        obj = NetworkObjective(model.network, model.loss, Y, data["C_train"], batch_size=batch, **kw)
        x0 = np.concatenate([theta0, w0])
    budget = p["budget"]
    curve = dict(work_units=[], time=[], loss=[], val_metric=[])
    clock = dict(t0=0.0, excluded=0.0)

    def record(x):
        t_now = time.perf_counter()
        theta, w = obj.split(x)
        F = model.output(theta, data["Y_train"])
        loss = float(model.loss.value(F, np.asarray(w), data["C_train"]))
        curve["work_units"].append(float(obj.counter.work_units))
        curve["time"].append(t_now - clock["t0"] - clock["excluded"])
        curve["loss"].append(loss)
        curve["val_metric"].append(_metric(model, theta, np.asarray(w), data["Y_val"], data["C_val"], p["kind"]))
        clock["excluded"] += time.perf_counter() - t_now

    common = dict(max_work_units=budget)
    if method == "gnvpro":
        fn, opts = opt.minimize_gnvpro, dict(max_iter=100000, krylov_dim=krylov_dim, gtol=1e-14)
    elif method == "gn":
        fn, opts = opt.minimize_newton_cg, dict(max_iter=100000, cg_max_iter=20, gtol=1e-14)
    elif method == "trn":
        fn, opts = opt.minimize_trust_region_krylov, dict(max_iter=100000, krylov_dim=krylov_dim, gtol=1e-14)
    elif method in ("lbfgs", "lbfgs_vpro"):
        fn, opts = opt.minimize_lbfgs, dict(max_iter=100000, gtol=1e-14)
    elif method == "sgd":
        fn, opts = opt.minimize_sgd, dict(learning_rate=lr, momentum=0.9, n_epochs=100000, rng=seed)
    elif method == "adam":
        fn, opts = opt.minimize_adam, dict(learning_rate=lr, n_epochs=100000, rng=seed)
    else:
        raise ValueError(f"unknown method {method!r}")
    clock["t0"] = time.perf_counter()
    record(x0)
    res = fn(obj, x0, callback=lambda x, row: record(x), **opts, **common)
    wall = time.perf_counter() - clock["t0"] - clock["excluded"]
    inner = getattr(obj, "inner_stats", None)
    return dict(workload=WORKLOAD, problem=name, method=method, seed=seed, lr=lr, solver=res.solver,
                status=res.status.value, message=res.message, iterations=int(res.nit),
                work_units=float(obj.counter.work_units), seconds=wall, budget=budget,
                final_loss=curve["loss"][-1], final_val_metric=curve["val_metric"][-1],
                metric="val_rel_error" if p["kind"] == "regression" else "val_accuracy",
                inner_stats=dict(inner) if inner else None, curve=curve)


def _run_star(args):
    try:
        return run_one(*args)
    except Exception as err:  # noqa: BLE001 - one failed run is reported, the study goes on
        name, method, seed = args[:3]
        return dict(workload=WORKLOAD, problem=name, method=method, seed=seed, lr=args[3] if len(args) > 3 else None,
                    status="error", message=f"{type(err).__name__}: {err}", curve=None)


# ---------------------------------------------------------------------------- analysis
def _better(kind):
    return (lambda a, b: a < b) if kind == "regression" else (lambda a, b: a > b)


def first_reach(curve, key, target, lower_is_better=True):
    """Work units and seconds at the first record reaching ``target`` (None, None if never)."""
    for wu, t, v in zip(curve["work_units"], curve["time"], curve[key]):
        if v is not None and math.isfinite(v) and ((v <= target) if lower_is_better else (v >= target)):
            return wu, t
    return None, None


def step_on_grid(xs, ys, grid):
    """The last recorded value at or before each grid point (NaN before the first)."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    idx = np.searchsorted(xs, grid, side="right") - 1
    out = np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.nan)
    return out


def summarize(records, out):
    """table.md and the plots."""
    from meganet.plotting._mpl import new_figure, save_figure

    lines = []
    by_prob = {}
    for r in records:
        if r.get("curve"):
            by_prob.setdefault(r["problem"], []).append(r)
    colors = dict(gnvpro="#D55E00", gn="#0072B2", trn="#56B4E9", lbfgs="#009E73", lbfgs_vpro="#CC79A7",
                  sgd="#000000", adam="#E69F00")
    for prob, recs in by_prob.items():
        kind = PROBLEMS[prob]["kind"]
        lstar = min(min(v for v in r["curve"]["loss"] if math.isfinite(v)) for r in recs)
        l0 = float(np.median([r["curve"]["loss"][0] for r in recs if r["method"] not in VARPRO]))
        targets = dict(coarse=math.sqrt(l0 * lstar), fine=2.0 * lstar)
        metric_name = "validation mean relative error" if kind == "regression" else "validation accuracy"
        lines += [f"### {prob} (budget {PROBLEMS[prob]['budget']:g} work units; L0 = {l0:.3e}, L* = {lstar:.3e}, "
                  f"targets: coarse sqrt(L0 L*) = {targets['coarse']:.3e}, fine 2 L* = {targets['fine']:.3e})", "",
                  f"| method | runs | final training loss, median [min, max] | {metric_name}, median [min, max] | "
                  "work units to coarse / fine, median (reached) | seconds to coarse / fine, median | "
                  "seconds for the budget, median |",
                  "|---|---|---|---|---|---|---|"]
        fig, axes = new_figure(nrows=2, ncols=2, figsize=(12.0, 8.0))
        for method in METHODS:
            rs = [r for r in recs if r["method"] == method]
            if not rs:
                continue
            fl = np.array([r["final_loss"] for r in rs])
            fm = np.array([r["final_val_metric"] for r in rs])
            cells = []
            for key in ("coarse", "fine"):
                hits = [first_reach(r["curve"], "loss", targets[key]) for r in rs]
                wu = [h[0] for h in hits if h[0] is not None]
                cells.append((f"{np.median(wu):.0f} ({len(wu)}/{len(rs)})" if wu else f"– (0/{len(rs)})",
                              f"{np.median([h[1] for h in hits if h[1] is not None]):.2f}" if wu else "–"))
            secs = np.median([r["seconds"] for r in rs])
            lr = rs[0].get("lr")
            label = method + (f" (lr {lr:g})" if lr else "")
            lines.append(f"| {label} | {len(rs)} | {np.median(fl):.3e} [{fl.min():.3e}, {fl.max():.3e}] | "
                         f"{np.median(fm):.4f} [{fm.min():.4f}, {fm.max():.4f}] | {cells[0][0]} / {cells[1][0]} | "
                         f"{cells[0][1]} / {cells[1][1]} | {secs:.1f} |")
            for j, xkey in enumerate(("work_units", "time")):
                xmax = max(max(r["curve"][xkey]) for r in rs)
                grid = np.linspace(0.0, xmax, 200)
                for i, ykey in enumerate(("loss", "val_metric")):
                    Yg = np.array([step_on_grid(r["curve"][xkey], r["curve"][ykey], grid) for r in rs])
                    with np.errstate(all="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # grid points before a run's first record
                        med = np.nanmedian(Yg, axis=0)
                        lo, hi = np.nanmin(Yg, axis=0), np.nanmax(Yg, axis=0)
                    ax = axes[i, j]
                    ax.plot(grid, med, "-", color=colors[method], lw=1.6, label=label)
                    ax.fill_between(grid, lo, hi, color=colors[method], alpha=0.15, lw=0)
        for i, ylab in enumerate(("training loss (data term)", metric_name)):
            for j, xlab in enumerate(("work units (forward + adjoint passes)", "seconds (excluding evaluations)")):
                ax = axes[i, j]
                if i == 0 or kind == "regression":
                    ax.set_yscale("log")
                ax.set_xlabel(xlab)
                ax.set_ylabel(ylab)
                ax.grid(True, which="both", alpha=0.3)
        axes[0, 0].legend(fontsize=8)
        fig.suptitle(f"B5 {prob}: median over {len(set(r['seed'] for r in recs))} seeds, band = min–max")
        fig.tight_layout()
        save_figure(fig, os.path.join(out, f"b5_{prob}.png"))
        lines.append("")
    with open(os.path.join(out, "table.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..S-1 (default 5)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel runs (one thread each; default 2)")
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/results/b5-<date>-<time>)")
    ap.add_argument("--summarize", metavar="DIR", default=None,
                    help="only rebuild table.md and the plots of DIR from its results.jsonl and curves.json")
    ap.add_argument("--lr", nargs=2, action="append", metavar=("METHOD", "LR"), default=None,
                    help="skip the grid search for METHOD and use LR (e.g. --lr sgd 0.1)")
    args = ap.parse_args(argv)
    if args.summarize:
        with open(os.path.join(args.summarize, "results.jsonl")) as fh:
            recs = [json.loads(line) for line in fh if line.strip()]
        with open(os.path.join(args.summarize, "curves.json")) as fh:
            curves = {(c["problem"], c["method"], c["seed"]): c["curve"] for c in json.load(fh)}
        for r in recs:
            r["curve"] = curves.get((r["problem"], r["method"], r["seed"]))
        print(summarize(recs, args.summarize))
        return
    out = args.out or os.path.join("benchmarks", "results",
                                   "b5-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    import multiprocessing as mp

    header = dict(workload=WORKLOAD, cpu=cpu_name(), load_before=os.getloadavg(), jobs=args.jobs,
                  seeds=args.seeds, problems=args.problems, methods=args.methods, lr_grid=LR_GRID,
                  started=datetime.datetime.now().isoformat(timespec="seconds"))
    print(json.dumps(header), flush=True)
    for name in args.problems:  # generate (or load) the data once, before the workers start
        load_data(name)
    fixed = {m: float(v) for m, v in (args.lr or [])}
    ctx = mp.get_context("fork")
    with ctx.Pool(args.jobs) as pool:
        # 1. learning rates: the grid on seed 0, best validation metric at the budget
        grid_jobs = [(n, m, 0, lr) for n in args.problems for m in ("sgd", "adam") if m in args.methods
                     and m not in fixed for lr in LR_GRID[m]]
        chosen = {}
        with open(os.path.join(out, "lr_grid.jsonl"), "w") as fh:
            for rec in pool.imap_unordered(_run_star, grid_jobs):
                light = {k: v for k, v in rec.items() if k != "curve"}
                print(json.dumps(light), flush=True)
                fh.write(json.dumps(light) + "\n")
                if rec.get("curve") is None or not math.isfinite(rec.get("final_val_metric", math.nan)):
                    continue
                key = (rec["problem"], rec["method"])
                better = _better(PROBLEMS[rec["problem"]]["kind"])
                if key not in chosen or better(rec["final_val_metric"], chosen[key][1]):
                    chosen[key] = (rec["lr"], rec["final_val_metric"])
        # 2. the study
        jobs = []
        for n in args.problems:
            for m in args.methods:
                lr = fixed.get(m, chosen.get((n, m), (None,))[0]) if m in ("sgd", "adam") else None
                jobs += [(n, m, s, lr) for s in range(args.seeds)]
        records = []
        with open(os.path.join(out, "results.jsonl"), "w") as fh:
            for rec in pool.imap_unordered(_run_star, jobs):
                light = {k: v for k, v in rec.items() if k != "curve"}
                print(json.dumps(light), flush=True)
                fh.write(json.dumps(light) + "\n")
                records.append(rec)
    with open(os.path.join(out, "curves.json"), "w") as fh:
        json.dump([dict(problem=r["problem"], method=r["method"], seed=r["seed"], curve=r["curve"])
                   for r in records if r.get("curve")], fh)
    footer = dict(workload=WORKLOAD, finished=datetime.datetime.now().isoformat(timespec="seconds"),
                  load_after=os.getloadavg(), lr_chosen={f"{k[0]}/{k[1]}": v[0] for k, v in chosen.items()})
    with open(os.path.join(out, "run.json"), "w") as fh:
        json.dump(dict(header=header, footer=footer), fh, indent=1)
    print(json.dumps(footer), flush=True)
    print(summarize(records, out))


if __name__ == "__main__":
    main()
