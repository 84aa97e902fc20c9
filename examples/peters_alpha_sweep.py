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

The experiment itself is :func:`meganet.training.alpha_sweep` (one seed) with the table of
:func:`meganet.training.sweep_markdown` and the figures of :mod:`meganet.plotting.segmentation`; the same run
with a report folder (``summary.json``) and Indian Pines as a second data set is ``meganet segment``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from reproduce_jmiv_table1 import machine, write_table  # noqa: E402

RESULTS = os.path.join(HERE, "results", "peters_2020")
ALPHAS = [0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1, 1.0]


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
    from meganet.plotting import miou_vs_alpha, segmentation_maps
    from meganet.training import alpha_sweep, sweep_markdown

    os.makedirs(args.out, exist_ok=True)
    mach = machine()
    rows, first = [], None
    for seed in args.seeds:
        scene = change_detection_scene((args.size, args.size), n_bands=args.bands, seed=seed)
        res = alpha_sweep(scene.X, scene.labels, scene.train_mask, scene.val_mask, alphas, n_classes=2,
                          ground_truth=scene.labels, width=args.width, n_layers=args.layers, max_iter=args.max_iter,
                          on=args.on, seed=seed, log=lambda line: print(line, flush=True))
        rows += [dict(r, seed=seed) for r in res.rows]
        if first is None:
            first = (scene, res)
    with open(os.path.join(args.out, ".alpha_sweep.jsonl.tmp"), "w") as f:
        for r in rows:
            f.write(json.dumps(dict(r, machine=mach, on=args.on, size=args.size, bands=args.bands,
                                    width=args.width, layers=args.layers, max_iter=args.max_iter)) + "\n")
    os.replace(os.path.join(args.out, ".alpha_sweep.jsonl.tmp"), os.path.join(args.out, "alpha_sweep.jsonl"))
    scene, res = first
    miou_vs_alpha(rows, path=os.path.join(args.out, "miou_vs_alpha.png"), n_val=int(scene.val_mask.sum()))
    segmentation_maps(scene.labels[0], [("α = 0", res.map(0.0)),
                                        (f"best α = {res.best_alpha:g} (validation)", res.map(res.best_alpha)),
                                        (f"α = {alphas[-1]:g}", res.map(alphas[-1]))],
                      train_mask=scene.train_mask[0], truth_title="true change map",
                      path=os.path.join(args.out, "maps.png"))
    intro = [f"Generated by `python examples/peters_alpha_sweep.py {' '.join(sys.argv[1:])}`; machine "
             f"{mach['cpu']} ({mach['cores']} cores, load {mach['load']}), meganet {mach['meganet']} "
             f"(commit {mach['commit']}).",
             f"Synthetic change-detection scene {args.size}×{args.size}, 2 × {args.bands} bands, 200 labelled "
             f"training and 50 validation pixels (the paper: a real hyperspectral time-lapse scene, 200/50 "
             f"pixels); reversible Hamiltonian network of width {args.width} and {args.layers} layers (the paper: "
             f"10 layers, up to 32 channels); R on the {args.on}; L-BFGS, {args.max_iter} iterations per α, the "
             f"same initial weights for every α of a seed."]
    md = sweep_markdown(rows, title="Peters 2020: output regularization with 200 labelled pixels — mIoU against α",
                        intro=intro)
    write_table(args.out, "alpha_sweep.md", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
