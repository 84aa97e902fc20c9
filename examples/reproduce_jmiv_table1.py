r"""Ruthotto & Haber, "Deep neural networks motivated by partial differential equations", JMIV 2019,
Table 1: the parabolic, Hamiltonian and second-order CNNs trained with the paper's recipe (§5).

Recipe (§5, "Training Algorithm"): SGD with momentum 0.9, mini-batches of 125, piecewise-constant learning
rate 0.1 → 0.02 → 0.004 (60, 20, 20 epochs for STL-10 and CIFAR-10), weight decay α₂ = 2·10⁻⁴ on all weights
and the smoothed total variation in time α₁ = 2·10⁻⁴ of eq. (13), the box −1 ≤ θ⁽¹⁾ ≤ 1 on the blocks'
convolution weights (§4), random horizontal flips and a pad-by-1/16 random crop, 80 % / 20 % train /
validation split, the weights with the best validation accuracy evaluated on the test set.

The network is :func:`meganet.networks.jmiv_network` (opening 3×3 conv + batch norm + ReLU, units of a PDE block
with the symmetric layer (7) and TV normalization (9), 1×1 connectors with batch norm, ReLU and 2×2 average
pooling, global average pooling, linear softmax classifier); with the paper's widths its weight counts equal
Table 1 (tested: ``tests/test_jmiv_cnn.py``).

On these 2-core machines CIFAR/STL-size runs (100 epochs of 50,000 images with 0.5 M weights) take days, and
CIFAR/STL cannot be downloaded here; the default run is the largest that fits in about half an hour:
**full Fashion-MNIST** (60,000 / 10,000 images, 28×28, one channel), split 48,000 / 12,000 / 10,000 (the 80/20
split of the paper, the official test file as test set), widths (8, 16, 32) instead of (32, 64, 112), and 6
epochs (4 at 0.1, 1 at 0.02, 1 at 0.004) instead of 60 + 20 + 20.  Every scaled-down choice is written next to
the numbers in the table.  With ``--data cifar10`` (and the binary batches in the data folder) and
``--paper-size`` the run uses the paper's widths and epochs.

Usage::

    python examples/reproduce_jmiv_table1.py                      # Fashion-MNIST, all three networks
    python examples/reproduce_jmiv_table1.py --arch hamiltonian --epochs 1 0 0 --n-train 2000   # minutes
    python examples/reproduce_jmiv_table1.py --data cifar10 --paper-size --folder /data/cifar-10-batches-bin
    python examples/reproduce_jmiv_table1.py --data stl10 --paper-size     # <data folder>/stl10_binary/*.bin

Results: ``examples/results/jmiv_2019/<data>.jsonl`` (one JSON line per run: machine, load, version, seed,
settings, epochs, time per epoch, images/s, weights, validation and test accuracy) and ``<data>.md`` (the table
next to the paper's).  A run is checkpointed after every epoch (``--checkpoint-dir``); started again with the same
arguments it resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "jmiv_2019")
KINDS = ("parabolic", "hamiltonian", "second_order")
LABEL = {"parabolic": "Parabolic", "hamiltonian": "Hamiltonian", "second_order": "Second-order"}


def machine():
    """CPU model, cores, load average, Python, meganet version (as ``meganet segment`` records them) and the git
    commit (for the result lines)."""
    from meganet.cli import _machine

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                check=False).stdout.strip() or None
    except OSError:
        commit = None
    return dict(_machine(), commit=commit)


def write_table(out, name, md):
    """Write the markdown ``md`` to ``out/name`` atomically (temporary file, then ``os.replace``), print it and
    where it went."""
    tmp = os.path.join(out, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(md)
    os.replace(tmp, os.path.join(out, name))
    print(md)
    print(f"results in {os.path.abspath(out)}")


def load(data, folder, val_fraction, seed, dtype, n_train=None, n_val=None):
    """The data set as an ImageDataset: a fraction ``val_fraction`` of the training file for validation (the
    paper's 80 / 20), the test file as test set, per-channel standardization with training statistics."""
    from meganet.data import readers as mdata

    n_pool = {"fashion-mnist": 60000, "mnist": 10000, "cifar10": 50000, "cifar100": 50000, "stl10": 5000}[data]
    n_val = int(round(val_fraction * n_pool)) if n_val is None else n_val
    kw = dict(folder=folder, n_val=n_val, seed=seed, standardize=True, dtype=dtype)
    if data == "fashion-mnist":
        ds = mdata.load_fashion_mnist(**kw)
    elif data == "mnist":
        ds = mdata.load_mnist(n_test=0, **kw)
    else:  # user-supplied binary files (CIFAR: 'cifar-10-batches-bin', 'cifar-100-binary'; STL-10: 'stl10_binary')
        from meganet.data._paths import data_folder

        sub, train, test = {
            "cifar10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"]),
            "cifar100": ("cifar-100-binary", ["train.bin"], ["test.bin"]),
            "stl10": ("stl10_binary", ["train"], ["test"])}[data]
        base = folder if folder is not None else os.path.join(data_folder(), sub)

        def read(names):
            if data == "stl10":
                return mdata.read_stl10_binary(os.path.join(base, f"{names[0]}_X.bin"),
                                               os.path.join(base, f"{names[0]}_y.bin"), dtype=dtype)
            parts = [mdata.read_cifar_binary(os.path.join(base, nm), cifar100=data == "cifar100", dtype=dtype)
                     for nm in names]
            return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])

        X, y = read(train)
        Xt, yt = read(test)
        kw.pop("folder")
        kw.pop("dtype")  # the readers converted already
        ds = mdata.split_images(X, y, n_classes=100 if data == "cifar100" else 10, name=data, X_test=Xt, y_test=yt,
                                **kw)
    if n_train is not None and n_train < ds.X_train.shape[0]:
        ds.X_train, ds.y_train = ds.X_train[:n_train], ds.y_train[:n_train]
        ds.split += f"; training subset: the first {n_train} of the shuffled training split"
    return ds


