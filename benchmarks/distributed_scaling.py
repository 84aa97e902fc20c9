"""Scaling of meganet.distributed (issue 14): cost per call on a local Dask cluster and an estimate for N machines.

Not a test.  Measures on this machine (one thread per worker process, all math libraries pinned to one
thread, so one worker = one core; the serial baseline also runs on one core):

1. ``overhead``: the fixed cost of one shard-wise call (tiny shards: 2 examples each) against the number of
   shards, 2 worker processes — the scheduler / task / tree-reduction latency per round trip.
2. ``workers``: time per ``value+gradient`` and per Gauss-Newton product of a dense problem (B1's network:
   antisymmetric dense ResNet, width 8, 64 layers, softmax, float64) with 16 000 examples, serial vs 1 and
   2 worker processes (one shard per worker) and 2 worker threads.
3. ``shard_size``: the same at 2 worker processes for 1 000 ... 32 000 examples (overhead over serial vs
   shard size).
4. ``per_example``: serial cost per example of ``value+gradient`` and of a GN product for an MNIST-size
   and a CIFAR-size CNN (the JMIV 2019 network with per-example normalizations, float32), and their θ sizes.

Communication: bytes per call from :attr:`ShardedNetworkObjective.comm` (θ, w and directions sent to every
shard, partial results reduced).  From these numbers the script writes a model of the time per call on
N machines (strong and weak scaling) for the MNIST-size (60 000 examples) and CIFAR-size (50 000) problems,
under a stated network bandwidth, into ``results.json``; ``README.md`` next to it discusses them.

Usage: ``python benchmarks/distributed_scaling.py [--reps 5] [--out benchmarks/results/distributed]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import limit_threads  # noqa: E402

limit_threads(1)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

BANDWIDTH = 1.25e9  # bytes/s: a 10 Gb/s Ethernet link (the estimate's assumption; InfiniBand is 10x more)
HOP_LATENCY = 2e-4  # s per message between machines (TCP on Ethernet; the local measurement has ~0)


def dense_problem(n, seed=0):
    from meganet.integrators import ResNet
    from meganet.layers import SingleLayer
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.networks import Meganet
    from meganet.objectives import NetworkObjective
    from meganet.regularizers import Tikhonov
    from meganet.transforms.antisymmetric import AntisymmetricDense

    rng = np.random.default_rng(seed)
    net = Meganet([ResNet(SingleLayer(AntisymmetricDense(8, gamma=1e-4, scale=1.0), activation="tanh"),
                          n_steps=64, final_time=5.0)])
    loss = SoftmaxCrossEntropy(8, 5)
    Y = rng.standard_normal((n, 8))
    C = rng.integers(0, 5, n)
    return NetworkObjective(net, loss, Y, C, regularizer=Tikhonov(net.n_theta, alpha=1e-4),
                            classifier_regularizer=Tikhonov(loss.n_w, alpha=1e-4))


def cnn_problem(kind, n, seed=0):
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.networks import jmiv_network
    from meganet.objectives import NetworkObjective

    rng = np.random.default_rng(seed)
    if kind == "mnist":
        shape, channels = (1, 28, 28), (16, 32, 64)
    else:
        shape, channels = (3, 32, 32), (32, 64, 112)
    net = jmiv_network(in_channels=shape[0], image_shape=shape[1:], channels=channels, normalization="tv",
                       connector_normalization="instance", opening_normalization="instance")
    loss = SoftmaxCrossEntropy(tuple(net.shape_out), 10)
    Y = rng.standard_normal((n, *shape)).astype(np.float32)
    C = rng.integers(0, 10, n)
    return NetworkObjective(net, loss, Y, C)


def timed(fn, reps):
    fn()  # warm-up (numba compile, caches)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), min(ts), max(ts)


def measure(obj, reps):
    """Median seconds of value+gradient and of one GN product (at a fixed x, with its state)."""
    x = obj.init_x(rng=1)
    v = np.random.default_rng(2).standard_normal(obj.n).astype(x.dtype)
    vg = timed(lambda: obj.value_and_gradient(x), reps)
    _, _, state = obj.value_and_gradient(x)
    obj.hessian_matvec(x, v, state)
    gn = timed(lambda: obj.hessian_matvec(x, v, state), reps)
    return dict(value_gradient_s=vg[0], value_gradient_range=vg[1:], gn_s=gn[0], gn_range=gn[1:])


def comm_per_call(sh):
    """Bytes sent and reduced by one value+gradient and by one GN product."""
    x = sh.init_x(rng=1)
    v = np.random.default_rng(2).standard_normal(sh.n).astype(x.dtype)
    sh.comm.reset()
    _, _, state = sh.value_and_gradient(x)
    vg = dict(calls=sh.comm.calls, bytes_sent=sh.comm.bytes_sent, bytes_reduced=sh.comm.bytes_reduced)
    sh.hessian_matvec(x, v, state)  # the first prepares the curvature (no extra call for the full data)
    sh.comm.reset()
    sh.hessian_matvec(x, v, state)
    gn = dict(calls=sh.comm.calls, bytes_sent=sh.comm.bytes_sent, bytes_reduced=sh.comm.bytes_reduced)
    return dict(value_gradient=vg, gn=gn)


def cluster(n_workers, processes):
    from distributed import Client, LocalCluster

    c = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=":0")
    return c, Client(c)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "distributed"))
    ap.add_argument("--quick", action="store_true", help="fewer sizes (a smoke run)")
    args = ap.parse_args(argv)
    import meganet.distributed as md

    os.makedirs(args.out, exist_ok=True)
    res = dict(machine=dict(platform=platform.platform(), processor=platform.processor(),
                            cpus=os.cpu_count(), python=sys.version.split()[0]),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), reps=args.reps,
               note="one thread per worker (math libraries pinned to 1 thread); shared 2-core machine: medians")
    sizes = [1000, 4000] if args.quick else [1000, 4000, 16000, 32000]
    n_main = 4000 if args.quick else 16000

    # ---- 1. serial baselines of the dense problem
    serial = {n: measure(dense_problem(n), args.reps) for n in sorted(set(sizes + [n_main]))}
    res["serial_dense"] = {str(n): r for n, r in serial.items()}
    print("serial", {n: round(r["value_gradient_s"], 4) for n, r in serial.items()}, flush=True)

    # ---- 2. processes: overhead, workers, shard size
    cl, client = cluster(2, True)
    try:
        over = []
        for n_shards in [1, 2, 4, 8, 16]:
            sh = md.shard(dense_problem(2 * n_shards), client, n_shards=n_shards)
            r = measure(sh, args.reps)
            r.update(n_shards=n_shards, comm=comm_per_call(sh))
            over.append(r)
            sh.close()
        res["overhead_2proc"] = over
        print("overhead", [(o["n_shards"], round(o["value_gradient_s"], 4), round(o["gn_s"], 4)) for o in over],
              flush=True)
        size_rows = []
        for n in sizes:
            sh = md.shard(dense_problem(n), client, n_shards=2)
            r = measure(sh, args.reps)
            r.update(n=n, shard_size=n // 2, comm=comm_per_call(sh),
                     overhead_vg=r["value_gradient_s"] / serial[n]["value_gradient_s"],
                     overhead_gn=r["gn_s"] / serial[n]["gn_s"])
            size_rows.append(r)
            sh.close()
        res["shard_size_2proc"] = size_rows
        print("sizes", [(s["n"], round(s["value_gradient_s"], 4), round(s["overhead_vg"], 2)) for s in size_rows],
              flush=True)
    finally:
        client.close()
        cl.close()
    workers = []
    for n_workers, processes in [(1, True), (2, True), (2, False)]:
        cl, client = cluster(n_workers, processes)
        try:
            sh = md.shard(dense_problem(n_main), client, n_shards=n_workers)
            r = measure(sh, args.reps)
            r.update(workers=n_workers, processes=processes, n=n_main,
                     speedup_vg=serial[n_main]["value_gradient_s"] / r["value_gradient_s"],
                     speedup_gn=serial[n_main]["gn_s"] / r["gn_s"])
            workers.append(r)
            sh.close()
        finally:
            client.close()
            cl.close()
    res["workers"] = workers
    print("workers", [(w["workers"], w["processes"], round(w["speedup_vg"], 2), round(w["speedup_gn"], 2))
                      for w in workers], flush=True)

    # ---- 3. per-example cost of the MNIST- and CIFAR-size CNNs (serial, one core)
    per_ex = {}
    for kind, n in [("mnist", 16 if args.quick else 64), ("cifar", 8 if args.quick else 16)]:
        obj = cnn_problem(kind, n)
        r = measure(obj, max(2, args.reps // 2))
        per_ex[kind] = dict(n=n, n_theta=obj.n_theta, n_w=obj.n_w, bytes_x=int(obj.n * 4),
                            value_gradient_per_example_s=r["value_gradient_s"] / n, gn_per_example_s=r["gn_s"] / n)
    res["per_example_cnn"] = per_ex
    print("per example", per_ex, flush=True)

    # ---- 4. the model for N machines
    res["estimate"] = estimate(res)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res["estimate"], indent=1))


def estimate(res):
    """Time per call on N machines: compute n/N · t_example + per round trip (latency(N) + bytes / bandwidth).

    latency(N): the measured fixed cost of a call with N tiny shards on the local cluster (linear fit in the
    number of shards: scheduler work per task and per reduction), plus ``ceil(log2 N)`` network hops of the
    tree.  Bytes: θ (+ w, and v for GN) sent to each of the N shards through the driver's link (N copies), and
    the reduction's partial results: ``ceil(log2 N)`` sequential transfers of one vector.
    """
    over = res["overhead_2proc"]
    ns = np.array([o["n_shards"] for o in over], dtype=float)
    # a value+gradient is 2 round trips, a GN product 1 (NetworkObjective)
    lat_vg = np.polyfit(ns, [o["value_gradient_s"] / 2 for o in over], 1)
    lat_gn = np.polyfit(ns, [o["gn_s"] for o in over], 1)
    out = dict(assumptions=dict(bandwidth_bytes_per_s=BANDWIDTH, hop_latency_s=HOP_LATENCY,
                                latency_per_round_trip_s=dict(value_gradient=list(lat_vg), gn=list(lat_gn)),
                                note="latency = a·N + b (N shards, one per machine) fitted to the local overhead "
                                     "measurement; compute = per-example time × examples per machine"))
    problems = dict(mnist=60000, cifar=50000)
    for kind, n_total in problems.items():
        pe = res["per_example_cnn"][kind]
        xb = pe["bytes_x"]
        rows = []
        for N in [1, 2, 4, 8, 16, 32, 64, 128]:
            hops = math.ceil(math.log2(N)) if N > 1 else 0
            t = {}
            for op, per, trips, vecs in [("value_gradient", pe["value_gradient_per_example_s"], 2, 1),
                                         ("gn", pe["gn_per_example_s"], 1, 2)]:
                lat = np.polyval(lat_vg if op == "value_gradient" else lat_gn, N)
                comm = trips * (lat + hops * HOP_LATENCY) + (trips * vecs * N * xb + trips * hops * xb) / BANDWIDTH
                if N == 1:
                    comm = 0.0  # serial: no cluster
                strong = per * n_total / N + comm
                weak_n = n_total / 16  # weak scaling: 1/16 of the data set per machine
                weak = per * weak_n + comm
                t[op] = dict(strong_s=strong, strong_speedup=per * n_total / strong, comm_s=comm,
                             comm_fraction=comm / strong, weak_s=weak, weak_efficiency=per * weak_n / weak)
            rows.append(dict(N=N, **t))
        out[kind] = dict(n_examples=n_total, n_theta=pe["n_theta"], bytes_x=xb,
                         serial_value_gradient_s=pe["value_gradient_per_example_s"] * n_total,
                         serial_gn_s=pe["gn_per_example_s"] * n_total, rows=rows)
    return out


if __name__ == "__main__":
    main()
