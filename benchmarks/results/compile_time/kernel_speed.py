"""Quick timing of hot numba kernels at B1/B2-like sizes (median of reps); one JSON line.

    python benchmarks/results/compile_time/kernel_speed.py LABEL
(the "before" rows ran the same script with PYTHONPATH pointing at a worktree of the older commit,
with a symlink meganet/kernels -> kernels there, and their own NUMBA_CACHE_DIR).
"""
import json, sys, time
import numpy as np
import meganet.kernels as k
from meganet.kernels import timestep as ts, conv2d, activation
rng = np.random.default_rng(0)
res = {}
def tm(name, f, reps=15):
    f()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
    t.sort(); res[name] = round(t[len(t)//2] * 1e3, 3)
S, n, N = 5000, 8, 64
Y0 = rng.standard_normal((S, n)); M = rng.standard_normal((N, n, n)) * 0.1; b = rng.standard_normal((N, n))
tr = ts.resnet_dense_forward(Y0, M, b, 5/64, n_steps=N, engine="numba")
tm("dense_forward_f64", lambda: ts.resnet_dense_forward(Y0, M, b, 5/64, n_steps=N, engine="numba"))
tm("dense_jtmv_f64", lambda: ts.resnet_dense_jtmv(Y0, M, tr.states, tr.dsigma, 5/64, engine="numba"))
tm("dense_jmv_f64", lambda: ts.resnet_dense_jmv(M, tr.states, tr.dsigma, 5/64, dY0=Y0, dM=M, engine="numba"))
y0 = rng.standard_normal((S, 4)); z0 = rng.standard_normal((S, 4)); K = rng.standard_normal((N, 4, 4)) * 0.1
vt = ts.verlet_forward(y0, z0, K, None, None, 0.1, n_steps=N, engine="numba")
tm("verlet_forward_f64", lambda: ts.verlet_forward(y0, z0, K, None, None, 0.1, n_steps=N, engine="numba"))
tm("verlet_jtmv_f64", lambda: ts.verlet_jtmv(y0, z0, K, vt, 0.1, engine="numba"))
Y = rng.standard_normal((64, 16, 32, 32)).astype(np.float32); Kc = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
tm("conv_fwd_f32", lambda: conv2d.conv2d_forward(Y, Kc, "zero", engine="numba"), 7)
tm("bias_act_f32", lambda: activation.bias_activation(Y, None, "tanh", engine="numba"), 7)
print(json.dumps({"label": sys.argv[1] if len(sys.argv) > 1 else "", "ms_median": res}))
