r"""Peters (2020), "Deep connections between learning from limited labels & physical parameter estimation":
output regularization with partial labels, eq. (3.2) ``min l(Q y_n, c) + α R(y_n)`` with
``R(y_n) = ½‖∇₁ y_n‖² + ½‖∇₂ y_n‖²`` (eq. 4.8) on the predicted map, and α chosen by cross-validation on the
held-out labelled pixels (the paper's mIoU-vs-α figure).

Data: the paper's hyperspectral time-lapse scene is not available; :func:`meganet.data.change_detection_scene`
builds one with the same structure (two cubes of one location, a change map as the label, 200 labelled
training pixels and 50 validation pixels). Network: :func:`meganet.networks.segmentation_network` (reversible
Hamiltonian block at full resolution; the paper: a fully reversible network of 10 layers, up to 32 channels),
per-pixel softmax cross-entropy on the labelled pixels (the selection Q) plus α R on the predicted
probabilities (:class:`meganet.losses.OutputRegularizedLoss`, ``--on logits`` for the logits). Every α starts
from the same initial weights (per seed) and is trained by L-BFGS.

For every seed the script picks the α with the best mIoU on the 50 validation pixels and reports it next to
α = 0 and the largest α, with the mIoU of the whole map (the ground truth exists for the synthetic scene).
Figures: mIoU against α (mean and range over the seeds) and the predicted maps for α = 0, the best α and the
largest α.

Usage::

    python examples/peters_alpha_sweep.py                          # 3 seeds, ~2 minutes on 2 cores
    python examples/peters_alpha_sweep.py --size 16 --alphas 0 1e-3 --seeds 0 --max-iter 5   # smoke test

Results: ``--out`` (default ``examples/results/peters_2020``): ``alpha_sweep.md``, ``alpha_sweep.jsonl``,
``miou_vs_alpha.png``, ``maps.png``.
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

RESULTS = os.path.join(HERE, "results", "peters_2020")
ALPHAS = [0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1, 1.0]


def train_one(scene, alpha, x0, args):
    """Train for one α from ``x0``; returns the predicted change map and the scores."""
    from meganet.losses import OutputRegularizedLoss, SoftmaxCrossEntropy
    from meganet.metrics import segmentation_scores
    from meganet.objectives import NetworkObjective
    from meganet.optimizers import minimize_lbfgs

    net = scene.net
    base = SoftmaxCrossEntropy(net.shape_out, 2, per_pixel=True)
    loss = OutputRegularizedLoss(base, alpha, on=args.on) if alpha > 0 else base
    obj = NetworkObjective(net, loss, scene.X, scene.labels, mask=scene.train_mask.astype(scene.X.dtype))
    x0 = obj.init_x(rng=scene.seed) if x0 is None else x0
    t0 = time.perf_counter()
    res = minimize_lbfgs(obj, x0, max_iter=args.max_iter)
    theta, w = obj.split(res.x)
    pred = base.predict(net(theta, scene.X), w)
    val = segmentation_scores(scene.labels, pred, 2, mask=scene.val_mask)
    full = segmentation_scores(scene.labels, pred, 2)
    train = segmentation_scores(scene.labels, pred, 2, mask=scene.train_mask)
    return x0, pred[0], dict(alpha=alpha, val_miou=val.miou, full_miou=full.miou, full_iou=full.iou.tolist(),
                             full_pixel_accuracy=full.pixel_accuracy, train_pixel_accuracy=train.pixel_accuracy,
                             status=str(res.status), iterations=res.nit, seconds=time.perf_counter() - t0)


def plot(out, alphas, rows, maps, scene0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({r["seed"] for r in rows})
    xs = [a if a > 0 else alphas[1] / 10 for a in alphas]  # α = 0 drawn one decade left of the smallest α
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("val_miou", "validation pixels (50)"), ("full_miou", "whole map")):
        M = np.array([[next(r[key] for r in rows if r["seed"] == s and r["alpha"] == a) for a in alphas]
                      for s in seeds])
        ax.plot(xs, M.mean(axis=0), "o-", label=f"mIoU, {label}, mean of {len(seeds)} seeds")
        ax.fill_between(xs, M.min(axis=0), M.max(axis=0), alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("α (α = 0 drawn at the left end)")
    ax.set_ylabel("mIoU")
    ax.set_title("Peters 2020, eq. (3.2): mIoU against α", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "miou_vs_alpha.png"), dpi=120)
    plt.close(fig)
    fig, axs = plt.subplots(1, 1 + len(maps), figsize=(3 * (1 + len(maps)), 3.2))
    axs[0].imshow(scene0.labels[0], cmap="gray", vmin=0, vmax=1)
    axs[0].set_title("true change map")
    for ax, (title, m) in zip(axs[1:], maps):
        ax.imshow(m, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
    for ax in axs:
        ax.set_xticks([])
        ax.set_yticks([])
    tr = np.argwhere(scene0.train_mask[0])
    axs[0].plot(tr[:, 1], tr[:, 0], "r.", ms=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "maps.png"), dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alphas", type=float, nargs="+", default=ALPHAS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size", type=int, default=64, help="the scene is size × size pixels")
    p.add_argument("--bands", type=int, default=20, help="bands per cube")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--max-iter", type=int, default=150, help="L-BFGS iterations per α")
    p.add_argument("--on", default="probabilities", choices=["probabilities", "logits"])
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args(argv)
    alphas = sorted(set(args.alphas))
    if alphas[0] != 0.0 or len(alphas) < 2:
        p.error("--alphas must contain 0 and at least one positive value")
    from meganet.data import change_detection_scene
    from meganet.networks import segmentation_network

    os.makedirs(args.out, exist_ok=True)
    mach = machine()
    rows, maps, scene0 = [], [], None
    for seed in args.seeds:
        scene = change_detection_scene((args.size, args.size), n_bands=args.bands, seed=seed)
        scene.net = segmentation_network(scene.X.shape[1], (args.size, args.size), width=args.width,
                                         n_layers=args.layers)
        x0, preds = None, {}
        for a in alphas:
            x0, pred, r = train_one(scene, a, x0, args)
            r.update(seed=seed)
            rows.append(r)
            preds[a] = pred
            print(f"seed {seed} α = {a:g}: mIoU validation {r['val_miou']:.3f}, whole map {r['full_miou']:.3f} "
                  f"({r['status']}, {r['seconds']:.1f} s)", flush=True)
        if scene0 is None:
            scene0 = scene
            best = max(alphas, key=lambda a: next(r["val_miou"] for r in rows if r["seed"] == seed and r["alpha"] == a))
            maps = [("α = 0", preds[0.0]), (f"best α = {best:g} (validation)", preds[best]),
                    (f"α = {alphas[-1]:g}", preds[alphas[-1]])]
    with open(os.path.join(args.out, "alpha_sweep.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(dict(r, machine=mach, on=args.on, size=args.size, bands=args.bands,
                                    width=args.width, layers=args.layers, max_iter=args.max_iter)) + "\n")
    plot(args.out, alphas, rows, maps, scene0)
    lines = ["# Peters 2020: output regularization with 200 labelled pixels — mIoU against α", "",
             f"Generated by `python examples/peters_alpha_sweep.py {' '.join(sys.argv[1:])}`; machine "
             f"{mach['cpu']} ({mach['cores']} cores, load {mach['load']}), meganet {mach['meganet']} "
             f"(commit {mach['commit']}).", "",
             f"Synthetic change-detection scene {args.size}×{args.size}, 2 × {args.bands} bands, 200 labelled "
             f"training and 50 validation pixels (the paper: a real hyperspectral time-lapse scene, 200/50 "
             f"pixels); reversible Hamiltonian network of width {args.width} and {args.layers} layers (the paper: "
             f"10 layers, up to 32 channels); R on the {args.on}; L-BFGS, {args.max_iter} iterations per α, the "
             f"same initial weights for every α of a seed.", "",
             "| seed | mIoU (val) α = 0 | best α (by val mIoU) | mIoU (val) at best α | whole-map mIoU α = 0 | "
             f"whole-map mIoU at best α | whole-map mIoU α = {alphas[-1]:g} |", "|---|---|---|---|---|---|---|"]
    for seed in args.seeds:
        rs = {r["alpha"]: r for r in rows if r["seed"] == seed}
        best = max(alphas, key=lambda a: rs[a]["val_miou"])
        lines.append(f"| {seed} | {rs[0.0]['val_miou']:.3f} | {best:g} | {rs[best]['val_miou']:.3f} | "
                     f"{rs[0.0]['full_miou']:.3f} | {rs[best]['full_miou']:.3f} | {rs[alphas[-1]]['full_miou']:.3f} |")
    lines += ["", "Every α (mean over the seeds):", "", "| α | mIoU (val) | whole-map mIoU | train pixel accuracy |",
              "|---|---|---|---|"]
    for a in alphas:
        rs = [r for r in rows if r["alpha"] == a]
        lines.append(f"| {a:g} | {np.mean([r['val_miou'] for r in rs]):.3f} | "
                     f"{np.mean([r['full_miou'] for r in rs]):.3f} | "
                     f"{np.mean([r['train_pixel_accuracy'] for r in rs]):.3f} |")
    write_table(args.out, "alpha_sweep.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