def kernel_mask(net):
    """Boolean mask over θ of the blocks' convolution weights θ⁽¹⁾ (the box of JMIV §4)."""
    from meganet.networks.jmiv import JMIV_BLOCKS

    mask = np.zeros(net.n_theta, dtype=bool)
    for block, sl in zip(net.blocks, net.layout.slices):
        if not isinstance(block, tuple(JMIV_BLOCKS.values())):
            continue
        layers = [block.layer] if hasattr(block, "layer") else [block.layer1, block.layer2]
        per_step = block.n_theta // block.n_steps
        if sum(L.n_theta for L in layers) != per_step:
            raise RuntimeError(f"unexpected θ layout of {block!r}")
        for j in range(block.n_steps):
            off = sl.start + j * per_step
            for L in layers:
                k = L.layout.slices[L.layout.names.index("K")]
                mask[off + k.start:off + k.stop] = True
                off += L.n_theta
    return mask


def regularizers(net, loss, alpha1, alpha2, tau=1e-3):
    """JMIV eq. (13): α₁ Σ_blocks ∫ φ_τ(∂_t θ) dt + α₂/2 (∫‖θ‖² + ‖W‖² + ‖μ‖²) (h = 1: the integrals are sums)."""
    from meganet.networks.jmiv import JMIV_BLOCKS
    from meganet.regularizers import BlockRegularizer, Tikhonov, TotalVariationTime

    terms = [((0, net.n_theta), Tikhonov(net.n_theta, alpha=alpha2))]
    for block, sl in zip(net.blocks, net.layout.slices):
        if isinstance(block, tuple(JMIV_BLOCKS.values())) and block.n_steps > 1 and alpha1 > 0:
            terms.append(((sl.start, sl.stop), TotalVariationTime(block.n_steps, block.n_theta // block.n_steps,
                                                                  h=block.final_time / block.n_steps,
                                                                  alpha=alpha1, tau=tau)))
    return BlockRegularizer(net.n_theta, terms), Tikhonov(loss.n_w, alpha=alpha2)


