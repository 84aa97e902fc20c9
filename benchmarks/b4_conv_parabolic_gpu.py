"""B4 ``conv_parabolic_gpu`` (WORKLOADS.md): B2 on the GPU, Y (256, 64, 32, 32), 64→64 channels, float32.

Same model, draws (order and seed) and ops as :mod:`benchmarks.b2_conv_parabolic`
with the B4 sizes; meganet on cupy arrays (engine ``'cupy'``: im2col
``RawKernel`` + cuBLAS GEMM, fused ``ElementwiseKernel`` activation), PyTorch
CUDA with cuDNN, TF32 **off** for both (``torch.backends.cuda.matmul.allow_tf32
= False``, ``torch.backends.cudnn.allow_tf32 = False``; cupy uses TF32 only
with ``CUPY_TF32=1``, which is removed from the environment here).  Memory:
cupy memory-pool peak vs ``torch.cuda.max_memory_allocated``.  The peak
GFLOP/s of the device is measured as the best float32 GEMM (cuBLAS, no TF32).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.pop("CUPY_TF32", None)

from benchmarks.b2_conv_parabolic import data, flops, meganet_ops, sizes, torch_ops  # noqa: E402
from benchmarks.common import first_call, have_torch, rel_diff, run_ops  # noqa: E402

WORKLOAD = "conv_parabolic_gpu"


def gpu_peak_gflops():
    import cupy

    n = 8192
    A = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    B = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    A @ B
    best = 0.0
    for _ in range(3):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        A @ B
        stop.record()
        stop.synchronize()
        best = max(best, 2 * n ** 3 / (cupy.cuda.get_elapsed_time(start, stop) / 1e3) / 1e9)
    return best


def main(seed=0, reps=5, out=None):
    import cupy

    from meganet.backend import cupy_available

    if not cupy_available():
        print("B4 needs cupy with a CUDA device; skipped", file=sys.stderr)
        return []
    n, c, hw = sizes(gpu=True)
    d = data(seed, n, c, hw)
    peak = gpu_peak_gflops()
    ops, checks, extra = {}, {}, {}
    torch_side = None
    if have_torch():
        import torch

        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch_side = torch_ops(d, device="cuda")
            checks["pytorch"] = torch_side[1]()
    fns, res = meganet_ops(d, "cupy", xp=cupy)
    name = "meganet[cupy]"
    first = {}
    for op, fn in fns.items():
        first[op] = first_call(lambda fn=fn: (fn(), cupy.cuda.Device().synchronize()))
    mine = res()
    for op in fns:
        extra[op, name] = {"first_call_s": first[op], "machine_peak_gflops_per_s": peak}
        if "pytorch" in checks:
            extra[op, name]["max_rel_diff_vs_pytorch"] = max(
                rel_diff(a, b) for a, b in zip(mine[op], checks["pytorch"][op]))
        ops[op] = {name: fns[op]}
    if torch_side is not None:
        for op, fn in torch_side[0].items():
            ops[op]["pytorch"] = fn
            extra[op, "pytorch"] = {"machine_peak_gflops_per_s": peak}
    return run_ops(WORKLOAD, ops, dtype="float32", device="gpu", seed=seed, reps=reps, extra=extra,
                   flops=flops(n, c, hw), peak=peak, out=out)


if __name__ == "__main__":
    main()
