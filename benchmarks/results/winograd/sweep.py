import sys, time, json
sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "..", ".."))
import numpy as np
import kernels._conv2d_numba as cn
def t(f, k=5):
    ts = []
    for _ in range(k):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return np.median(ts)
rng = np.random.default_rng(0)
def run(method, Y, K):
    cn.METHOD = method
    return cn._forward_numba(Y, K, "zero", None)
for dt in (np.float32, np.float64):
    for C in (8, 16, 32, 64):
        for HW in (8, 16, 32, 64):
            n = 64 if C * HW * HW <= 32 * 32 * 32 else 16
            Y = rng.standard_normal((n, C, HW, HW)).astype(dt); K = rng.standard_normal((C, C, 3, 3)).astype(dt)
            run("winograd", Y, K); run("direct", Y, K)
            a = []; b = []
            for _ in range(3):
                a.append(t(lambda: run("winograd", Y, K))); b.append(t(lambda: run("direct", Y, K)))
            a, b = min(a), min(b)
            r = dict(dtype=np.dtype(dt).name, C=C, HW=HW, n=n, winograd_s=a, direct_s=b, ratio=a / b)
            print(json.dumps(r), flush=True)
