"""B3 ``hamiltonian_verlet``: 1024 Verlet layers of width 4, CPU, float64.

Definition: ``benchmarks/README.md``, section "Workloads".

Model: s = 1026 examples, y0 = randn, z0 = 0, N = 1024 layers, h = 20/1024,
``z ← z − h·tanh(y K_j + b_j)``, ``y ← y + h·tanh(z K_jᵀ + b_j)``, K_j (4, 4),
b_j a scalar; loss 0.5‖y_N − target‖².

Random draws, in this order, from ``numpy.random.default_rng(seed)``: y0
(1026, 4), K (1024, 4, 4)·0.1, b (1024,)·0.1, target (1026, 4), directions vK
(1024, 4, 4) and vb (1024,) (for ``jvp``).

meganet: ``HamiltonianVerlet(4, 4, n_steps=1024, final_time=20, bias='scalar',
engine=e)`` on ``Y = [y0, z0]`` with θ_j = (vec K_j, b_j); ``gradient`` =
forward + ``JTmv`` of ``[y_N − target, 0]`` w.r.t. θ; ``jvp`` = forward +
``Jmv`` in θ, y part.  PyTorch: the same loop in eager mode,
``torch.autograd.grad`` and ``torch.func.jvp``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import limit_threads, torch_first  # noqa: E402

limit_threads()
torch_first()  # PyTorch keeps its own OpenMP wait policy (see benchmarks/common.py)

import numpy as np  # noqa: E402

from benchmarks.common import ops_of, side_by_side, torch_pair  # noqa: E402

WORKLOAD = "hamiltonian_verlet"
S, N_FEAT, N_LAYERS, T_FINAL = 1026, 4, 1024, 20.0
H = T_FINAL / N_LAYERS


def data(seed):
    rng = np.random.default_rng(seed)
    d = dict(y0=rng.standard_normal((S, N_FEAT)), K=0.1 * rng.standard_normal((N_LAYERS, N_FEAT, N_FEAT)),
             b=0.1 * rng.standard_normal(N_LAYERS), target=rng.standard_normal((S, N_FEAT)))
    d["vK"] = rng.standard_normal((N_LAYERS, N_FEAT, N_FEAT))
    d["vb"] = rng.standard_normal(N_LAYERS)
    return d


def meganet_ops(d, engine):
    from meganet.integrators.verlet import HamiltonianVerlet

    block = HamiltonianVerlet(N_FEAT, N_FEAT, n_steps=N_LAYERS, final_time=T_FINAL, bias="scalar", engine=engine)
    theta = np.concatenate([d["K"].reshape(N_LAYERS, -1), d["b"][:, None]], axis=1).reshape(-1)
    v = np.concatenate([d["vK"].reshape(N_LAYERS, -1), d["vb"][:, None]], axis=1).reshape(-1)
    Y = np.hstack([d["y0"], np.zeros((S, N_FEAT))])
    target = d["target"]

    def forward():
        Z = block.apply(theta, Y)  # no cache (PyTorch: no_grad)
        r = Z[:, :N_FEAT] - target
        return 0.5 * np.vdot(r, r)

    def gradient():
        Z, cache = block.forward(theta, Y)
        r = Z[:, :N_FEAT] - target
        W = np.hstack([r, np.zeros_like(r)])
        return 0.5 * np.vdot(r, r), block.JthetaTmv(W, theta, Y, cache)

    def jvp():
        Z, dZ = block.jvp(theta, Y, v)  # one sweep, no stored states (PyTorch: torch.func.jvp)
        return Z[:, :N_FEAT], dZ[:, :N_FEAT]

    def results():
        val, g = gradient()
        g = g.reshape(N_LAYERS, -1)
        yN, dy = jvp()
        return dict(forward=[forward()], gradient=[val, g[:, :-1].reshape(N_LAYERS, N_FEAT, N_FEAT), g[:, -1]],
                    jvp=[yN, dy])

    return dict(forward=forward, gradient=gradient, jvp=jvp), results


def torch_ops(d):
    import torch

    t = {k: torch.from_numpy(np.asarray(v)) for k, v in d.items()}

    def net(K, b):
        y, z = t["y0"], torch.zeros_like(t["y0"])
        for j in range(N_LAYERS):
            z = z - H * torch.tanh(y @ K[j] + b[j])
            y = y + H * torch.tanh(z @ K[j].T + b[j])
        return y

    def loss(K, b):
        r = net(K, b) - t["target"]
        return 0.5 * (r * r).sum()

    def forward():
        with torch.no_grad():
            return loss(t["K"], t["b"])

    def gradient():
        K, b = t["K"].detach().requires_grad_(), t["b"].detach().requires_grad_()
        value = loss(K, b)
        return value.detach(), torch.autograd.grad(value, (K, b))

    def jvp():
        return torch.func.jvp(net, (t["K"], t["b"]), (t["vK"], t["vb"]))

    def results():
        val, g = gradient()
        yN, dy = jvp()
        return dict(forward=[float(forward())], gradient=[float(val), g[0].numpy(), g[1].numpy()],
                    jvp=[yN.numpy(), dy.numpy()])

    return dict(forward=forward, gradient=gradient, jvp=jvp), results


def build(engine, seed=0):
    """``{op: callable}`` of one engine (``'pytorch'``, ``'numba'``, ``'numpy'``), for isolated measurements."""
    return ops_of(engine, data(seed), meganet_ops, torch_ops)


def main(seed=0, reps=5, engines=("numba", "numpy"), out=None):
    from meganet.kernels import available_engines

    d = data(seed)
    torch_side = torch_pair(d, torch_ops)
    sides = {f"meganet[{e}]": meganet_ops(d, e) for e in engines if e in available_engines()}
    return side_by_side(WORKLOAD, "b3_hamiltonian_verlet", sides, torch_side, dtype="float64", device="cpu",
                        seed=seed, reps=reps, out=out)


if __name__ == "__main__":
    main()
