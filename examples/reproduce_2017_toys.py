r"""Haber & Ruthotto 2017, "Stable architectures for deep neural networks", §6.1–6.3 and Figure 3.

Trains the three networks of the paper — the original ResNet (eq. 2.1), the
antisymmetric ResNet (eq. 4.12, ``γ = 0``) and the Hamiltonian network with
Verlet propagation (eq. 4.17) — on the three 2-D problems with the paper's
settings:

========== ===================================== ==== ===================== ============ ==========
problem    data                                  T    width (ResNet/antisym, α            classifier
                                                      Verlet)
========== ===================================== ==== ===================== ============ ==========
ellipses   1200 points, 1000 train / 200 val     20   2, 2                  1e-3         logistic
swiss roll 513 points per arm; every other point 20   4 (features          5e-3         logistic
           along the curve held out                    duplicated), 2
peaks      5000 points (1000 per class), 20 % val 5    8 (features          5e-6         softmax
                                                      duplicated), 2
========== ===================================== ==== ===================== ============ ==========

Training (all problems): multilevel in depth (4, 8, 16, ... layers, weights
prolongated piecewise linearly in time, :func:`meganet.training.train_multilevel`),
on every level block coordinate descent
(:func:`meganet.training.block_coordinate_descent`): a classifier step (≤ 2
Newton-PCG iterations with ≤ 2 PCG iterations) and a Gauss-Newton-PCG step on θ
(≤ 20 PCG iterations preconditioned by the regularization operator); the
regularizer is the smoothness in time ``α/(2h) Σ_j ‖θ_j − θ_{j−1}‖²`` only (no
weight decay, no classifier regularization); the iterate with the best
validation accuracy is kept on every level (the paper's "final output").  The
Verlet network's ``y`` are the features and ``z`` starts at 0 (``n_y = n_z = 2``).

The paper trains up to 1024 layers; the levels and the number of block
coordinate descent iterations per level are options here (``--levels``,
``--outer-iter``) and the defaults are scaled down to fit a few minutes on
two CPU cores; the report states what was run.

Usage::

    python examples/reproduce_2017_toys.py [--levels 4 8 16 32 64] [--outer-iter 20] [--seed 0]
        [--out examples/results/haber_ruthotto_2017]

writes ``toys.md``, ``toys.jsonl`` (one JSON object per run and level) and
``figure3.png`` (best validation accuracy per level, as the paper's Figure 3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time

import numpy as np

from meganet.data import ellipses, peaks, swiss_roll
from meganet.integrators import AntisymmetricResNet, ResNet
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.layers import SingleLayer
from meganet.losses import LogisticRegression, SoftmaxCrossEntropy
from meganet.objectives import NetworkObjective
from meganet.regularizers import Tikhonov
from meganet.regularizers.time_derivative import TimeDifference
from meganet.training import block_coordinate_descent, time_stepping_blocks, train_multilevel
from meganet.transforms import Dense

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results", "haber_ruthotto_2017")
NETWORKS = ("resnet", "antisym", "verlet")
NAMES = {"resnet": "ResNet", "antisym": "antisymmetric ResNet", "verlet": "Hamiltonian Verlet"}
#: problem -> final time, α, width of ResNet/antisym (features duplicated), Verlet n_y
SETTINGS = {
    "ellipses": dict(T=20.0, alpha=1e-3, width=2),
    "swiss_roll": dict(T=20.0, alpha=5e-3, width=4),
    "peaks": dict(T=5.0, alpha=5e-6, width=8),
}
#: What the paper states (§6.1–6.3, Figure 3).
PAPER = {
    ("ellipses", "resnet"): "100 % at some level (N ≤ 1024)",
    ("ellipses", "antisym"): "100 % at some level (N ≤ 1024)",
    ("ellipses", "verlet"): "100 % at some level (N ≤ 1024)",
    ("swiss_roll", "resnet"): "100 % at N = 1024",
    ("swiss_roll", "antisym"): "below 100 % (not stated; Fig. 3)",
    ("swiss_roll", "verlet"): "100 % already at N = 32",
    ("peaks", "resnet"): "≈ 98.8 % at N = 1024",
    ("peaks", "antisym"): "≈ 98.8 % at N = 1024",
    ("peaks", "verlet"): "99.1 % at N = 1024",
}


def make_data(problem, seed):
    if problem == "ellipses":
        return ellipses(1200, val_fraction=200 / 1200, seed=seed)  # 1000 / 200
    if problem == "swiss_roll":
        return swiss_roll(1026, holdout="alternate")  # 513 per arm, every other point held out
    return peaks(5000, val_fraction=0.2, seed=seed)  # 1000 per class, 4000 / 1000


def features(kind, width, Y):
    """Network input: the features duplicated to the width (ResNet, antisym), ``[y, z = 0]`` (Verlet)."""
    if kind == "verlet":
        return np.hstack([Y, np.zeros_like(Y)])
    return np.hstack([Y] * (width // Y.shape[1]))


def block(kind, width, n_steps, T):
    if kind == "resnet":
        return ResNet(SingleLayer(Dense(width, width), activation="tanh"), n_steps=n_steps, final_time=T)
    if kind == "antisym":
        return AntisymmetricResNet(width, n_steps=n_steps, final_time=T, gamma=0.0, activation="tanh")
    return HamiltonianVerlet(2, 2, n_steps=n_steps, final_time=T, activation="tanh", bias="vector")


def run_one(problem, kind, *, levels, outer_iter, seed, verbose=False):
    s = SETTINGS[problem]
    data = make_data(problem, seed)
    width = s["width"] if kind != "verlet" else 4
    Y, Yv = features(kind, s["width"], data.Y_train), features(kind, s["width"], data.Y_val)
    loss = LogisticRegression(width) if data.n_classes == 2 else SoftmaxCrossEntropy(width, data.n_classes)
    rng = np.random.default_rng(seed)
    net = block(kind, width, levels[0], s["T"])

    def make_objective(network):
        b = time_stepping_blocks(network)[0]
        R = Tikhonov(TimeDifference(b.n_steps, b.n_theta // b.n_steps, h=b.h), alpha=s["alpha"])
        return NetworkObjective(network, loss, Y, data.C_train, regularizer=R, preconditioner="regularizer", rng=rng)

    x0 = make_objective(net).init_x(rng=rng)
    opts = dict(outer_iter=outer_iter, gtol=0.0, classifier_solver_options=dict(max_iter=2, cg_max_iter=2),
                theta_solver_options=dict(max_iter=1, cg_max_iter=20))
    t0 = time.perf_counter()
    ml = train_multilevel(make_objective, net, x0, levels=levels, solver=block_coordinate_descent,
                          solver_options=opts, validation=(Yv, data.C_val), keep_best=True, verbose=verbose)
    wall = time.perf_counter() - t0
    rows = []
    for L in ml.levels:
        t = L.transfer or {}

        def acc(key):
            v = t.get(key)
            return None if v is None else v["accuracy"]

        rows.append(dict(problem=problem, network=kind, level=L.level, n_steps=L.n_steps,
                         best_val_accuracy=L.validation["accuracy"], val_loss=L.validation["loss"],
                         val_accuracy_before_prolongation=acc("validation_before"),
                         val_accuracy_after_prolongation=acc("validation_after"),
                         val_accuracy_after_classifier_refit=acc("validation_after_refit"),
                         n_train=int(data.Y_train.shape[0]), n_val=int(data.Y_val.shape[0]), width=width,
                         final_time=s["T"], alpha=s["alpha"], outer_iter=outer_iter, seed=seed,
                         work_units=float(L.result.work_units)))
    return rows, wall


def _git_commit():
    try:
        return subprocess.run(["git", "-C", HERE, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def write_markdown(path, rows, walls, *, levels, outer_iter, seed, commit, cpu):
    lines = ["# Haber & Ruthotto 2017, §6.1–6.3: best validation accuracy per level", "",
             "Written by `examples/reproduce_2017_toys.py` (paper settings, see its docstring).", "",
             "**Scaled down:** levels " + "; ".join(
                 f"{problem} " + ", ".join(str(n) for n in sorted({r['n_steps'] for r in rows
                                                                   if r['problem'] == problem}))
                 for problem in SETTINGS if any(r["problem"] == problem for r in rows))
             + f" layers (the paper: 4, 8, …, 1024 for all), "
             f"{outer_iter} block coordinate descent iterations per level (the paper does not state its number); "
             "everything else as in the paper.", "",
             f"Machine: {cpu}, 2 cores shared with other jobs; seed {seed}; meganet commit `{commit}`.", "",
             "Best validation accuracy per level (the kept iterate of the level):", ""]
    head = "| problem | network | " + " | ".join(f"N={n}" for n in levels) + " | best | paper | wall (s) |"
    lines += [head, "|" + "---|" * (len(levels) + 5)]
    for problem in SETTINGS:
        for kind in NETWORKS:
            rr = [r for r in rows if r["problem"] == problem and r["network"] == kind]
            if not rr:
                continue
            accs = {r["n_steps"]: r["best_val_accuracy"] for r in rr}
            cells = [f"{100 * accs[n]:.1f}" if n in accs else "–" for n in levels]
            best = max(accs.values())
            lines.append(f"| {problem} | {NAMES[kind]} | " + " | ".join(cells) + f" | {100 * best:.1f} | "
                         f"{PAPER[(problem, kind)]} | {walls[(problem, kind)]:.0f} |")
    lines += ["", "Validation accuracy (%) at the level changes: best iterate of the coarse level → prolongated "
              "weights with the coarse classifier → classifier re-fitted (what the fine level starts from):", "",
              "| problem | network | " + " | ".join(f"{n}→{2 * n}" for n in levels[:-1]) + " |",
              "|" + "---|" * (len(levels) + 1)]
    for problem in SETTINGS:
        for kind in NETWORKS:
            rr = [r for r in rows if r["problem"] == problem and r["network"] == kind and r["level"] > 1]
            if not rr:
                continue
            cells = [f"{100 * r['val_accuracy_before_prolongation']:.1f} → "
                     f"{100 * r['val_accuracy_after_prolongation']:.1f} → "
                     f"{100 * r['val_accuracy_after_classifier_refit']:.1f}" for r in rr]
            lines.append(f"| {problem} | {NAMES[kind]} | " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(path, rows, levels):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.8))
    axes = fig.subplots(1, 3)
    for ax, problem in zip(axes, SETTINGS):
        for kind, marker in zip(NETWORKS, "os^"):
            rr = [r for r in rows if r["problem"] == problem and r["network"] == kind]
            ax.plot([int(np.log2(r["n_steps"])) for r in rr], [r["best_val_accuracy"] for r in rr], marker=marker,
                    label=NAMES[kind])
        ax.set_title(problem.replace("_", " "))
        ax.set_xlabel("level ℓ (N = 2^ℓ layers)")
        ax.set_xticks([int(np.log2(n)) for n in levels])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best validation accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle("Multilevel convergence (cf. Haber & Ruthotto 2017, Fig. 3)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    p.add_argument("--outer-iter", type=int, default=20, help="block coordinate descent iterations per level")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--problems", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--report-from", nargs="+", metavar="JSONL",
                   help="train nothing: write toys.md, toys.jsonl and figure3.png from these toys.jsonl files "
                        "(e.g. of runs split over processes)")
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    if a.report_from:
        return _report_from(a.report_from, a.out, a.levels)
    rows, walls = [], {}
    jsonl = os.path.join(a.out, "toys.jsonl")
    commit, cpu = _git_commit(), _cpu()
    with open(jsonl, "w") as f:
        for problem in a.problems:
            for kind in a.networks:
                rr, wall = run_one(problem, kind, levels=a.levels, outer_iter=a.outer_iter, seed=a.seed,
                                   verbose=a.verbose)
                walls[(problem, kind)] = wall
                for r in rr:
                    f.write(json.dumps(dict(r, wall_s=wall, commit=commit, cpu=cpu)) + "\n")
                f.flush()
                rows += rr
                print(f"{problem:10s} {kind:8s} " + " ".join(f"{100 * r['best_val_accuracy']:5.1f}" for r in rr)
                      + f"  ({wall:.0f} s)", flush=True)
    write_markdown(os.path.join(a.out, "toys.md"), rows, walls, levels=a.levels, outer_iter=a.outer_iter,
                   seed=a.seed, commit=commit, cpu=cpu)
    plot(os.path.join(a.out, "figure3.png"), rows, a.levels)
    print(f"wrote {os.path.abspath(a.out)}: toys.md, toys.jsonl, figure3.png")
    return rows


def _report_from(files, out, levels):
    records = [json.loads(line) for fn in files for line in open(fn) if line.strip()]
    walls = {(r["problem"], r["network"]): r["wall_s"] for r in records}
    order = {(p, k): i for i, (p, k) in enumerate((p, k) for p in SETTINGS for k in NETWORKS)}
    records.sort(key=lambda r: (order[(r["problem"], r["network"])], r["level"]))
    with open(os.path.join(out, "toys.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    r0 = records[0]
    write_markdown(os.path.join(out, "toys.md"), records, walls, levels=levels, outer_iter=r0["outer_iter"],
                   seed=r0["seed"], commit=r0["commit"], cpu=r0["cpu"])
    plot(os.path.join(out, "figure3.png"), records, levels)
    print(f"wrote {os.path.abspath(out)}: toys.md, toys.jsonl, figure3.png")
    return records


if __name__ == "__main__":
    main()
