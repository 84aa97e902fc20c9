"""Exact Newton vs Gauss-Newton in the trust-region solvers (issue 15): iterations, work units, seconds.

The same problems, models, regularization, initial points and budget as B5
(:mod:`benchmarks.b5_second_order_vs_sgd`: peaks — 5 classes, softmax, width 8,
8 antisymmetric RK4 steps — and the CDR-like surrogate — least squares, dense
opening 55 → 8, 8 RK4 steps; budget 600 work units), trained on the joint
problem ``x = (θ, w)`` (:class:`meganet.objectives.NetworkObjective`) with

* ``steihaug`` — :func:`meganet.optimizers.minimize_trust_region_steihaug`
  (Steihaug-CG stops at negative curvature and steps to the boundary);
* ``krylov`` — :func:`meganet.optimizers.minimize_trust_region_krylov`
  (Lanczos, dimension ≤ 20; the subproblem solution follows negative curvature),

each with ``hessian_kind='gauss_newton'`` and ``'exact'`` (second-order adjoints).

Work units: a forward or adjoint pass over the training set counts 1; a
Gauss-Newton product 2 (one linearized forward, one adjoint pass), an exact
product 4 (two of each: the linearized pass of the objective, then the
network's second-order sweep — tangent, adjoint and adjoint change).  The
measured cost of one product (median of 20, at the initial point, same
machine) is reported next to it (``product_seconds``), so the counting can be
checked.

Output (``--out``, default ``benchmarks/results/exact_hessian``): ``results.jsonl``
(one line per run, with the curve), ``products.jsonl`` (timed products) and
``table.md`` (median and range over seeds).

Usage::

    python benchmarks/exact_vs_gn.py [--problems peaks cdr] [--seeds 3] [--budget 600]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchmarks.b5_second_order_vs_sgd as b5  # noqa: E402  (sets the thread limits)
from benchmarks.common import cpu_name  # noqa: E402

import numpy as np  # noqa: E402

SOLVERS = ("steihaug", "krylov")
KINDS = ("gauss_newton", "exact")


def _objective(name, seed, kind):
    from meganet.objectives import NetworkObjective
    from meganet.regularizers import Tikhonov

    p = b5.PROBLEMS[name]
    data = b5.load_data(name)
    model = b5._model(name, data)
    rng = np.random.default_rng(seed)
    theta0 = model.network.init_theta(rng=rng)
    w0 = model.init_w(rng=rng)
    Y = model.features(data["Y_train"])
    obj = NetworkObjective(model.network, model.loss, Y, data["C_train"],
                           regularizer=Tikhonov(model.network.n_theta, alpha=p["weight_decay"]),
                           classifier_regularizer=Tikhonov(model.loss.n_w, alpha=p["alpha_w"]), hessian_kind=kind)
    return obj, model, data, np.concatenate([theta0, w0])


def time_products(name, seed=0, repeats=20):
    obj, _, _, x = _objective(name, seed, "gauss_newton")
    f, g, state = obj.value_and_gradient(x)
    out = dict(problem=name)
    for kind in KINDS + KINDS:  # twice, alternating; the second round is kept
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            obj.hessian_matvec(x, g, state, kind=kind)
            ts.append(time.perf_counter() - t)
        out[f"{kind}_seconds"] = float(np.median(ts))
    t = []
    for k in range(repeats):
        t0 = time.perf_counter()
        obj.value_and_gradient(x + 1e-9 * (k + 1))
        t.append(time.perf_counter() - t0)
    out["value_and_gradient_seconds"] = float(np.median(t))
    out["ratio_exact_to_gn"] = out["exact_seconds"] / out["gauss_newton_seconds"]
    return out


def run_one(name, solver, kind, seed, budget):
    from meganet import optimizers as opt

    obj, model, data, x0 = _objective(name, seed, kind)
    p = b5.PROBLEMS[name]
    curve = dict(work_units=[], time=[], loss=[], val_metric=[])
    clock = dict(t0=0.0, excluded=0.0)

    def record(x):
        t_now = time.perf_counter()
        theta, w = obj.split(x)
        F = model.output(theta, data["Y_train"])
        curve["work_units"].append(float(obj.counter.work_units))
        curve["time"].append(t_now - clock["t0"] - clock["excluded"])
        curve["loss"].append(float(model.loss.value(F, np.asarray(w), data["C_train"])))
        curve["val_metric"].append(b5._metric(model, theta, np.asarray(w), data["Y_val"], data["C_val"], p["kind"]))
        clock["excluded"] += time.perf_counter() - t_now

    fn = opt.minimize_trust_region_steihaug if solver == "steihaug" else opt.minimize_trust_region_krylov
    opts = dict(max_iter=100000, gtol=1e-14, max_work_units=budget)
    if solver == "steihaug":
        opts["cg_max_iter"] = 20
    else:
        opts["krylov_dim"] = 20
    clock["t0"] = time.perf_counter()
    record(x0)
    res = fn(obj, x0, callback=lambda x, row: record(x), **opts)
    wall = time.perf_counter() - clock["t0"] - clock["excluded"]
    info = [str(c) for c in res.history["cg_info"]] if "cg_info" in res.history.columns else []
    return dict(problem=name, solver=res.solver, method=solver, hessian_kind=kind, seed=seed, status=res.status.value,
                iterations=int(res.nit), hessian_products=int(res.n_hmv), work_units=float(obj.counter.work_units),
                seconds=wall, final_loss=curve["loss"][-1], final_val_metric=curve["val_metric"][-1],
                metric="val_rel_error" if p["kind"] == "regression" else "val_accuracy",
                negative_curvature_steps=info.count("negative_curvature"),
                accepted=int(sum(bool(a) for a in res.history["accepted"] if a is not None)), curve=curve)


def _fmt(vals, f="{:.3g}"):
    vals = np.asarray(vals, dtype=float)
    return f"{f.format(np.median(vals))} [{f.format(vals.min())}, {f.format(vals.max())}]"


def table(records, products):
    lines = ["| problem | solver | Hessian | iterations | Hessian products | work units | seconds | final loss | "
             "validation | neg. curvature steps |", "|" + "---|" * 10]
    for name in dict.fromkeys(r["problem"] for r in records):
        for solver in SOLVERS:
            for kind in KINDS:
                rs = [r for r in records if r["problem"] == name and r["method"] == solver and r["hessian_kind"] == kind]
                if not rs:
                    continue
                lines.append(f"| {name} | {solver} | {kind} | {_fmt([r['iterations'] for r in rs], '{:.0f}')} | "
                             f"{_fmt([r['hessian_products'] for r in rs], '{:.0f}')} | "
                             f"{_fmt([r['work_units'] for r in rs], '{:.0f}')} | {_fmt([r['seconds'] for r in rs])} | "
                             f"{_fmt([r['final_loss'] for r in rs], '{:.4g}')} | "
                             f"{_fmt([r['final_val_metric'] for r in rs], '{:.3f}')} ({rs[0]['metric']}) | "
                             f"{_fmt([r['negative_curvature_steps'] for r in rs], '{:.0f}')} |")
    lines += ["", "| problem | GN product (s) | exact product (s) | ratio | value + gradient (s) |", "|---|---|---|---|---|"]
    for p in products:
        lines.append(f"| {p['problem']} | {p['gauss_newton_seconds']:.4f} | {p['exact_seconds']:.4f} | "
                     f"{p['ratio_exact_to_gn']:.2f} | {p['value_and_gradient_seconds']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", nargs="+", default=["peaks", "cdr"], choices=list(b5.PROBLEMS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=600.0)
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "exact_hessian"))
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    products = [time_products(p) for p in a.problems]
    with open(os.path.join(a.out, "products.jsonl"), "w") as fh:
        for p in products:
            p["cpu"] = cpu_name()
            fh.write(json.dumps(p) + "\n")
            print(json.dumps(p), flush=True)
    records = []
    with open(os.path.join(a.out, "results.jsonl"), "w") as fh:
        for name in a.problems:
            for seed in range(a.seeds):
                for solver in SOLVERS:
                    for kind in KINDS:
                        rec = run_one(name, solver, kind, seed, a.budget)
                        records.append(rec)
                        fh.write(json.dumps(rec) + "\n")
                        fh.flush()
                        short = {k: v for k, v in rec.items() if k != "curve"}
                        print(json.dumps(short), flush=True)
    with open(os.path.join(a.out, "table.md"), "w") as fh:
        fh.write(table(records, products))
    print(table(records, products))


if __name__ == "__main__":
    main()
