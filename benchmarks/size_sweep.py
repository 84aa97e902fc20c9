"""Small problems (issue 13): meganet[numba], meganet[numpy] and PyTorch vs problem size.

Run ``python benchmarks/size_sweep.py [--out DIR]`` (``--help`` for options).

Block: B1's antisymmetric dense ResNet ``ResNet(SingleLayer(AntisymmetricDense(n)), engine=e)``, tanh,
T = 5, float64 (``--blocks dense,verlet`` adds ``HamiltonianVerlet(n/2, n/2, bias='scalar')``, T = 20).
Op ``gradient``: ``block.forward`` + ``block.JTmv`` of a fixed random cotangent (θ- and Y-adjoint);
PyTorch: the same loop, ``torch.autograd.grad``.  Sizes: examples s × width n × depth N over a grid
from 8 × 4 × 4 to B1's 5000 × 8 × 64 (and beyond in width); the size measure is
``work = s·n²·N`` (the multiply-adds of one forward sweep).  Per size the engines run
interleaved (``common.compare``, two warm-ups, ``--reps`` rounds); min and median are kept.  Besides the
explicit ``numpy`` and ``numba`` engines, ``auto`` is what a user gets by default (its rule for small
problems: ``FusedSweeps.auto_min_steps``).

Then the pieces that explain the crossover (``"what": "overhead"`` lines):

* numba per-call cost: an empty ``@njit(parallel=True)`` kernel with a ``prange`` over 2 items vs
  the same kernel ``@njit`` serial, called ``--calls`` times (per-call µs, min over 5 batches), and
  the numba threading layer in use;
* numpy engine per-step cost: the slope of its time vs N at the smallest s and n (Python
  overhead per layer), and its intercept;
* numba engine fixed cost: its time at the smallest size, and a ``cProfile`` of 200 gradient calls of
  each meganet engine at the smallest width and examples, N = 16 (``"what": "profile"``: the functions
  with the most own time per gradient and their call counts);
* ``"what": "isolation"``: each engine timed alone vs interleaved with the other two, at the smallest
  size and at the largest;
* the empty-kernel cost again in fresh processes under ``OMP_WAIT_POLICY=PASSIVE`` and ``ACTIVE``.

One JSON line per measurement; ``--out`` also writes ``results.jsonl`` and ``size_sweep.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import limit_threads, torch_first  # noqa: E402

limit_threads()
torch_first()  # PyTorch keeps its own OpenMP wait policy (see benchmarks/common.py)
# meganet's default OMP_WAIT_POLICY (PASSIVE) must be in place before the launch-cost probe below loads
# numba's OpenMP runtime: otherwise every numba kernel of the run gets libgomp's default (spinning) policy
import meganet.kernels._numba_math  # noqa: E402,F401  (its import sets the default, see _prepare_threads)

import numpy as np  # noqa: E402

from benchmarks.common import compare, emit  # noqa: E402

SIZES = {"dense": dict(s=(8, 64, 512, 5000), n=(4, 8, 16), N=(4, 16, 64)),
         "verlet": dict(s=(8, 64, 512, 4096), n=(4, 8), N=(4, 64, 1024))}


def build(block, engine, s, n, N, seed=0):
    rng = np.random.default_rng(seed)
    if block == "dense":
        from meganet.integrators import ResNet
        from meganet.layers import SingleLayer
        from meganet.transforms.antisymmetric import AntisymmetricDense

        el = ResNet(SingleLayer(AntisymmetricDense(n, gamma=1e-4, scale=1.0), activation="tanh"), n_steps=N,
                    final_time=5.0, engine="numba" if engine == "pytorch" else engine)
        Y = rng.standard_normal((s, n))
    else:
        from meganet.integrators.verlet import HamiltonianVerlet

        m = n // 2
        el = HamiltonianVerlet(m, m, n_steps=N, final_time=20.0, bias="scalar",
                               engine="numba" if engine == "pytorch" else engine)
        Y = np.hstack([rng.standard_normal((s, m)), np.zeros((s, m))])
    theta = 0.1 * rng.standard_normal(el.n_theta)
    W = rng.standard_normal(Y.shape)
    if engine != "pytorch":
        def gradient():
            Z, cache = el.forward(theta, Y)
            return el.JTmv(W, theta, Y, cache)
        return gradient

    import torch

    th, Yt, Wt = torch.from_numpy(theta), torch.from_numpy(Y), torch.from_numpy(W)
    h = el.h
    if block == "dense":
        K0 = th.reshape(N, -1)[:, : n * n].reshape(N, n, n).transpose(1, 2)
        b0 = th.reshape(N, -1)[:, n * n:]
        eye = torch.eye(n, dtype=torch.float64)

        def run(K, b, Y):
            for j in range(N):
                Y = Y + h * torch.tanh(Y @ (K[j] - K[j].T - 1e-4 * eye) + b[j])
            return Y
    else:
        m = n // 2
        K0 = th.reshape(N, -1)[:, : m * m].reshape(N, m, m)
        b0 = th.reshape(N, -1)[:, m * m]

        def run(K, b, Y):
            y, z = Y[:, :m], Y[:, m:]
            for j in range(N):
                z = z - h * torch.tanh(y @ K[j] + b[j])
                y = y + h * torch.tanh(z @ K[j].T + b[j])
            return torch.cat([y, z], 1)

    def gradient():
        p = [K0.detach().clone().requires_grad_(), b0.detach().clone().requires_grad_(),
             Yt.detach().clone().requires_grad_()]
        Z = run(*p)
        return torch.autograd.grad((Z * Wt).sum(), p)

    return gradient


def numba_call_cost(calls):
    """Per-call µs of an empty parallel kernel vs the same serial kernel (min over 5 batches)."""
    import numba
    from numba import njit, prange

    def body(x):
        for i in prange(x.shape[0]):
            x[i] += 1.0

    par, ser = njit(parallel=True)(body), njit(body)
    x = np.zeros(2)
    big = np.zeros(2000)
    par(x), ser(x), par(big)
    out = {}
    for name, f, arg in (("parallel_2_items", par, x), ("serial_2_items", ser, x), ("parallel_2000_items", par, big)):
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(calls):
                f(arg)
            best = min(best, (time.perf_counter() - t0) / calls)
        out[name + "_us"] = best * 1e6
    out["threading_layer"] = numba.threading_layer()
    out["numba_threads"] = numba.get_num_threads()
    return out


def numba_call_cost_policies(calls):
    """:func:`numba_call_cost` in fresh processes under OMP_WAIT_POLICY=PASSIVE and ACTIVE (the OpenMP
    threads of numba's pool sleep between calls, or spin)."""
    import subprocess

    res = {}
    for policy in ("PASSIVE", "ACTIVE"):
        code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r}); "
                f"import json, benchmarks.size_sweep as S; print(json.dumps(S.numba_call_cost({calls})))")
        env = dict(os.environ, OMP_WAIT_POLICY=policy)
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        res[policy] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else proc.stderr[-500:]
    return res


