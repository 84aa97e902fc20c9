"""Forward 3×3 convolution, Winograd / direct stencil time of the numba engine (issue 13, the
``'auto'`` rule of ``meganet.kernels._conv2d_numba``): 8–64 channels × 8×8–64×64 images, float32 and
float64, 64 examples (16 for the larger problems); min over 3 medians of 5, the two methods
interleaved.  One JSON line per size.

    python benchmarks/results/winograd/sweep.py > sweep-DATE.jsonl
"""

import json
import time

import numpy as np

import meganet.kernels._conv2d_numba as cn


def median_time(f, k=5):
    ts = []
    for _ in range(k):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return np.median(ts)


def run(method, Y, K):
    cn.METHOD = method
    return cn._forward_numba(Y, K, "zero", None)


def main():
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        for C in (8, 16, 32, 64):
            for HW in (8, 16, 32, 64):
                n = 64 if C * HW * HW <= 32 * 32 * 32 else 16
                Y = rng.standard_normal((n, C, HW, HW)).astype(dt)
                K = rng.standard_normal((C, C, 3, 3)).astype(dt)
                run("winograd", Y, K)
                run("direct", Y, K)
                a, b = [], []
                for _ in range(3):
                    a.append(median_time(lambda: run("winograd", Y, K)))
                    b.append(median_time(lambda: run("direct", Y, K)))
                a, b = min(a), min(b)
                print(json.dumps(dict(dtype=np.dtype(dt).name, C=C, HW=HW, n=n, winograd_s=a, direct_s=b, ratio=a / b)),
                      flush=True)


if __name__ == "__main__":
    main()
