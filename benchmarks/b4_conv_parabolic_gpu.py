"""B4 ``conv_parabolic_gpu``: B2 on the GPU, Y (256, 64, 32, 32), 64→64 channels, float32.

Definition: ``benchmarks/README.md``, section "Workloads".

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
from benchmarks.common import first_call, have_torch, side_by_side  # noqa: E402

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
    from meganet.backend import cupy_available

    if not cupy_available():
        print("B4 needs cupy with a CUDA device; skipped", file=sys.stderr)
        return []
    import cupy

    n, c, hw = sizes(gpu=True)
    d = data(seed, n, c, hw)
    peak = gpu_peak_gflops()
    torch_side = None
    if have_torch():
        import torch

        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch_side = torch_ops(d, device="cuda")
    sides = {"meganet[cupy]": meganet_ops(d, "cupy", xp=cupy)}
    return side_by_side(WORKLOAD, None, sides, torch_side, dtype="float32", device="gpu", seed=seed, reps=reps,
                        out=out, flops=flops(n, c, hw), peak=peak,
                        first=lambda fn: first_call(lambda: (fn(), cupy.cuda.Device().synchronize())))


if __name__ == "__main__":
    main()
