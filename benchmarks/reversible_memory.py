"""Memory of reversible backpropagation, and the round-off of the backward recomputation.

Run ``python benchmarks/reversible_memory.py`` (``--help`` for options).  It prints
one JSON object per line:

``"what": "memory"``
    For the Hamiltonian/Verlet and leapfrog blocks, stored vs reversible mode and
    each depth N: the peak numpy memory of ``forward`` + ``JTmv`` (θ- and
    Y-adjoint), measured with ``tracemalloc`` (numpy reports its buffers to it)
    in a fresh subprocess per measurement, and that subprocess' ``ru_maxrss``.
    ``peak_bytes`` includes the gradient (``n_theta`` numbers, which grows with
    N for per-step weights); ``peak_minus_gradient_bytes`` is what the states
    cost (the time basis' table of rows, built once per block, is built before
    the measurement).  With ``--basis constant`` (shared weights) nothing else
    grows with N.
``"what": "reconstruction"``
    ``‖Y_0^rec − Y_0‖/‖Y_0‖``, the input recomputed backwards from the output
    (exactly what the reversible ``JTmv`` sees at its last step), vs depth, in
    float32 and float64, for tanh blocks with random weights at the default
    initialization scale (``K ~ N(0, 1/n)``, ``b ~ N(0, 0.01)``) that vary
    piecewise linearly in time with a node every ``--timescale`` time units
    (a hat :class:`TimeBasis`; the same weight function at every depth), in
    two regimes: fixed step ``h`` (``T = N h`` grows with depth) and fixed
    final time ``T`` (``h = T/N`` shrinks).  ``norm_growth`` is
    ``‖Y_N‖/‖Y_0‖``.
``"what": "accuracy_limit"``
    Per block, dtype and regime: the largest depth tested up to which every
    tested depth has relative reconstruction error below ``--accurate``
    (default 1e-3), and the first depth where the forward pass or the
    recomputation produced NaN/Inf, if any.

All random arrays are drawn with ``numpy.random.default_rng(seed)`` in float64
and cast; the seed is part of every line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from meganet.integrators.leapfrog import Leapfrog  # noqa: E402
from meganet.integrators.time_basis import TimeBasis  # noqa: E402
from meganet.integrators.verlet import HamiltonianVerlet  # noqa: E402


def make_block(name, width, depth, final_time, reversible, basis, activation="tanh"):
    if name == "verlet":
        return HamiltonianVerlet(width, width, n_steps=depth, final_time=final_time, reversible=reversible,
                                 basis=basis, activation=activation)
    if name == "leapfrog":
        return Leapfrog(width, n_steps=depth, final_time=final_time, reversible=reversible, basis=basis,
                        activation=activation)
    raise ValueError(f"block must be 'verlet' or 'leapfrog', got {name!r}")


def make_data(el, n_examples, seed, dtype):
    rng = np.random.default_rng(seed)
    theta = el.init_theta(rng=rng)
    Y = rng.standard_normal((n_examples, el.n_in))
    if isinstance(el, HamiltonianVerlet):
        Y[:, el.n_y :] = 0.0  # z_{-1/2} = 0, as users start a Hamiltonian block
    W = rng.standard_normal((n_examples, el.n_out))
    return theta.astype(dtype), Y.astype(dtype), W.astype(dtype)


# ------------------------------------------------------------------ memory
def measure_memory(block, mode, depth, args):
    """Run in a subprocess: one forward + JTmv, peak traced memory and maxrss."""
    dtype = np.dtype(args.dtype)
    el = make_block(block, args.width, depth, args.h * depth, mode == "reversible", args.basis, "tanh")
    theta, Y, W = make_data(el, args.n_examples, args.seed, dtype)
    el.basis.rows()  # the time basis caches its sparse rows (N small tuples) once per block: not per pass
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    Z, cache = el.forward(theta, Y)
    dtheta, dY = el.JTmv(W, theta, Y, cache)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert np.all(np.isfinite(dtheta)) and np.all(np.isfinite(dY))
    grad_bytes = dtheta.nbytes + dY.nbytes
    return {
        "what": "memory", "block": block, "mode": mode, "depth": depth, "dtype": str(dtype),
        "basis": args.basis, "width": args.width, "n_examples": args.n_examples, "h": args.h, "seed": args.seed,
        "peak_bytes": int(peak), "gradient_bytes": int(grad_bytes),
        "peak_minus_gradient_bytes": int(peak - grad_bytes),
        "state_bytes": int(Y.nbytes), "peak_in_states": round((peak - grad_bytes) / Y.nbytes, 1),
        "ru_maxrss_kib": int(rss_after), "ru_maxrss_growth_kib": int(rss_after - rss_before),
        "forward_plus_JTmv_s": round(seconds, 4),
    }


def memory_lines(args):
    for block in args.blocks:
        for depth in args.depths:
            for mode in ("stored", "reversible"):
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"{block},{mode},{depth}",
                       "--width", str(args.width), "--n-examples", str(args.n_examples), "--h", str(args.h),
                       "--dtype", args.dtype, "--basis", args.basis, "--seed", str(args.seed)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                yield json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------- reconstruction
def weight_basis(depth, final_time, timescale):
    """Piecewise linear weights θ(t) with nodes every ``timescale`` time units: the
    same random weight *function* at every depth (i.i.d. weights per step would
    average out as N grows at fixed T)."""
    return TimeBasis.hat(depth, max(2, int(round(final_time / timescale)) + 1))


def reconstruction_error(block, depth, final_time, dtype, args):
    el = make_block(block, args.width, depth, final_time, True, weight_basis(depth, final_time, args.timescale),
                    args.activation)
    theta, Y, _ = make_data(el, args.n_examples, args.seed, dtype)
    with np.errstate(all="ignore"):
        Z, cache = el._forward(theta, Y)  # unvalidated: we want to see overflow, not an exception
        Y_rec = Y if not np.all(np.isfinite(Z)) else el.reconstruct_input(theta, cache)
        finite = bool(np.all(np.isfinite(Z)) and np.all(np.isfinite(Y_rec)))
        Y64 = Y.astype(np.float64)
        err = float(np.linalg.norm(Y_rec.astype(np.float64) - Y64) / np.linalg.norm(Y64)) if finite else float("nan")
        growth = float(np.linalg.norm(Z.astype(np.float64)) / np.linalg.norm(Y64))
    return {
        "what": "reconstruction", "block": block, "activation": args.activation, "depth": depth,
        "dtype": str(np.dtype(dtype)),
        "regime": None, "h": final_time / depth, "final_time": final_time, "width": args.width,
        "n_examples": args.n_examples, "seed": args.seed, "weight_nodes": el.basis.n_basis,
        "rel_error": err, "finite": finite,
        "norm_growth": growth,
    }


def reconstruction_lines(args):
    regimes = [("fixed_h", lambda N: args.h * N), ("fixed_T", lambda N: args.T)]
    for block in args.blocks:
        for dtype in (np.float32, np.float64):
            for regime, T_of in regimes:
                ok_depth, nan_depth, failed = None, None, False
                for depth in sorted(args.recon_depths):
                    line = reconstruction_error(block, depth, T_of(depth), dtype, args)
                    line["regime"] = regime
                    yield line
                    failed = failed or not (line["finite"] and line["rel_error"] < args.accurate)
                    if not failed:
                        ok_depth = depth  # every depth up to here is accurate
                    if not line["finite"] and nan_depth is None:
                        nan_depth = depth
                yield {"what": "accuracy_limit", "block": block, "activation": args.activation,
                       "dtype": str(np.dtype(dtype)), "regime": regime,
                       "h": args.h if regime == "fixed_h" else None,
                       "final_time": args.T if regime == "fixed_T" else None,
                       "threshold": args.accurate, "max_depth_below_threshold": ok_depth,
                       "first_nonfinite_depth": nan_depth, "depths_tested": args.recon_depths, "seed": args.seed}


def _ints(s):
    return [int(v) for v in s.split(",") if v]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", type=_ints, default=[64, 256, 1024, 4096], help="depths of the memory measurement")
    p.add_argument("--recon-depths", type=_ints, default=[2 ** k for k in range(4, 15)],
                   help="depths of the reconstruction study")
    p.add_argument("--blocks", type=lambda s: s.split(","), default=["verlet", "leapfrog"])
    p.add_argument("--width", type=int, default=16, help="n_y = n_z (Verlet) / n_features (leapfrog)")
    p.add_argument("--n-examples", type=int, default=64)
    p.add_argument("--h", type=float, default=0.1, help="step size of the memory and fixed-h runs")
    p.add_argument("--T", type=float, default=20.0, help="final time of the fixed-T runs")
    p.add_argument("--dtype", default="float64", help="dtype of the memory measurement")
    p.add_argument("--basis", default="identity", choices=["identity", "constant"])
    p.add_argument("--activation", default="tanh", help="activation of the reconstruction study")
    p.add_argument("--timescale", type=float, default=1.0,
                   help="time between the nodes of the piecewise linear weights of the reconstruction study")
    p.add_argument("--accurate", type=float, default=1e-3, help="accuracy threshold of the reconstruction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-reconstruction", action="store_true")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        block, mode, depth = args.worker.split(",")
        print(json.dumps(measure_memory(block, mode, int(depth), args)))
        return
    if not args.skip_memory:
        for line in memory_lines(args):
            print(json.dumps(line), flush=True)
    if not args.skip_reconstruction:
        for line in reconstruction_lines(args):
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