def run(kind, ds, args, ckpt_dir):
    from meganet.data.augment import Compose, RandomHorizontalFlip, RandomPadCrop
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.networks import jmiv_network
    from meganet.training.image_classification import jmiv_learning_rate, train_image_classifier

    C, H, W = ds.X_train.shape[1:]
    net = jmiv_network(kind, in_channels=C, image_shape=(H, W), channels=tuple(args.channels),
                       out_channels=args.out_channels)
    loss = SoftmaxCrossEntropy(net.shape_out, ds.n_classes)
    R, S = regularizers(net, loss, args.alpha1, args.alpha2)
    epochs = [e for e in args.epochs]
    rates = [0.1 * 0.2 ** k for k in range(len(epochs))]
    keep = [i for i, e in enumerate(epochs) if e > 0]
    schedule = jmiv_learning_rate([epochs[i] for i in keep], [rates[i] for i in keep])
    n_x = net.n_theta + loss.n_w
    lower = np.full(n_x, -np.inf)
    mask = np.concatenate([kernel_mask(net), np.zeros(loss.n_w, dtype=bool)])
    lower[mask] = -1.0
    upper = -lower
    augment = None
    if not args.no_augment:
        augment = Compose([RandomHorizontalFlip(0.5), RandomPadCrop(fraction=1 / 16)])
    ckpt = os.path.join(ckpt_dir, f"{args.data}-{kind}-seed{args.seed}.npz")
    res = train_image_classifier(net, loss, ds, learning_rate=schedule, momentum=0.9, batch_size=args.batch_size,
                                 regularizer=R, classifier_regularizer=S, lower=lower, upper=upper, augment=augment,
                                 seed=args.seed, eval_batch_size=500, checkpoint=ckpt, progress=not args.quiet)
    res.info["checkpoint"] = ckpt
    return net, loss, res, schedule


def second_order(kind, ds, args):
    """The same network trained by projected Gauss-Newton-PCG (the box of §4) on the first ``args.second_order``
    training images, next to SGD (the §5 recipe, same regularizers and box) on the same images with the same
    number of work units (forward plus adjoint passes over the subset).  BatchNorm runs in training mode over the
    whole subset inside the objective; for evaluation its running statistics are set to the subset's statistics
    (:func:`~meganet.normalization.estimate_running_statistics`)."""
    from meganet.data.readers import ImageDataset
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.networks import jmiv_network
    from meganet.normalization import estimate_running_statistics, set_training
    from meganet.objectives import NetworkObjective
    from meganet.optimizers import minimize_projected_newton_cg
    from meganet.training.image_classification import (evaluate_classifier, jmiv_learning_rate,
                                                       train_image_classifier)

    n = args.second_order
    C, H, W = ds.X_train.shape[1:]
    net = jmiv_network(kind, in_channels=C, image_shape=(H, W), channels=tuple(args.channels),
                       out_channels=args.out_channels)
    loss = SoftmaxCrossEntropy(net.shape_out, ds.n_classes)
    R, S = regularizers(net, loss, args.alpha1, args.alpha2)
    Xs, ys = ds.X_train[:n], ds.y_train[:n]
    mask = np.concatenate([kernel_mask(net), np.zeros(loss.n_w, dtype=bool)])
    lower = np.where(mask, -1.0, -np.inf).astype(Xs.dtype)
    upper = -lower
    obj = NetworkObjective(net, loss, Xs, ys, regularizer=R, classifier_regularizer=S,
                           hessian_fraction=args.gn_hessian_fraction, rng=args.seed)
    x0 = obj.init_x(rng=args.seed)
    t0 = time.perf_counter()
    res = minimize_projected_newton_cg(obj, np.clip(x0, lower, upper), lower=lower, upper=upper,
                                       max_iter=args.gn_iter, cg_max_iter=args.gn_cg, gtol=0.0)
    t_gn = time.perf_counter() - t0
    k = net.n_theta
    estimate_running_statistics(net, res.x[:k], Xs, 500)
    set_training(net, False)
    gn_val = evaluate_classifier(net, loss, res.x[:k], res.x[k:], ds.X_val, ds.y_val, batch_size=500)
    gn_test = evaluate_classifier(net, loss, res.x[:k], res.x[k:], ds.X_test, ds.y_test, batch_size=500)
    # SGD on the same images with the same work: one epoch costs one forward and one adjoint pass
    epochs = max(1, int(round(res.work_units / 2)))
    split = [max(1, round(0.6 * epochs)), max(0, round(0.2 * epochs))]
    split.append(max(0, epochs - sum(split)))
    plan = [(e, r) for e, r in zip(split, (0.1, 0.02, 0.004)) if e > 0]
    sub = ImageDataset(Xs, ys, ds.X_val, ds.y_val, ds.X_test, ds.y_test, ds.n_classes, ds.name)
    net2 = jmiv_network(kind, in_channels=C, image_shape=(H, W), channels=tuple(args.channels),
                        out_channels=args.out_channels)
    t0 = time.perf_counter()
    sgd = train_image_classifier(net2, loss, sub, learning_rate=jmiv_learning_rate([e for e, _ in plan],
                                                                                   [r for _, r in plan]),
                                 regularizer=R, classifier_regularizer=S, lower=lower, upper=upper,
                                 seed=args.seed, eval_batch_size=500)
    t_sgd = time.perf_counter() - t0
    return dict(kind=kind, n_subset=n, gn_status=str(res.status), gn_iterations=res.nit,
                gn_work_units=res.work_units, gn_val_accuracy=gn_val["accuracy"], gn_test_accuracy=gn_test["accuracy"],
                gn_seconds=t_gn, sgd_epochs=epochs, sgd_val_accuracy=sgd.best_val_accuracy,
                sgd_test_accuracy=sgd.test["accuracy"], sgd_seconds=t_sgd,
                gn_history=res.history.to_dict())


