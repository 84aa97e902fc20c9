"""B2 ``conv_parabolic``: 4 parabolic convolution steps, CPU, float32.

Definition: ``benchmarks/README.md``, section "Workloads".

Model: Y (64, 32, 32, 32), 4 steps of ``Y ← Y − h·K_jᵀ tanh(K_j Y + b_j)``,
h = 0.1, K_j 3×3, 32→32 channels, zero padding 1, b_j per channel.

Random draws, in this order, from ``numpy.random.default_rng(seed)`` in
float64, then cast to float32: Y; for j = 0..3: K_j = randn(32,32,3,3)·sqrt(2/(9·32));
for j = 0..3: b_j = 0.1·randn(32); the cotangent V = randn(64,32,32,32); the
directions dK_j (4× randn(32,32,3,3)) and db_j (4× randn(32)).

meganet: ``ResNet(SymmetricLayer(Conv2d(32, 32, (32, 32), engine=e)), n_steps=4,
final_time=0.4)`` (θ_j = (vec K_j, b_j)); ``gradient`` = forward + ``JTmv``
w.r.t. θ and Y; ``jvp`` = forward + ``Jmv`` in θ.  PyTorch: ``conv2d`` +
``conv_transpose2d`` (oneDNN on the CPU), ``torch.autograd.grad`` and
``torch.func.jvp``.

FLOPs (Workloads: one 3×3 application = 2·N·H·W·C_in·C_out·9): forward 8
applications (9.66 GFLOP); gradient 8 + 4·4 (Kᵀ-, K-, and two θ-adjoints per
step) = 24; jvp 8 + 3 + 3·4 = 23 (the first step has no Y tangent).  Both
frameworks are credited with the same count.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import limit_threads, torch_first  # noqa: E402

limit_threads()
torch_first()  # PyTorch keeps its own OpenMP wait policy (see benchmarks/common.py)

import numpy as np  # noqa: E402

from benchmarks.common import cpu_peak_gflops, ops_of, side_by_side, torch_pair  # noqa: E402

WORKLOAD = "conv_parabolic"
H_STEP, N_STEPS = 0.1, 4
CONV_FLOPS = lambda n, c, hw: 2 * n * hw * hw * c * c * 9  # noqa: E731


def sizes(gpu=False):
    return (256, 64, 32) if gpu else (64, 32, 32)


def data(seed, n, c, hw):
    rng = np.random.default_rng(seed)
    d = {"Y": rng.standard_normal((n, c, hw, hw))}
    d["K"] = [rng.standard_normal((c, c, 3, 3)) * np.sqrt(2.0 / (9 * c)) for _ in range(N_STEPS)]
    d["b"] = [0.1 * rng.standard_normal(c) for _ in range(N_STEPS)]
    d["V"] = rng.standard_normal((n, c, hw, hw))
    d["dK"] = [rng.standard_normal((c, c, 3, 3)) for _ in range(N_STEPS)]
    d["db"] = [rng.standard_normal(c) for _ in range(N_STEPS)]
    return d


def flops(n, c, hw):
    one = CONV_FLOPS(n, c, hw)
    return {"forward": 8 * one, "gradient": 24 * one, "jvp": 23 * one}


# ------------------------------------------------------------------ meganet
def meganet_ops(d, engine, xp=np):
    from meganet.integrators import ResNet
    from meganet.layers.symmetric import SymmetricLayer
    from meganet.transforms.conv2d import Conv2d

    n, c, hw, _ = d["Y"].shape
    block = ResNet(SymmetricLayer(Conv2d(c, c, (hw, hw), engine=engine), activation="tanh"), n_steps=N_STEPS,
                   final_time=H_STEP * N_STEPS)

    def arr(a):
        return xp.asarray(np.asarray(a, dtype=np.float32))

    theta = arr(np.concatenate([np.concatenate([K.reshape(-1), b]) for K, b in zip(d["K"], d["b"])]))
    dtheta = arr(np.concatenate([np.concatenate([K.reshape(-1), b]) for K, b in zip(d["dK"], d["db"])]))
    Y, V = arr(d["Y"]), arr(d["V"])

    def forward():
        return block.apply(theta, Y)  # no cache (PyTorch: no_grad)

    def gradient():
        Z, cache = block.forward(theta, Y)
        dth, dY = block.JTmv(V, theta, Y, cache)
        return Z, dth, dY

    def jvp():
        return block.jvp(theta, Y, dtheta)

    def split(g):
        g = g.reshape(N_STEPS, -1)
        return g[:, : c * c * 9].reshape(N_STEPS, c, c, 3, 3), g[:, c * c * 9:]

    def host(a):
        return a.get() if hasattr(a, "get") else a

    def results():
        Z, dth, dY = gradient()
        gK, gb = split(host(dth))
        Zj, dZ = jvp()
        return dict(forward=[host(forward())], gradient=[host(Z), gK, gb, host(dY)], jvp=[host(Zj), host(dZ)])

    return dict(forward=forward, gradient=gradient, jvp=jvp), results


# ------------------------------------------------------------------ PyTorch
def torch_ops(d, device="cpu"):
    import torch

    F = torch.nn.functional

    def t(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)

    Y, V = t(d["Y"]), t(d["V"])
    Ks, bs = [t(K) for K in d["K"]], [t(b) for b in d["b"]]
    dKs, dbs = [t(K) for K in d["dK"]], [t(b) for b in d["db"]]

    def f(Ks, bs, Y):
        for K, b in zip(Ks, bs):
            Y = Y - H_STEP * F.conv_transpose2d(torch.tanh(F.conv2d(Y, K, b, padding=1)), K, padding=1)
        return Y

    def forward():
        with torch.no_grad():
            return f(Ks, bs, Y)

    def gradient():
        Kr = [K.detach().requires_grad_() for K in Ks]
        br = [b.detach().requires_grad_() for b in bs]
        Yr = Y.detach().requires_grad_()
        Z = f(Kr, br, Yr)
        return Z.detach(), torch.autograd.grad(Z, Kr + br + [Yr], V)

    def jvp():
        return torch.func.jvp(lambda K, b: f(K, b, Y), (Ks, bs), (dKs, dbs))

    def results():
        Z, g = gradient()
        Zj, dZ = jvp()
        g = [x.cpu().numpy() for x in g]
        return dict(forward=[forward().cpu().numpy()],
                    gradient=[Z.cpu().numpy(), np.stack(g[:N_STEPS]), np.stack(g[N_STEPS:2 * N_STEPS]), g[-1]],
                    jvp=[Zj.cpu().numpy(), dZ.cpu().numpy()])

    return dict(forward=forward, gradient=gradient, jvp=jvp), results


def build(engine, seed=0):
    """``{op: callable}`` of one engine (``'pytorch'``, ``'numba'``, ``'numpy'``), for isolated measurements."""
    return ops_of(engine, data(seed, *sizes()), meganet_ops, torch_ops)


def main(seed=0, reps=5, engines=("numba", "numpy"), out=None):
    from meganet.kernels import available_engines

    n, c, hw = sizes()
    d = data(seed, n, c, hw)
    torch_side = torch_pair(d, torch_ops)
    sides = {f"meganet[{e}]": meganet_ops(d, e) for e in engines if e in available_engines()}
    return side_by_side(WORKLOAD, "b2_conv_parabolic", sides, torch_side, dtype="float32", device="cpu", seed=seed,
                        reps=reps, out=out, flops=flops(n, c, hw), peak=cpu_peak_gflops("float32"))


if __name__ == "__main__":
    main()
