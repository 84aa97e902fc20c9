r"""Constrained latent distributions for weakly supervised segmentation (Pathak, Krähenbühl & Darrell 2015, as
presented by Rabinovich 2020): learn per-pixel labels from image-level tags.

Data: :func:`meganet.data.digit_canvas` — MNIST digits (halved to 14 × 14 by 2 × 2 averaging) placed on 28 × 28
canvases, 1 or 2 per canvas; pixel labels are the digit's class on its stroke and background elsewhere (kept for
evaluation only), the tags are the set of digits present.  Network: :func:`meganet.networks.segmentation_network`
(reversible Hamiltonian block at full resolution) with a per-pixel softmax classifier.  Constraints per image
(:func:`meganet.weak.tag_constraints`, Rabinovich §3.2): suppression of the labels not in the tags, foreground
``p̄(l) ≥ a`` for each tagged digit (eq. 6), background ``lower ≤ p̄(0) ≤ upper``.

Part 1 — Rabinovich's demonstration (§3.3), as numbers: an under-trained and a fully trained network, both on pixel
labels and from the same initial weights; one P-step (:func:`meganet.weak.p_step`) on the under-trained network's
test-canvas distributions Q; how much closer, in KL, the projected P is to the fully trained network's output F than
Q is: ``1 − KL(P, F) / KL(Q, F)``, per pixel, both directions of KL (he reports "about 66 %" on CamVid).

Part 2 — the full method: train from tags only by alternating P-step and θ-step
(:func:`meganet.weak.train_constrained`) and compare test mIoU with the network trained on full pixel labels and
with tags used without size constraints (suppression only: the P-step only removes the labels not in the tags).

Usage::

    python examples/pathak_weak_labels.py                 # ~25 minutes on 2 cores
    python examples/pathak_weak_labels.py --n-train 40 --n-test 20 --epochs 2 --outer 2 --digits 2   # smoke test

Results: ``--out`` (default ``examples/results/pathak_2015``): ``weak_labels.md``, ``weak_labels.jsonl``,
``maps.png``, ``alternating_history.png``.
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

RESULTS = os.path.join(HERE, "results", "pathak_2015")


def make_data(args):
    """Training and test canvases of the digits ``0 … digits−1`` (n_labels = digits + 1)."""
    from meganet.data import digit_canvas, load_mnist

    d = load_mnist(seed=args.seed, folder=args.data_folder)
    keep = d.y_train < args.digits
    X, y = d.X_train[keep], d.y_train[keep]
    X = X.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4))          # 28 × 28 → 14 × 14
    half = X.shape[0] // 2                                     # disjoint digit pools for training and test
    L = args.digits + 1
    kw = dict(canvas=(28, 28), per_image=(1, 2), stroke_threshold=0.4)
    tr = digit_canvas(X[:half], y[:half], args.n_train, seed=args.seed, **kw)
    te = digit_canvas(X[half:], y[half:], args.n_test, seed=args.seed + 1000, **kw)
    for c in (tr, te):
        c.tags = c.tags[:, :L]
        c.n_labels = L
    return tr, te


def scores(net, loss, x, obj, canvases, L):
    from meganet.metrics import segmentation_scores

    theta, w = obj.split(x)
    Y = net(theta, canvases.X)
    pred = loss.predict(Y, w)
    s = segmentation_scores(canvases.pixel_labels, pred, L)
    digit_mass = 1.0 - loss.probabilities(Y, w)[:, 0]          # Σ_{l ≥ 1} Q(l) per pixel
    stroke = canvases.pixel_labels > 0
    return dict(miou=float(s.miou), pixel_accuracy=float(s.pixel_accuracy), iou=[float(v) for v in s.iou],
                digit_mass_stroke=float(digit_mass[stroke].mean()),
                digit_mass_background=float(digit_mass[~stroke].mean())), pred


def train_pixels(net, loss, tr, x0, epochs, args):
    """Adam on the per-pixel cross-entropy with the full pixel labels."""
    from meganet.objectives import NetworkObjective
    from meganet.optimizers import minimize_adam

    obj = NetworkObjective(net, loss, tr.X, tr.pixel_labels, batch_size=args.batch_size)
    return minimize_adam(obj, x0, learning_rate=args.lr, n_epochs=epochs, rng=args.seed), obj


def truth_closeness(labels, Q_logits, P):
    """``KL(T‖·)`` for the one-hot truth T: the mean of ``−log P(true label)`` over the pixels, for Q and P."""
    Z = Q_logits - Q_logits.max(axis=1, keepdims=True)
    logQ = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    idx = labels[:, None]
    kq = float(-np.take_along_axis(logQ, idx, axis=1).mean())
    pt = np.take_along_axis(P, idx, axis=1)
    kp = float(-np.log(pt).mean()) if (pt > 0).all() else float("inf")
    return dict(Q=kq, P=kp, closer=1.0 - kp / kq)


def closeness(F_logits, Q_logits, P):
    """Mean per-pixel KL between the fully trained network's distributions F and Q (under-trained) or P (projected),
    both directions; ``closer = 1 − KL(P, F) / KL(Q, F)``."""
    from meganet.weak import kl_divergence

    def sm(Z):
        e = np.exp(Z - Z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    F, Q = sm(F_logits), sm(Q_logits)
    out = {}
    for name, a, b in (("KL(·‖F)", None, F), ("KL(F‖·)", F, None)):
        kq = float((kl_divergence(Q, b) if a is None else kl_divergence(a, Q)).mean())
        if a is not None and (P == 0).any():
            kp = float("inf")                                 # F > 0 where hard suppression sets P = 0
        else:
            kp = float((kl_divergence(P, b) if a is None else kl_divergence(a, P)).mean())
        out[name] = dict(Q=kq, P=kp, closer=1.0 - kp / kq if kq > 0 else float("nan"))
    return out


def plot(out, te, rows_maps, histories):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(4, te.X.shape[0])
    cols = [("canvas", None), ("pixel labels (truth)", te.pixel_labels)] + rows_maps
    fig, axs = plt.subplots(k, len(cols), figsize=(2.1 * len(cols), 2.1 * k), squeeze=False)
    L = te.n_labels
    for i in range(k):
        for j, (title, m) in enumerate(cols):
            ax = axs[i, j]
            if m is None:
                ax.imshow(te.X[i, 0], cmap="gray")
            else:
                ax.imshow(m[i], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
            if i == 0:
                ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        tags = [str(l - 1) for l in range(1, L) if te.tags[i, l]]
        axs[i, 0].set_ylabel("tags: " + ", ".join(tags), fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "maps.png"), dpi=110)
    plt.close(fig)
    fig, axs = plt.subplots(1, 3, figsize=(12, 3.4))
    for name, h in histories:
        axs[0].semilogy(h["outer"], h["kl"], "o-", label=name)
        axs[1].semilogy(h["outer"], np.maximum(h["violation_Q"], 1e-16), "o-", label=name)
        axs[2].plot(h["outer"], h["test_miou"], "o-", label=name)
    for ax, t in zip(axs, ("P-step KL(P‖Q) per pixel", "constraint violation of Q (max over images)",
                           "test mIoU")):
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("outer iteration")
        ax.grid(alpha=0.3)
    axs[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "alternating_history.png"), dpi=110)
    plt.close(fig)


def run_seed(args, seed):
    """Both parts for one seed (data, initial weights and Adam's batches drawn from it)."""
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.metrics import segmentation_scores
    from meganet.networks import segmentation_network
    from meganet.objectives import NetworkObjective
    from meganet.weak import p_step, tag_constraints, train_constrained

    args = argparse.Namespace(**{**vars(args), "seed": seed})
    tr, te = make_data(args)
    L = args.digits + 1
    share = np.concatenate([(tr.pixel_labels == l).mean(axis=(1, 2))[tr.tags[:, l]] for l in range(1, L)])
    bg = (tr.pixel_labels == 0).mean(axis=(1, 2))
    stats = dict(digit_share_q05=float(np.quantile(share, 0.05)), digit_share_median=float(np.median(share)),
                 digit_share_min=float(share.min()), background_share_min=float(bg.min()),
                 background_share_max=float(bg.max()))
    print(f"seed {seed}: {args.n_train} training / {args.n_test} test canvases, {L} labels; tagged-digit share "
          f"5 % quantile {stats['digit_share_q05']:.4f} (min {stats['digit_share_min']:.4f}, median "
          f"{stats['digit_share_median']:.4f}), background share {bg.min():.3f}-{bg.max():.3f}", flush=True)
    net = segmentation_network(1, (28, 28), width=args.width, n_layers=args.layers)
    loss = SoftmaxCrossEntropy(net.shape_out, L, per_pixel=True)
    x0 = NetworkObjective(net, loss, tr.X, tr.pixel_labels).init_x(rng=seed)

    # ---- part 1: under-trained vs fully trained, one P-step
    under, obj = train_pixels(net, loss, tr, x0, args.under_epochs, args)
    full, _ = train_pixels(net, loss, tr, x0, args.epochs, args)
    s_under, _ = scores(net, loss, under.x, obj, te, L)
    s_full, pred_full = scores(net, loss, full.x, obj, te, L)
    logits = {}
    for name, x in (("under", under.x), ("full", full.x)):
        theta, w = obj.split(x)
        logits[name] = loss.logits(net(theta, te.X), w)
    pathak = dict(foreground_fraction=args.fraction, background_bounds=tuple(args.background))
    sets = [(f"foreground only, a = {args.fraction:g} (Rabinovich's kind)",
             dict(foreground_fraction=args.fraction, suppress=False), None),
            (f"foreground only, a = {4 * args.fraction:g}", dict(foreground_fraction=4 * args.fraction,
                                                                 suppress=False), None),
            ("suppression + foreground + background (Pathak)", pathak, None),
            ("the same with slack, β = 10 n (n = 784 pixels)", pathak, 10.0 * 28 * 28)]  # β/n = 10 nats per pixel
    demo = []
    F_arg = logits["full"].argmax(axis=1)
    for name, kw, beta in sets:
        ps = p_step(logits["under"], tag_constraints(te.tags, **kw), beta=beta)
        c = closeness(logits["full"], logits["under"], ps.P)
        c["KL(T‖·)"] = truth_closeness(te.pixel_labels, logits["under"], ps.P)
        pred_P = ps.P.argmax(axis=1)
        sP = segmentation_scores(te.pixel_labels, pred_P, L)
        demo.append(dict(part="closeness", seed=seed, constraints=name, beta=beta, kl_P_Q=float(ps.kl.mean()),
                         violation_Q=float(ps.violation_Q.max()), violation_P=float(ps.violation_P.max()),
                         closeness=c, miou_P=float(sP.miou), miou_Q=s_under["miou"], miou_F=s_full["miou"],
                         agree_Q_F=float((logits["under"].argmax(axis=1) == F_arg).mean()),
                         agree_P_F=float((pred_P == F_arg).mean())))
        print(f"  P-step, {name}: KL(P‖F) {c['KL(·‖F)']['P']:.4f} vs KL(Q‖F) {c['KL(·‖F)']['Q']:.4f} "
              f"({100 * c['KL(·‖F)']['closer']:.0f} % closer), to the truth {100 * c['KL(T‖·)']['closer']:.0f} % "
              f"closer; mIoU argmax P {sP.miou:.3f} vs Q {s_under['miou']:.3f}", flush=True)

    # ---- part 2: from tags
    histories, maps = [], [(f"full pixel labels (mIoU {s_full['miou']:.2f})", pred_full)]
    table = [dict(part="table", seed=seed, method="full pixel labels", **s_full, seconds=full.wall_time,
                  data_statistics=stats),
             dict(part="table", seed=seed, method=f"under-trained ({args.under_epochs} epoch of pixel labels)",
                  **s_under, seconds=under.wall_time)]
    runs = [("tags + constraints (Pathak)", pathak, x0), ("tags, suppression only (no size constraints)", {}, x0),
            ("under-trained, then tags + constraints", pathak, under.x),
            ("under-trained, then tags, suppression only", {}, under.x)]
    for name, kw, start in runs:
        cons = tag_constraints(tr.tags, **kw)
        hist = {"outer": [], "kl": [], "violation_Q": [], "test_miou": []}

        def cb(x, row, hist=hist, name=name):
            for key in ("outer", "kl", "violation_Q"):
                hist[key].append(row[key])
            hist["test_miou"].append(scores(net, loss, x, obj, te, L)[0]["miou"])
            print(f"  {name}: outer {row['outer']}: KL {row['kl']:.4f}, violation(Q) {row['violation_Q']:.3f}, "
                  f"test mIoU {hist['test_miou'][-1]:.3f}", flush=True)

        res = train_constrained(net, loss, tr.X, cons, start, outer_iter=args.outer, theta_solver="adam",
                                theta_solver_options=dict(n_epochs=1, learning_rate=args.lr),
                                objective_options=dict(batch_size=args.batch_size), callback=cb)
        sc, pred = scores(net, loss, res.x, obj, te, L)
        table.append(dict(part="table", seed=seed, method=name, status=str(res.status), **sc,
                          seconds=res.wall_time, history={k: list(map(float, v)) for k, v in hist.items()}))
        histories.append((name, hist))
        if start is x0:
            maps.append((f"{name.split(' (')[0]} (mIoU {sc['miou']:.2f})", pred))
    return demo, table, maps, histories, te


def _mean_range(values, fmt=".3f", pct=False):
    v = np.array(values, dtype=float)
    k = 100.0 if pct else 1.0
    unit = " %" if pct else ""
    if not np.isfinite(v).all():
        return "∞" if np.isinf(v).all() else "—"
    if len(v) == 1:
        return f"{k * v[0]:{fmt}}{unit}"
    return f"{k * v.mean():{fmt}}{unit} ({k * v.min():{fmt}}–{k * v.max():{fmt}})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--digits", type=int, default=4, help="use the digits 0 … N−1 (default 4: labels = 5)")
    p.add_argument("--n-train", type=int, default=1000, help="training canvases")
    p.add_argument("--n-test", type=int, default=300, help="test canvases")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--epochs", type=int, default=15, help="Adam epochs of the fully trained network")
    p.add_argument("--under-epochs", type=int, default=1, help="Adam epochs of the under-trained network")
    p.add_argument("--outer", type=int, default=10, help="outer iterations (P-step + one Adam epoch) from tags")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--fraction", type=float, default=0.015,
                   help="foreground constraint a per tagged digit (default 0.015: the 5 %% quantile of a tagged "
                        "digit's pixel share on the training canvases, as Pathak et al. set a from data statistics)")
    p.add_argument("--background", type=float, nargs=2, default=(0.85, 0.99),
                   help="background fraction bounds (default 0.85 0.99: around the range 0.88-0.99 of the training "
                        "canvases)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-folder", default=None, help="MNIST folder (default: meganet.data.data_folder())")
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args(argv)
    if not 1 <= args.digits <= 10:
        p.error(f"--digits must lie in 1 … 10, got {args.digits}")
    os.makedirs(args.out, exist_ok=True)
    mach = machine()
    t0 = time.perf_counter()
    demo, table, maps, histories, te0 = [], [], None, None, None
    for seed in args.seeds:
        d, t, m, h, te = run_seed(args, seed)
        demo += d
        table += t
        if maps is None:
            maps, histories, te0 = m, h, te
    tmp = os.path.join(args.out, ".weak_labels.jsonl.tmp")
    with open(tmp, "w") as f:
        for r in demo + table:
            f.write(json.dumps(dict(r, machine=mach, args=vars(args))) + "\n")
    os.replace(tmp, os.path.join(args.out, "weak_labels.jsonl"))
    plot(args.out, te0, maps, histories)

    seeds = " ".join(map(str, args.seeds))
    full = [r for r in table if r["method"] == "full pixel labels"]
    under = [r for r in table if r["method"].startswith("under-trained (")]
    lines = ["# Constrained latent distributions from image-level tags (Pathak et al. 2015; Rabinovich 2020)", "",
             f"Generated by `python examples/pathak_weak_labels.py {' '.join(sys.argv[1:])}` in "
             f"{time.perf_counter() - t0:.0f} s; machine {mach['cpu']} ({mach['cores']} cores, load {mach['load']}), "
             f"meganet {mach['meganet']} (commit {mach['commit']}).", "",
             f"Scaled-down setting (the papers: PASCAL VOC / CamVid, a pretrained VGG / a UNet): MNIST digits "
             f"0–{args.digits - 1} halved to 14 × 14 on 28 × 28 canvases, 1–2 per canvas, {args.n_train} training "
             f"and {args.n_test} test canvases (digits drawn from disjoint halves of the MNIST pool), "
             f"{args.digits + 1} labels; reversible Hamiltonian network, width {args.width}, {args.layers} layers; "
             f"Adam (lr {args.lr:g}, batch {args.batch_size}); constraints: foreground a = {args.fraction:g} per "
             f"tagged digit, background fraction in [{args.background[0]:g}, {args.background[1]:g}], suppression "
             f"of untagged digits. Seeds {seeds}: every number is the mean over the seeds with the range in "
             "parentheses.", "",
             "Training canvases (for the constraints' values): a tagged digit covers "
             + ", ".join(f"{100 * r['data_statistics']['digit_share_q05']:.1f} %" for r in full)
             + " of the pixels at the 5 % quantile (median "
             + ", ".join(f"{100 * r['data_statistics']['digit_share_median']:.1f} %" for r in full)
             + "); the background covers "
             + ", ".join(f"{r['data_statistics']['background_share_min']:.2f}–"
                         f"{r['data_statistics']['background_share_max']:.2f}" for r in full)
             + " (per seed).", "",
             "## 1. One P-step on an under-trained network (Rabinovich §3.3)", "",
             f"Under-trained: {args.under_epochs} epoch on pixel labels (test mIoU "
             f"{_mean_range([r['miou'] for r in under])}); fully trained (F): {args.epochs} epochs (test mIoU "
             f"{_mean_range([r['miou'] for r in full])}); same initial weights. Per-pixel KL on the test canvases; "
             "*closer* = 1 − KL(P, ·)/KL(Q, ·) (Rabinovich: P about 66 % closer to the fully trained network than "
             "Q on CamVid, foreground constraints only). T: the one-hot pixel labels, KL(T‖Q) = mean −log Q(true "
             "label). *agree*: pixels where the arg-max label equals F's.", "",
             "| constraints | KL(Q‖F) → KL(P‖F) | closer to F | KL(F‖·) closer | KL(T‖Q) → KL(T‖P) | closer to "
             "the truth | agree with F: Q → P | mIoU arg-max: Q → P |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["constraints"] for r in demo):
        rs = [r for r in demo if r["constraints"] == name]
        c = lambda key, part: [r["closeness"][key][part] for r in rs]  # noqa: E731
        lines.append(
            f"| {name} | {_mean_range(c('KL(·‖F)', 'Q'), '.4f')} → {_mean_range(c('KL(·‖F)', 'P'), '.4f')} | "
            f"{_mean_range(c('KL(·‖F)', 'closer'), '.0f', True)} | "
            f"{_mean_range([x if np.isfinite(x) else np.nan for x in c('KL(F‖·)', 'closer')], '.0f', True)} | "
            f"{_mean_range(c('KL(T‖·)', 'Q'), '.3f')} → {_mean_range(c('KL(T‖·)', 'P'), '.3f')} | "
            f"{_mean_range(c('KL(T‖·)', 'closer'), '.0f', True)} | "
            f"{_mean_range([r['agree_Q_F'] for r in rs])} → {_mean_range([r['agree_P_F'] for r in rs])} | "
            f"{_mean_range([r['miou_Q'] for r in rs])} → {_mean_range([r['miou_P'] for r in rs])} |")
    lines += ["", "KL(F‖P) is infinite with hard suppression (P = 0 on untagged labels, F > 0 everywhere): shown "
              "as —.", "",
              "## 2. Training from tags only (alternating P-step / θ-step)", "",
              f"{args.outer} outer iterations, each a P-step on all training canvases and one Adam epoch against P, "
              f"from the initial weights or from the under-trained network; the fully trained network: "
              f"{args.epochs} Adam epochs on the pixel labels. Test canvases, all pixels:", "",
              "| training signal | test mIoU | pixel accuracy | IoU background | IoU digits (mean) | digit mass on "
              "strokes | digit mass on background | time (s) |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["method"] for r in table):
        rs = [r for r in table if r["method"] == name]
        lines.append(f"| {name} | {_mean_range([r['miou'] for r in rs])} | "
                     f"{_mean_range([r['pixel_accuracy'] for r in rs])} | {_mean_range([r['iou'][0] for r in rs])} | "
                     f"{_mean_range([np.mean(r['iou'][1:]) for r in rs])} | "
                     f"{_mean_range([r['digit_mass_stroke'] for r in rs])} | "
                     f"{_mean_range([r['digit_mass_background'] for r in rs])} | "
                     f"{np.mean([r['seconds'] for r in rs]):.0f} |")
    lines += ["", "Digit mass: the network's Σ_{l ≥ 1} Q(l), averaged over the stroke pixels and over the background "
              "pixels of the test canvases."]
    write_table(args.out, "weak_labels.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