def table(data, records, args):
    """Markdown: our numbers next to the paper's Table 1 (and, for Fashion-MNIST, the reference baselines)."""
    from meganet.networks import JMIV_TABLE1

    paper = JMIV_TABLE1.get(data) or JMIV_TABLE1["cifar10"]
    paper_name = data if data in JMIV_TABLE1 else "cifar10"
    lines = [f"# JMIV 2019 Table 1 — {data}", "",
             f"Generated by `python examples/reproduce_jmiv_table1.py {' '.join(sys.argv[1:])}`.", ""]
    if records:
        r0 = records[0]
        m = r0["machine"]
        lines += [f"Machine: {m['cpu']}, {m['cores']} cores, load average at the start {m['load']}; "
                  f"meganet {m['meganet']} (commit {m['commit']}), Python {m['python']}; seed {r0['seed']}.",
                  f"Data: {r0['split']}.", ""]
    lines += ["| network | weights (ours) | weights (paper, " + paper_name + ") | test accuracy % (loss), ours | "
              "test accuracy % (loss), paper " + paper_name + " | best epoch | val accuracy % | s / epoch | "
              "images / s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        k = r["kind"]
        acc, lossv = paper["accuracy"][k]
        lines.append(f"| {LABEL[k]} | {r['weights']:,} | {paper['weights'][k]:,} | "
                     f"{100 * r['test_accuracy']:.2f} ({r['test_loss']:.3f}) | {acc:.1f} ({lossv:.3f}) | "
                     f"{r['best_epoch']} / {r['epochs']} | {100 * r['best_val_accuracy']:.2f} | "
                     f"{r['seconds_per_epoch']:.0f} | {r['images_per_second']:.0f} |")
    if records:
        ours = sorted(records, key=lambda r: -r["test_accuracy"])
        theirs = sorted(KINDS, key=lambda k: -paper["accuracy"][k][0])
        lines += ["", "Ranking by test accuracy: ours " + " > ".join(LABEL[r["kind"]] for r in ours) +
                  f"; paper ({paper_name}) " + " > ".join(LABEL[k] for k in theirs) + "."]
        r0 = records[0]
        lines += ["", "Scaled down from the paper (stated for every number above):", "",
                  f"- data: {data}" + ("" if data in JMIV_TABLE1 else
                                       " (the paper used STL-10, CIFAR-10, CIFAR-100, which cannot be obtained on "
                                       "these machines; the paper's column shown is CIFAR-10, a different and "
                                       "harder data set, so only the ranking and the gap between the networks "
                                       "compare)"),
                  f"- widths {tuple(r0['channels'])} (paper: {paper['network']['channels']}), 3 time steps per "
                  f"unit, h = 1 as in the paper",
                  f"- epochs {', '.join(map(str, r0['epoch_plan']))} at learning rates "
                  f"{', '.join(f'{x:g}' for x in r0['rates'])} (paper: 60, 20, 20 at 0.1, 0.02, 0.004)",
                  f"- augmentation: {r0['augment']}; batch 125, momentum 0.9, α₁ = {r0['alpha1']:g}, "
                  f"α₂ = {r0['alpha2']:g}, box ±1 on the blocks' kernels (as the paper)",
                  f"- {r0['dtype']} arithmetic (the paper: MATLAB on a GPU, precision not stated)"]
        if data == "fashion-mnist":
            lines += ["", "For orientation on Fashion-MNIST (no paper number exists): the Debian package's README "
                      "quotes community baselines of 91.6 % test accuracy (2 conv layers + pooling) and 88.3 % "
                      "(MLP 256-128-100)."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "mnist", "cifar10", "cifar100",
                                                                "stl10"])
    p.add_argument("--folder", default=None, help="data folder (default: $MEGANET_DATA or ~/.cache/meganet/data)")
    p.add_argument("--arch", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--out-channels", type=int, default=None)
    p.add_argument("--epochs", type=int, nargs="+", default=[4, 1, 1],
                   help="epochs at 0.1, 0.02, 0.004, ... (the paper: 60 20 20)")
    p.add_argument("--paper-size", action="store_true", help="the paper's widths and epochs for --data")
    p.add_argument("--n-train", type=int, default=None, help="use a subset of the training split")
    p.add_argument("--n-val", type=int, default=None, help="validation images (default 20 %% of the training file)")
    p.add_argument("--batch-size", type=int, default=125)
    p.add_argument("--alpha1", type=float, default=2e-4)
    p.add_argument("--alpha2", type=float, default=2e-4)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float64", action="store_true", help="float64 arithmetic (default float32)")
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--checkpoint-dir", default=None,
                   help="checkpoints, one per network (default OUT/.checkpoints; removed when a run completes)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--second-order", type=int, default=0, metavar="N",
                   help="instead of the SGD runs: projected Gauss-Newton-PCG on the first N training images, next to "
                        "SGD on the same images with the same number of work units")
    p.add_argument("--gn-iter", type=int, default=15)
    p.add_argument("--gn-cg", type=int, default=10)
    p.add_argument("--gn-hessian-fraction", type=float, default=0.2)
    args = p.parse_args(argv)
    if args.paper_size:
        from meganet.networks import JMIV_TABLE1

        if args.data not in JMIV_TABLE1:
            p.error(f"--paper-size needs --data in {sorted(JMIV_TABLE1)}")
        cfg = JMIV_TABLE1[args.data]["network"]
        args.channels, args.out_channels = list(cfg["channels"]), cfg.get("out_channels")
        args.epochs = [60, 40, 40, 40, 20] if args.data == "cifar100" else [60, 20, 20]
    dtype = np.float64 if args.float64 else np.float32
    ds = load(args.data, args.folder, 0.2, args.seed, dtype, args.n_train, args.n_val)
    os.makedirs(args.out, exist_ok=True)
    ckpt_dir = args.checkpoint_dir or os.path.join(args.out, ".checkpoints")
    if args.second_order:
        return main_second_order(ds, args, dtype)
    records = []
    for kind in args.arch:
        t0 = time.perf_counter()
        mach = machine()
        net, loss, res, schedule = run(kind, ds, args, ckpt_dir)
        if res.status == "completed":  # nothing left to resume
            os.remove(res.info["checkpoint"])
        h = res.history
        rec = dict(kind=kind, data=args.data, seed=args.seed, machine=mach, split=ds.split,
                   channels=list(args.channels), epoch_plan=[e for e in args.epochs if e > 0],
                   rates=schedule.rates, augment="none" if args.no_augment else "flip (p = 0.5) + pad-and-crop",
                   alpha1=args.alpha1, alpha2=args.alpha2, dtype=np.dtype(dtype).name,
                   weights=int(net.n_theta + loss.n_w), status=res.status, epochs=res.epochs_run,
                   best_epoch=res.best_epoch, best_val_accuracy=res.best_val_accuracy,
                   test_accuracy=res.test["accuracy"], test_loss=res.test["loss"],
                   seconds_per_epoch=float(np.mean(h["epoch_time"])) if len(h) else float("nan"),
                   images_per_second=float(np.mean(h["images_per_second"])) if len(h) else float("nan"),
                   history=h.to_dict(), wall_time=time.perf_counter() - t0)
        records.append(rec)
        with open(os.path.join(args.out, f"{args.data}.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"{kind}: test accuracy {100 * rec['test_accuracy']:.2f} % (best epoch {res.best_epoch}), "
              f"{rec['images_per_second']:.0f} images/s", flush=True)
    # the table holds the latest run of every network with these settings (runs may be split over processes)
    key = ("channels", "epoch_plan", "split", "dtype", "seed", "augment", "alpha1", "alpha2")
    with open(os.path.join(args.out, f"{args.data}.jsonl")) as f:
        every = [json.loads(line) for line in f if line.strip()]
    latest = {r["kind"]: r for r in every if all(r.get(k) == records[-1].get(k) for k in key)} if records else {}
    if os.path.isdir(ckpt_dir) and not os.listdir(ckpt_dir):
        os.rmdir(ckpt_dir)
    write_table(args.out, f"{args.data}.md", table(args.data, [latest[k] for k in KINDS if k in latest], args))
    return 0


def main_second_order(ds, args, dtype):
    mach = machine()
    rows = []
    path = os.path.join(args.out, f"{args.data}_second_order.jsonl")
    for kind in args.arch:
        r = second_order(kind, ds, args)
        r.update(data=args.data, seed=args.seed, machine=mach, channels=list(args.channels),
                 dtype=np.dtype(dtype).name, gn_iter=args.gn_iter, gn_cg=args.gn_cg,
                 gn_hessian_fraction=args.gn_hessian_fraction, split=ds.split)
        rows.append(r)
        with open(path, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"{kind}: Gauss-Newton {100 * r['gn_test_accuracy']:.2f} % test accuracy in {r['gn_work_units']:.0f} "
              f"work units; SGD {100 * r['sgd_test_accuracy']:.2f} % in {r['sgd_epochs']} epochs", flush=True)
    lines = [f"# JMIV CNNs trained by a second-order solver on a subset — {args.data}", "",
             f"Generated by `python examples/reproduce_jmiv_table1.py {' '.join(sys.argv[1:])}`.", "",
             f"Machine: {mach['cpu']}, {mach['cores']} cores, load average at the start {mach['load']}; meganet "
             f"{mach['meganet']} (commit {mach['commit']}); seed {args.seed}; {np.dtype(dtype).name}.", "",
             f"The first {args.second_order:,} images of the training split; widths {tuple(args.channels)}; the "
             f"regularizers (13) and the box of the paper. Projected Gauss-Newton-PCG: {args.gn_iter} iterations, "
             f"≤ {args.gn_cg} CG steps, Gauss-Newton products on a random {100 * args.gn_hessian_fraction:g} % of "
             "the subset. SGD: the §5 recipe (momentum 0.9, batch 125, 0.1/0.02/0.004 in the proportions "
             "60:20:20, no augmentation) for as many epochs as Gauss-Newton used work units / 2 (an epoch is one "
             f"forward and one adjoint pass). Validation: {ds.X_val.shape[0]:,} held-out training images; test: "
             f"{ds.X_test.shape[0]:,} images of the test file.",
             "", "| network | GN test % | GN val % | GN work units | GN s | SGD test % | SGD val % (best) | SGD epochs | "
             "SGD s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {LABEL[r['kind']]} | {100 * r['gn_test_accuracy']:.2f} | {100 * r['gn_val_accuracy']:.2f} | "
                     f"{r['gn_work_units']:.0f} | {r['gn_seconds']:.0f} | {100 * r['sgd_test_accuracy']:.2f} | "
                     f"{100 * r['sgd_val_accuracy']:.2f} | {r['sgd_epochs']} | {r['sgd_seconds']:.0f} |")
    write_table(args.out, f"{args.data}_second_order.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
