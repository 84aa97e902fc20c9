"""B5 ``second_order_vs_sgd``: second-order solvers against SGD and Adam.

Definition: ``benchmarks/README.md``, section "Workloads".

Two problems, one network, the same initial weights for every solver:

classification
    peaks, 5 classes (:func:`meganet.data.peaks`, Haber & Ruthotto 2017 §6.3):
    2000 training and 500 validation examples; softmax cross-entropy;
    validation metric: accuracy.
regression
    peaks regression: points uniform in ``[−3, 3]²``, target the value of the
    peaks function (:func:`meganet.data.peaks_function`), 2000 training and
    500 validation examples; least squares ``½/m ‖W F + μ − c‖²``;
    validation metric: relative error ``‖WF + μ − c‖ / ‖c‖``.

Network (both problems): a tanh layer lifting the 2-D input to width 16, an
antisymmetric ResNet with ``N = 16`` steps and ``T = 5``, tanh; regularizer
as ``meganet train`` (smoothness in time α = 1e-3, weight decay 1e-4 per
unit time, classifier weight decay 1e-3).

Solvers: ``gn`` Gauss-Newton-PCG (Armijo, ≤ 20 CG steps), ``trn``
Newton-Krylov trust region (Lanczos, subspace ≤ 20), ``gnvpro`` GN-PCG on the
variable-projection objective (classifier eliminated: Newton-Krylov inner
solve for cross-entropy, closed form via the SVD for least squares), ``lbfgs``
(memory 10, Wolfe), ``sgd`` (momentum 0.9, batch 64), ``adam`` (batch 64).
Full-batch solvers use the exact Gauss-Newton matrix (no subsampling) and no
preconditioner (the diagonal of the regularizer's Hessian slowed GN-PCG down
on these problems).

Cost: *work units* (Newman, Ruthotto, Hart & van Bloemen Waanders, "Train
like a (Var)Pro", 2020): forward plus adjoint passes over the training set,
counted by the objectives (a Gauss-Newton product counts 2, a mini-batch its
fraction).  Every solver runs until it has used ``--budget`` work units (or
``--max-time`` seconds).  After every iteration (every epoch for SGD/Adam)
the training loss (data term, full training set) and the validation metric
are evaluated *outside* the counted work and outside the measured time.

Loss targets (training data loss, a coarse and a fine one per problem):
classification ``0.2`` and ``0.05`` (mean cross-entropy), regression
``0.05`` and ``0.01`` (½ mean squared error; the targets have mean square
≈ 3.8, so relative errors of about 16 % and 7 %).  The targets were fixed
after a pilot run so that several solvers reach each of them.  Work units and seconds to reach them are reported; ``null`` when a
solver did not reach a target within the budget.

Output: one JSON line per (problem, solver) on stdout and in
``<out>/b5_results.jsonl``; the per-iteration curves in ``<out>/b5_curves.json``;
``<out>/b5_summary.json`` with the winners (first to the target in work
units and in seconds); plots ``<out>/b5_classification.png`` and
``<out>/b5_regression.png`` (loss and validation metric vs. work units and
wall time).  Times: the median over ``--reps`` repetitions (default 1: a
training run of a few seconds per solver; the workloads' ≥ 5 repetitions
apply to the kernel workloads B1–B4 and cost ``5×`` here); work units are
deterministic for a fixed seed.

Usage::

    python benchmarks/b5_second_order_vs_sgd.py [--out benchmarks/results/b5] [--budget 600] [--reps 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import cpu_name, emit, limit_threads  # noqa: E402

limit_threads()

import numpy as np  # noqa: E402

WORKLOAD = "second_order_vs_sgd"
SOLVERS = ("gn", "trn", "gnvpro", "lbfgs", "sgd", "adam")
#: Training-loss targets per problem: a coarse one and a fine one.
TARGETS = {"classification": (0.2, 0.05), "regression": (0.05, 0.01)}
N_TRAIN, N_VAL = 2000, 500
WIDTH, N_STEPS, FINAL_TIME = 16, 16, 5.0
ALPHA, WEIGHT_DECAY, ALPHA_W = 1e-3, 1e-4, 1e-3
LR = {"sgd": 0.05, "adam": 0.01}
BATCH = 64


# ---------------------------------------------------------------------------- problems
def make_problem(kind, seed):
    """Data, model and initial point of one problem (all draws from ``default_rng(seed)``)."""
    from meganet.data import peaks, peaks_function
    from meganet.report import build_model, model_spec

    rng = np.random.default_rng(seed)
    if kind == "classification":
        d = peaks(N_TRAIN + N_VAL, val_fraction=N_VAL / (N_TRAIN + N_VAL), seed=seed)
        Ytr, Ctr, Yva, Cva = d.Y_train, d.C_train, d.Y_val, d.C_val
        spec = model_spec(width=WIDTH, n_steps=N_STEPS, final_time=FINAL_TIME, loss="softmax", n_outputs=5)
    else:
        P = rng.uniform(-3, 3, (N_TRAIN + N_VAL, 2))
        c = peaks_function(P[:, 0], P[:, 1])[:, None]
        Ytr, Ctr, Yva, Cva = P[:N_TRAIN], c[:N_TRAIN], P[N_TRAIN:], c[N_TRAIN:]
        spec = model_spec(width=WIDTH, n_steps=N_STEPS, final_time=FINAL_TIME, loss="least_squares", n_outputs=1)
    model = build_model(spec)
    theta0 = model.network.init_theta(rng=rng)
    w0 = model.init_w(rng=rng)
    return dict(kind=kind, model=model, Y=model.features(Ytr), C=Ctr, Y_val=model.features(Yva), C_val=Cva,
                theta0=theta0, w0=w0)


def make_objective(prob, solver, seed):
    from meganet.cli import network_regularizer
    from meganet.objectives import NetworkObjective, VarProObjective
    from meganet.regularizers import Tikhonov

    model = prob["model"]
    kw = dict(regularizer=network_regularizer(model, ALPHA, WEIGHT_DECAY),
              classifier_regularizer=Tikhonov(model.loss.n_w, alpha=ALPHA_W), rng=seed, preconditioner=None)
    if solver == "gnvpro":
        return VarProObjective(model.network, model.loss, prob["Y"], prob["C"], **kw)
    batch = BATCH if solver in ("sgd", "adam") else None
    return NetworkObjective(model.network, model.loss, prob["Y"], prob["C"], batch_size=batch, **kw)


def run_solver(prob, solver, *, budget, max_time, seed):
    """One training run; returns the curve (columns) and the solver result."""
    from meganet import optimizers as opt

    obj = make_objective(prob, solver, seed)
    x0 = prob["theta0"].copy() if solver == "gnvpro" else np.concatenate([prob["theta0"], prob["w0"]])
    metric = "accuracy" if prob["kind"] == "classification" else "relative_error"
    curve = dict(iteration=[], work_units=[], time=[], loss=[], val_metric=[], val_loss=[])
    clock = dict(t0=0.0, excluded=0.0)

    def record(x, k):
        t_now = time.perf_counter()
        elapsed = t_now - clock["t0"] - clock["excluded"]
        m_tr = obj.metrics(x, prob["Y"], prob["C"])
        m_va = obj.metrics(x, prob["Y_val"], prob["C_val"])
        curve["iteration"].append(k)
        curve["work_units"].append(float(obj.counter.work_units))
        curve["time"].append(elapsed)
        curve["loss"].append(m_tr["loss"])
        curve["val_metric"].append(m_va[metric])
        curve["val_loss"].append(m_va["loss"])
        clock["excluded"] += time.perf_counter() - t_now
        return elapsed

    def callback(x, row):
        elapsed = record(x, len(curve["iteration"]))
        if obj.counter.work_units >= budget or elapsed >= max_time:
            raise StopIteration

    clock["t0"] = time.perf_counter()
    record(x0, 0)
    big = 100000
    if solver == "gn":
        res = opt.minimize_newton_cg(obj, x0, cg_max_iter=20, max_iter=big, gtol=1e-10, callback=callback)
    elif solver == "gnvpro":
        res = opt.minimize_newton_cg(obj, x0, cg_max_iter=20, max_iter=big, gtol=1e-10, callback=callback)
    elif solver == "trn":
        res = opt.minimize_trust_region_krylov(obj, x0, krylov_dim=20, max_iter=big, gtol=1e-10, callback=callback)
    elif solver == "lbfgs":
        res = opt.minimize_lbfgs(obj, x0, memory=10, max_iter=big, gtol=1e-10, callback=callback)
    elif solver == "sgd":
        res = opt.minimize_sgd(obj, x0, learning_rate=LR["sgd"], momentum=0.9, n_epochs=big, rng=seed,
                               callback=callback)
    else:
        res = opt.minimize_adam(obj, x0, learning_rate=LR["adam"], n_epochs=big, rng=seed, callback=callback)
    return curve, res


def to_target(curve, target):
    """(work units, seconds) of the first recorded point with training loss ≤ target, or (None, None)."""
    for wu, t, f in zip(curve["work_units"], curve["time"], curve["loss"]):
        if f is not None and f <= target:
            return wu, t
    return None, None


# ---------------------------------------------------------------------------- driver
def main(argv=None):
    p = argparse.ArgumentParser(description="B5 second_order_vs_sgd: GN-PCG, Newton-Krylov TR, GNvpro, L-BFGS, "
                                            "SGD and Adam from the same initial weights.")
    p.add_argument("--out", default=os.path.join("benchmarks", "results", "b5"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=float, default=600.0, help="work units per run (default 600)")
    p.add_argument("--max-time", type=float, default=60.0, help="seconds per run at most (default 60)")
    p.add_argument("--reps", type=int, default=1, help="repetitions per run; times are medians (default 1)")
    p.add_argument("--problems", default="classification,regression")
    p.add_argument("--solvers", default=",".join(SOLVERS))
    p.add_argument("--no-plots", dest="plots", action="store_false")
    args = p.parse_args(argv)
    problems = [s for s in args.problems.split(",") if s]
    solvers = [s for s in args.solvers.split(",") if s]
    for s in problems:
        if s not in TARGETS:
            p.error(f"--problems: unknown problem {s!r}; choose from {sorted(TARGETS)}")
    for s in solvers:
        if s not in SOLVERS:
            p.error(f"--solvers: unknown solver {s!r}; choose from {list(SOLVERS)}")
    if args.reps < 1:
        p.error(f"--reps must be >= 1, got {args.reps}")
    os.makedirs(args.out, exist_ok=True)

    records, curves, summary = [], {}, {"workload": WORKLOAD, "seed": args.seed, "budget_work_units": args.budget,
                                        "max_time_s": args.max_time, "reps": args.reps, "cpu": cpu_name(),
                                        "threads": 2, "targets": TARGETS, "problems": {}}
    with open(os.path.join(args.out, "b5_results.jsonl"), "w") as jsonl:
        for kind in problems:
            prob = make_problem(kind, args.seed)
            curves[kind] = {}
            per = {}
            for solver in solvers:
                times, reps = [], []
                for _ in range(args.reps):
                    curve, res = run_solver(prob, solver, budget=args.budget, max_time=args.max_time, seed=args.seed)
                    reps.append((curve, res))
                    times.append([to_target(curve, tg)[1] for tg in TARGETS[kind]])
                curve, res = reps[0]
                curves[kind][solver] = curve
                wu_t, t_t = [], []
                for i, tg in enumerate(TARGETS[kind]):
                    wu_t.append(to_target(curve, tg)[0])
                    ts = [t[i] for t in times]
                    t_t.append(float(np.median(ts)) if all(t is not None for t in ts) else None)
                rec = dict(workload=WORKLOAD, op=kind, engine=solver, device="cpu", dtype="float64",
                           median_s=t_t[-1], reps=args.reps, seed=args.seed, loss_targets=list(TARGETS[kind]),
                           work_units_to_target=wu_t, time_to_target_s=t_t,
                           final_loss=curve["loss"][-1], best_loss=min(curve["loss"]),
                           final_val_metric=curve["val_metric"][-1],
                           val_metric="accuracy" if kind == "classification" else "relative_error",
                           work_units=curve["work_units"][-1], time_s=curve["time"][-1],
                           iterations=len(curve["iteration"]) - 1, status=res.status.value)
                records.append(emit(rec))
                jsonl.write(json.dumps(rec) + "\n")
                jsonl.flush()
                per[solver] = rec
            firsts = []
            for i, tg in enumerate(TARGETS[kind]):
                by_wu = {s: r["work_units_to_target"][i] for s, r in per.items()
                         if r["work_units_to_target"][i] is not None}
                by_t = {s: r["time_to_target_s"][i] for s, r in per.items() if r["time_to_target_s"][i] is not None}
                firsts.append(dict(loss_target=tg, first_in_work_units=min(by_wu, key=by_wu.get) if by_wu else None,
                                   first_in_seconds=min(by_t, key=by_t.get) if by_t else None,
                                   reached=sorted(by_wu, key=by_wu.get)))
            summary["problems"][kind] = dict(
                targets=firsts,
                solvers={s: {k: r[k] for k in ("work_units_to_target", "time_to_target_s", "final_loss",
                                               "final_val_metric", "work_units", "time_s", "iterations", "status")}
                         for s, r in per.items()})
    settings = dict(n_train=N_TRAIN, n_val=N_VAL, width=WIDTH, n_steps=N_STEPS, final_time=FINAL_TIME, alpha=ALPHA,
                    weight_decay=WEIGHT_DECAY, alpha_w=ALPHA_W, lr=LR, batch_size=BATCH)
    summary["settings"] = settings
    with open(os.path.join(args.out, "b5_curves.json"), "w") as fh:
        json.dump(curves, fh)
    with open(os.path.join(args.out, "b5_summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    if args.plots:
        try:
            from meganet.plotting import compare_runs

            for kind, cs in curves.items():
                cls = kind == "classification"
                compare_runs({s: dict(work_units=c["work_units"], time=c["time"], loss=c["loss"],
                                      val=c["val_metric"]) for s, c in cs.items()},
                             loss_target=TARGETS[kind][-1], metric="val",
                             metric_label="validation accuracy" if cls else "validation relative error",
                             log_metric=not cls, title=f"B5 {kind}: peaks, antisymmetric ResNet N = {N_STEPS}",
                             path=os.path.join(args.out, f"b5_{kind}.png"))
        except ImportError as err:
            print(f"plots skipped: {err}", file=sys.stderr)
    for kind, s in summary["problems"].items():
        for t in s["targets"]:
            print(f"# {kind}: loss target {t['loss_target']}: first in work units: {t['first_in_work_units']}, "
                  f"first in seconds: {t['first_in_seconds']} (reached, by work units: {t['reached']})",
                  file=sys.stderr)
    return records


if __name__ == "__main__":
    main()
