"""B1 ``dense_antisym``: antisymmetric dense ResNet + softmax classifier, CPU, float64.

Definition: ``benchmarks/README.md``, section "Workloads".

Model: s = 5000 examples, width n = 8, N = 64 layers, h = 5/64, γ = 1e-4,
``Y ← Y + h·tanh(Y (K_j − K_jᵀ − γI) + b_j)``, logits ``Y_N W + μ``, mean
softmax cross-entropy against random labels in 0..4.

Random draws, in this order, from ``numpy.random.default_rng(seed)``: Y0
(5000, 8), K (64, 8, 8)·0.1, b (64, 8)·0.1, W (8, 5)·0.1, μ (5,)·0.1, labels
(5000,) in 0..4, directions vK (64, 8, 8) and vb (64, 8) (for ``jvp`` and
``gn_matvec``).

meganet: ``ResNet(SingleLayer(AntisymmetricDense(8, gamma=γ, scale=1)))`` —
its row form ``Y Aᵀ`` with ``A = K' − K'ᵀ − γI`` equals ``Y (K − Kᵀ − γI)`` for
``K' = Kᵀ``, so θ_j = (vec K_jᵀ, b_j); classifier
:class:`~meganet.losses.SoftmaxCrossEntropy` with its ``W`` = our ``Wᵀ``.
PyTorch: the same loop in eager mode; ``gradient`` by ``torch.autograd.grad``,
``jvp`` by ``torch.func.jvp``, ``gn_matvec`` by ``torch.func.jvp`` then
``torch.func.vjp`` (the pair the GN product needs).

Ops: ``forward`` (loss), ``gradient`` (loss and gradient w.r.t. K, b, W, μ),
``jvp`` (logits and J v w.r.t. θ = (K, b)), ``gn_matvec`` (Jᵀ H J v, W fixed,
H the softmax-CE Hessian of the logits).  Before timing, the results of every
engine are compared with PyTorch's (``max_rel_diff`` in the JSON lines).
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

WORKLOAD = "dense_antisym"
S, N_FEAT, N_LAYERS, N_CLASSES = 5000, 8, 64, 5
H, GAMMA = 5.0 / 64, 1e-4


def data(seed):
    rng = np.random.default_rng(seed)
    d = dict(Y0=rng.standard_normal((S, N_FEAT)), K=0.1 * rng.standard_normal((N_LAYERS, N_FEAT, N_FEAT)),
             b=0.1 * rng.standard_normal((N_LAYERS, N_FEAT)), W=0.1 * rng.standard_normal((N_FEAT, N_CLASSES)),
             mu=0.1 * rng.standard_normal(N_CLASSES), labels=rng.integers(0, N_CLASSES, S))
    d["vK"] = rng.standard_normal((N_LAYERS, N_FEAT, N_FEAT))
    d["vb"] = rng.standard_normal((N_LAYERS, N_FEAT))
    return d


# ------------------------------------------------------------------ meganet
def meganet_ops(d, engine):
    from meganet.integrators import ResNet
    from meganet.layers import SingleLayer
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.transforms.antisymmetric import AntisymmetricDense

    block = ResNet(SingleLayer(AntisymmetricDense(N_FEAT, gamma=GAMMA, scale=1.0), activation="tanh"),
                   n_steps=N_LAYERS, final_time=H * N_LAYERS, engine=engine)
    theta = np.concatenate([d["K"].transpose(0, 2, 1).reshape(N_LAYERS, -1), d["b"]], axis=1).reshape(-1)
    v = np.concatenate([d["vK"].transpose(0, 2, 1).reshape(N_LAYERS, -1), d["vb"]], axis=1).reshape(-1)
    loss = SoftmaxCrossEntropy(N_FEAT, N_CLASSES)
    w = np.concatenate([d["W"].T.reshape(-1), d["mu"]])
    Y0, C = d["Y0"], d["labels"]

    def forward():
        Z = block.apply(theta, Y0)  # no cache (PyTorch: no_grad)
        return loss.value(Z, w, C)

    def gradient():
        Z, cache = block.forward(theta, Y0)
        ev = loss.evaluate(Z, w, C)
        g = block.JthetaTmv(ev.grad_Y, theta, Y0, cache)
        return ev.value, g, ev.grad_w

    def jvp():
        Z, dZ = block.jvp(theta, Y0, v)  # one sweep, no stored states (PyTorch: torch.func.jvp)
        return loss.logits(Z, w), dZ @ loss.matrix(w).T

    def gn_matvec():
        Z, cache = block.forward(theta, Y0)
        ev = loss.evaluate(Z, w, C, need=())
        dZ = block.Jthetamv(v, theta, Y0, cache)
        return block.JthetaTmv(loss.hess_Y_mv(dZ, ev), theta, Y0, cache)

    def unpack_theta(g):  # per step (K_jᵀ, b_j) -> (K_j, b_j) in the workload's layout
        g = g.reshape(N_LAYERS, -1)
        return g[:, : N_FEAT ** 2].reshape(N_LAYERS, N_FEAT, N_FEAT).transpose(0, 2, 1), g[:, N_FEAT ** 2:]

    def results():
        val, g, gw = gradient()
        gK, gb = unpack_theta(g)
        logits, jv = jvp()
        nK, nb = unpack_theta(gn_matvec())
        return dict(forward=[float(forward())], gradient=[float(val), gK, gb, gw[:-N_CLASSES].reshape(N_CLASSES, -1).T,
                                                          gw[-N_CLASSES:]],
                    jvp=[logits, jv], gn_matvec=[nK, nb])

    return dict(forward=forward, gradient=gradient, jvp=jvp, gn_matvec=gn_matvec), results


# ------------------------------------------------------------------ PyTorch
def torch_ops(d):
    import torch

    t = {k: torch.from_numpy(np.asarray(v)) for k, v in d.items()}
    eye = torch.eye(N_FEAT, dtype=torch.float64)

    def net(K, b, Y):
        for j in range(N_LAYERS):
            Y = Y + H * torch.tanh(Y @ (K[j] - K[j].T - GAMMA * eye) + b[j])
        return Y

    def logits(K, b, W, mu):
        return net(K, b, t["Y0"]) @ W + mu

    def loss(K, b, W, mu):
        return torch.nn.functional.cross_entropy(logits(K, b, W, mu), t["labels"])

    def forward():
        with torch.no_grad():
            return loss(t["K"], t["b"], t["W"], t["mu"])

    def gradient():
        p = [t[k].detach().requires_grad_() for k in ("K", "b", "W", "mu")]
        value = loss(*p)
        return value, torch.autograd.grad(value, p)

    def f_theta(K, b):
        return logits(K, b, t["W"], t["mu"])

    def jvp():
        return torch.func.jvp(f_theta, (t["K"], t["b"]), (t["vK"], t["vb"]))

    def gn_matvec():
        z, Jv = torch.func.jvp(f_theta, (t["K"], t["b"]), (t["vK"], t["vb"]))
        p = torch.softmax(z, dim=1)
        HJv = (p * Jv - p * (p * Jv).sum(dim=1, keepdim=True)) / S
        _, vjp_fn = torch.func.vjp(f_theta, t["K"], t["b"])
        return vjp_fn(HJv)

    def results():
        value, g = gradient()
        z, jv = jvp()
        gn = gn_matvec()
        return dict(forward=[float(forward())], gradient=[float(value)] + [x.numpy() for x in g],
                    jvp=[z.numpy(), jv.numpy()], gn_matvec=[x.numpy() for x in gn])

    return dict(forward=forward, gradient=gradient, jvp=jvp, gn_matvec=gn_matvec), results


def build(engine, seed=0):
    """``{op: callable}`` of one engine (``'pytorch'``, ``'numba'``, ``'numpy'``), for isolated measurements."""
    return ops_of(engine, data(seed), meganet_ops, torch_ops)


def main(seed=0, reps=7, engines=("numba", "numpy"), out=None):
    from meganet.kernels import available_engines

    d = data(seed)
    torch_side = torch_pair(d, torch_ops)
    sides = {f"meganet[{e}]": meganet_ops(d, e) for e in engines if e in available_engines()}
    return side_by_side(WORKLOAD, "b1_dense_antisym", sides, torch_side, dtype="float64", device="cpu", seed=seed,
                        reps=reps, out=out)


if __name__ == "__main__":
    main()