def profile_tiny(block, engine, s, n, N, calls=200, top=10):
    """cProfile of ``calls`` gradient calls at a tiny size: where the fixed cost goes."""
    import cProfile
    import pstats

    f = build(block, engine, s, n, N)
    f(), f()
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    for _ in range(calls):
        f()
    pr.disable()
    per_call = (time.perf_counter() - t0) / calls
    st = pstats.Stats(pr)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]  # by own time
    return dict(per_call_us_profiled=per_call * 1e6,
                top_own_time=[dict(fn=f"{os.path.basename(k[0])}:{k[1]}:{k[2]}", calls_per_gradient=v[1] / calls,
                                   own_us_per_gradient=v[2] / calls * 1e6) for k, v in rows])


def plot(recs, out, block):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    rs = [r for r in recs if r.get("what") == "time" and r["block"] == block]
    for e, mk in (("numpy", "s"), ("numba", "o"), ("auto", "x"), ("pytorch", "^")):
        xs = [r["work"] for r in rs if r["engine"] == e]
        axes[0].loglog(xs, [r["min_s"] for r in rs if r["engine"] == e], mk, alpha=0.7,
                       label=f"meganet[{e}]" if e != "pytorch" else "PyTorch")
    axes[0].set_xlabel("work = examples · width² · depth")
    axes[0].set_ylabel("forward + gradient, min time [s]")
    axes[0].legend()
    axes[0].grid(True, which="both", alpha=0.3)
    key = {(r["s"], r["n"], r["N"], r["engine"]): r["min_s"] for r in rs}
    for num, ref, mk in (("numba", "numpy", "o"), ("numba", "pytorch", "^"), ("auto", "numpy", "x")):
        pts = [(s * n * n * N, key[s, n, N, num] / key[s, n, N, ref])
               for (s, n, N, e) in key if e == num and (s, n, N, ref) in key]
        axes[1].loglog([p[0] for p in pts], [p[1] for p in pts], mk, label=f"{num} / {ref}")
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set_xlabel("work = examples · width² · depth")
    axes[1].set_ylabel("time ratio (< 1: numerator faster)")
    axes[1].legend()
    axes[1].grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{block}: forward + gradient vs size (2 threads)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"size_sweep_{block}.png"), dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", default="dense")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    out = args.out
    if out:
        os.makedirs(out, exist_ok=True)
    stream = open(os.path.join(out, "results.jsonl"), "w") if out else None
    recs = []

    def put(rec):
        recs.append(rec)
        emit(rec)
        if stream:
            print(json.dumps(rec), file=stream, flush=True)

    put(dict(what="overhead", kind="numba_call", load1=os.getloadavg()[0],
             omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"), **numba_call_cost(args.calls)))
    put(dict(what="overhead", kind="numba_call_by_policy", load1=os.getloadavg()[0],
             **numba_call_cost_policies(args.calls)))
    for block in args.blocks.split(","):
        g = SIZES[block]
        for e in ("numba", "numpy"):
            put(dict(what="profile", block=block, engine=e, s=g["s"][0], n=g["n"][0], N=16, load1=os.getloadavg()[0],
                     **profile_tiny(block, e, g["s"][0], g["n"][0], 16)))
    engines = ("numpy", "numba", "pytorch")
    for block in args.blocks.split(","):
        g = SIZES[block]
        # the same engine timed alone (no other framework's thread pool between its calls) vs interleaved
        for s, n, N in ((g["s"][0], g["n"][0], g["N"][1]), (g["s"][-1], g["n"][1], g["N"][-1])):
            fns = {e: build(block, e, s, n, N) for e in engines}
            alone = {e: compare({e: fns[e]}, reps=args.reps, warmup=2)[e] for e in engines}
            mixed = compare(fns, reps=args.reps, warmup=2)
            for e in engines:
                put(dict(what="isolation", block=block, engine=e, s=s, n=n, N=N, alone_min_s=min(alone[e][1]),
                         alone_median_s=alone[e][0], interleaved_min_s=min(mixed[e][1]),
                         interleaved_median_s=mixed[e][0], load1=os.getloadavg()[0]))
        for s, n, N in itertools.product(g["s"], g["n"], g["N"]):
            # "auto": what a user gets by default (Verlet: the step loop below 8 steps, see FusedSweeps)
            fns = {e: build(block, e, s, n, N) for e in engines + ("auto",)}
            ld = os.getloadavg()[0]
            res = compare(fns, reps=args.reps, warmup=2)
            for e in fns:
                put(dict(what="time", block=block, engine=e, s=s, n=n, N=N, work=s * n * n * N,
                         median_s=res[e][0], min_s=min(res[e][1]), reps=args.reps, load1=ld))
        # numpy per-step overhead and numba fixed cost at the smallest s, n
        s0, n0 = g["s"][0], g["n"][0]
        for e in engines:
            rs = sorted((r for r in recs if r.get("what") == "time" and r["block"] == block and r["engine"] == e
                         and r["s"] == s0 and r["n"] == n0), key=lambda r: r["N"])
            a, b = np.polyfit([r["N"] for r in rs], [r["min_s"] for r in rs], 1)
            put(dict(what="overhead", kind="per_step_fit", block=block, engine=e, s=s0, n=n0,
                     per_step_us=a * 1e6, fixed_us=b * 1e6, depths=[r["N"] for r in rs]))
        # crossovers: per (n, N) the smallest s from which numba stays below numpy
        key = {(r["s"], r["n"], r["N"], r["engine"]): r["min_s"] for r in recs
               if r.get("what") == "time" and r["block"] == block}
        for n, N in itertools.product(g["n"], g["N"]):
            ratios = [(s, key[s, n, N, "numba"] / key[s, n, N, "numpy"]) for s in g["s"]]
            cross = next((s for i, (s, _) in enumerate(ratios) if all(r < 1 for _, r in ratios[i:])), None)
            put(dict(what="crossover", block=block, n=n, N=N, numba_over_numpy=[round(r, 3) for _, r in ratios],
                     numba_over_pytorch=[round(key[s, n, N, "numba"] / key[s, n, N, "pytorch"], 3) for s in g["s"]],
                     s=list(g["s"]), first_s_numba_faster=cross,
                     work_at_crossover=None if cross is None else cross * n * n * N))
        if out:
            plot(recs, out, block)


if __name__ == "__main__":
    main()
