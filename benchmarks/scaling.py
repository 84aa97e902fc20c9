"""Cost growth (issue 13): time and peak memory of forward + gradient vs depth N and vs examples.

Run ``python benchmarks/scaling.py [--out DIR]`` (``--help`` for options).  Blocks, each next to the
same loop in eager PyTorch (autograd; PyTorch keeps every step's graph — ``torch.utils.checkpoint``
would be a different algorithm and is not used):

``dense``          ``ResNet(SingleLayer(AntisymmetricDense(8)))``, width 8, tanh, T = 5 (h = 5/N), float64
``verlet_stored``  ``HamiltonianVerlet(4, 4, bias='scalar')``, T = 20, float64, states stored
``verlet_rev``     the same block with ``reversible=True`` (no states; recomputed backwards in ``JTmv``)
``conv``           ``ResNet(SymmetricLayer(Conv2d(8, 8, (16, 16))))`` (parabolic, B2's step), h = 0.1, float32

Op ``gradient``: ``block.forward`` (cache) + ``block.JTmv`` of a fixed random cotangent W (θ- and
Y-adjoint); PyTorch: the loop + ``torch.autograd.grad((Z·W).sum(), (θ, Y))``.

Depth sweep: N = 16, 64, 256, 1024, 4096 at a fixed number of examples; a block stops growing N
once one call of any engine took more than ``--max-call-s`` (the cap is printed).  Example sweep:
fixed N, examples ×4 per point.  Times: median of ``--reps`` interleaved repetitions after one
warm-up (``common.compare``).  Memory: ``common.peak_rss`` (growth of VmHWM over RSS during one
call, after one warm-up call) in one fresh process per (block, engine) with glibc's mmap threshold
at 4 KiB, the sizes in increasing order.  ``grad_mib`` is the size of the returned gradient
(θ-adjoint + Y-adjoint), which with per-step weights grows like N by itself; ``peak_mib − grad_mib``
is what the algorithm keeps.

One JSON line per (sweep, block, engine, size); ``--out`` also writes ``results.jsonl``, the plots
and the slopes (``slopes.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import limit_threads, torch_first  # noqa: E402

limit_threads()
torch_first()  # PyTorch keeps its own OpenMP wait policy (see benchmarks/common.py)

import numpy as np  # noqa: E402

from benchmarks.common import compare, emit, peak_rss  # noqa: E402

BLOCKS = ("dense", "verlet_stored", "verlet_rev", "conv")
DEPTHS = (16, 64, 256, 1024, 4096)
EXAMPLES = {"dense": 1000, "verlet_stored": 1026, "verlet_rev": 1026, "conv": 4}
EXAMPLE_SWEEP = {"dense": (64, 256, 1024, 4096, 16384), "verlet_stored": (64, 256, 1024, 4096, 16384),
                 "verlet_rev": (64, 256, 1024, 4096, 16384), "conv": (1, 4, 16, 64)}
DEPTH_FOR_EXAMPLES = {"dense": 256, "verlet_stored": 256, "verlet_rev": 256, "conv": 16}


# ------------------------------------------------------------------ problems
def _meganet(block, N, s, seed):
    rng = np.random.default_rng(seed)
    if block == "dense":
        from meganet.integrators import ResNet
        from meganet.layers import SingleLayer
        from meganet.transforms.antisymmetric import AntisymmetricDense

        el = ResNet(SingleLayer(AntisymmetricDense(8, gamma=1e-4, scale=1.0), activation="tanh"), n_steps=N,
                    final_time=5.0)
        Y, dtype = rng.standard_normal((s, 8)), np.float64
    elif block.startswith("verlet"):
        from meganet.integrators.verlet import HamiltonianVerlet

        el = HamiltonianVerlet(4, 4, n_steps=N, final_time=20.0, bias="scalar", reversible=block == "verlet_rev")
        Y = np.hstack([rng.standard_normal((s, 4)), np.zeros((s, 4))])
        dtype = np.float64
    else:
        from meganet.integrators import ResNet
        from meganet.layers.symmetric import SymmetricLayer
        from meganet.transforms.conv2d import Conv2d

        el = ResNet(SymmetricLayer(Conv2d(8, 8, (16, 16)), activation="tanh"), n_steps=N, final_time=0.1 * N)
        Y, dtype = rng.standard_normal((s, 8, 16, 16)), np.float32
    scale = np.sqrt(2.0 / 72) if block == "conv" else 0.1  # conv: K ~ N(0, 2/(9·C)) as in B2
    theta = (scale * rng.standard_normal(el.n_theta)).astype(dtype)
    Y = Y.astype(dtype)
    W = rng.standard_normal(Y.shape).astype(dtype)
    return el, theta, Y, W


def meganet_fn(block, N, s, seed=0):
    el, theta, Y, W = _meganet(block, N, s, seed)

    def gradient():
        Z, cache = el.forward(theta, Y)
        return el.JTmv(W, theta, Y, cache)

    return gradient


def torch_fn(block, N, s, seed=0):
    import torch

    torch.set_num_threads(2)
    el, theta, Y, W = _meganet(block, N, s, seed)  # same data and sizes
    th = torch.from_numpy(theta)
    Yt, Wt = torch.from_numpy(Y), torch.from_numpy(W)
    h = el.h if hasattr(el, "h") else None
    if block == "dense":
        K0 = th.reshape(N, -1)[:, :64].reshape(N, 8, 8).transpose(1, 2)  # θ_j = (vec K_jᵀ, b_j), as B1
        b0 = th.reshape(N, -1)[:, 64:]
        eye = torch.eye(8, dtype=torch.float64)

        def run(K, b, Y):
            for j in range(N):
                Y = Y + h * torch.tanh(Y @ (K[j] - K[j].T - 1e-4 * eye) + b[j])
            return Y
        params = (K0, b0)
    elif block.startswith("verlet"):
        K0 = th.reshape(N, -1)[:, :16].reshape(N, 4, 4)
        b0 = th.reshape(N, -1)[:, 16]

        def run(K, b, Y):
            y, z = Y[:, :4], Y[:, 4:]
            for j in range(N):
                z = z - h * torch.tanh(y @ K[j] + b[j])
                y = y + h * torch.tanh(z @ K[j].T + b[j])
            return torch.cat([y, z], 1)
        params = (K0, b0)
    else:
        F = torch.nn.functional
        K0 = th.reshape(N, -1)[:, :576].reshape(N, 8, 8, 3, 3)
        b0 = th.reshape(N, -1)[:, 576:]

        def run(K, b, Y):
            for j in range(N):
                Y = Y - h * F.conv_transpose2d(torch.tanh(F.conv2d(Y, K[j], b[j], padding=1)), K[j], padding=1)
            return Y
        params = (K0, b0)

    def gradient():
        p = [x.detach().clone().requires_grad_() for x in params] + [Yt.detach().clone().requires_grad_()]
        Z = run(p[0], p[1], p[2])
        return torch.autograd.grad((Z * Wt).sum(), p)

    return gradient


def make(engine, block, N, s, seed=0):
    return torch_fn(block, N, s, seed) if engine == "pytorch" else meganet_fn(block, N, s, seed)


def grad_mib(block, N, s):
    el, theta, Y, _ = _meganet(block, N, s, 0)
    return (theta.nbytes + Y.nbytes) / 2**20


# ------------------------------------------------------------------ memory worker
def memory_worker(engine, block, sizes):
    """In a fresh process: peak RSS growth of one call per (N, s), after a warm-up call."""
    for N, s in sizes:
        f = make(engine, block, N, s)
        f()
        peak = peak_rss(f)
        print(json.dumps({"N": N, "s": s, "peak_mib": peak}), flush=True)
        del f


def memory(engine, block, sizes, timeout=300):
    code = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps([engine, block, sizes])]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="4096")
    try:
        proc = subprocess.run(code, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        out = out.decode() if isinstance(out, bytes) else out
    else:
        out = proc.stdout
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
    res = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            res[r["N"], r["s"]] = r["peak_mib"]
    return res


# ------------------------------------------------------------------ fits and plots
def slope(xs, ys):
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = (xs > 0) & (ys > 0)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(xs[ok]), np.log(ys[ok]), 1)[0])


def load():
    return os.getloadavg()[0]


def plot(recs, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for sweep, xkey, xlabel in (("depth", "N", "depth N"), ("examples", "s", "examples")):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for (key, label, ax) in (("median_s", "forward + gradient time [s]", axes[0]),
                                 ("peak_mib", "peak RSS growth [MiB]", axes[1])):
            for block in BLOCKS:
                for engine, ls in (("meganet", "-"), ("pytorch", "--")):
                    if block == "verlet_rev" and engine == "pytorch":
                        continue  # same PyTorch loop as verlet_stored
                    rs = sorted((r for r in recs if r["sweep"] == sweep and r["block"] == block
                                 and r["engine"] == engine and r.get(key)), key=lambda r: r[xkey])
                    if rs:
                        ax.loglog([r[xkey] for r in rs], [r[key] for r in rs], ls, marker="o",
                                  label=f"{block} {engine}" if block != "verlet_stored" or engine == "meganet"
                                  else "verlet pytorch")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.suptitle(f"forward + gradient vs {xlabel} (2 threads, solid: meganet[numba], dashed: PyTorch)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"{sweep}.png"), dpi=110)
        plt.close(fig)


# ------------------------------------------------------------------ main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", default=",".join(BLOCKS))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--max-call-s", type=float, default=5.0, help="stop increasing N once a call took longer")
    p.add_argument("--out", default=None)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        engine, block, sizes = json.loads(args.worker)
        memory_worker(engine, block, [tuple(x) for x in sizes])
        return
    out = args.out
    if out:
        os.makedirs(out, exist_ok=True)
    stream = open(os.path.join(out, "results.jsonl"), "w") if out else None

    def put(rec):
        emit(rec)
        if stream:
            print(json.dumps(rec), file=stream, flush=True)

    recs = []
    for block in args.blocks.split(","):
        engines = ("meganet", "pytorch")
        done = {}
        for sweep, sizes in (("depth", [(N, EXAMPLES[block]) for N in DEPTHS]),
                             ("examples", [(DEPTH_FOR_EXAMPLES[block], s) for s in EXAMPLE_SWEEP[block]])):
            measured = []
            for N, s in sizes:
                fns = {e: make(e, block, N, s) for e in engines}
                ld = load()
                t0 = time.perf_counter()
                res = compare(fns, reps=args.reps, warmup=1)
                for e in engines:
                    r = {"sweep": sweep, "block": block, "engine": e, "N": N, "s": s, "op": "gradient",
                         "median_s": res[e][0], "min_s": min(res[e][1]), "reps": args.reps, "load1": ld,
                         "grad_mib": grad_mib(block, N, s)}
                    done[sweep, e, N, s] = r
                    recs.append(r)
                measured.append((N, s))
                del fns
                if max(res[e][0] for e in engines) > args.max_call_s or time.perf_counter() - t0 > 8 * args.max_call_s:
                    print(f"# {block} {sweep}: capped at N={N}, s={s}", file=sys.stderr, flush=True)
                    break
            if not args.skip_memory:
                for e in engines:
                    mem = memory(e, block, measured)
                    for (N, s), pk in mem.items():
                        done[sweep, e, N, s]["peak_mib"] = pk
            for N, s in measured:
                for e in engines:
                    put(done[sweep, e, N, s])
    # slopes
    slopes = []
    for block in args.blocks.split(","):
        for e in ("meganet", "pytorch"):
            for sweep, xkey in (("depth", "N"), ("examples", "s")):
                rs = sorted((r for r in recs if r["block"] == block and r["engine"] == e and r["sweep"] == sweep),
                            key=lambda r: r[xkey])
                if not rs:
                    continue
                xs = [r[xkey] for r in rs]
                top = rs[len(rs) // 2:] if len(rs) >= 4 else rs[-2:]
                rec = {"what": "slope", "block": block, "engine": e, "sweep": sweep,
                       "time_slope_all": slope(xs, [r["median_s"] for r in rs]),
                       "time_slope_upper": slope([r[xkey] for r in top], [r["median_s"] for r in top]),
                       "mem_slope_all": slope(xs, [r.get("peak_mib") or 0 for r in rs]),
                       "mem_slope_upper": slope([r[xkey] for r in top], [r.get("peak_mib") or 0 for r in top]),
                       "mem_minus_grad_slope_upper": slope([r[xkey] for r in top],
                                                           [max((r.get("peak_mib") or 0) - r["grad_mib"], 0)
                                                            for r in top]),
                       "range": [xs[0], xs[-1]]}
                slopes.append(rec)
                put(rec)
    if out:
        with open(os.path.join(out, "slopes.json"), "w") as f:
            json.dump(slopes, f, indent=1)
        plot(recs, out)


if __name__ == "__main__":
    main()
