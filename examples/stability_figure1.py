r"""Figure 1 of Haber & Ruthotto, "Stable architectures for deep neural networks" (2017), Example 1.

Phase-plane diagrams of a ResNet (eq. 2.1) with ``n = 2`` features and
``N = 10`` identical layers, ``h = 0.1`` (``T = 1``), tanh and ``b = 0``,

.. math:: y_{j+1} = y_j + h\,\tanh(K^\top y_j), \qquad j = 0, …, 9,

(forward Euler for the ODE ``y' = σ(Kᵀy)`` of eq. 3.5; the paper's row form is
``Y_{j+1} = Y_j + hσ(Y_j K)``) for the three matrices of eq. (3.10):

``K₊ = [[2, −2], [0, 2]]``, eigenvalues ``{2, 2}``
    the features diverge from the origin and from each other; ``y₁`` and
    ``y₂ = −y₁`` depart in opposite directions (unstable forward propagation).
``K₋ = [[−2, 0], [2, −2]]``, eigenvalues ``{−2, −2}``
    the features contract to the origin (stable, but the learning problem that
    inverts this process is ill-posed).
``K₀ = [[0, −1], [1, 0]]``, eigenvalues ``{i, −i}``
    rotation: distances are preserved by the ODE; forward Euler adds a drift of
    ``√(1 + h²|λ|²)`` per step near the origin.

Starting points ``y₁ = [0.1, 0.1]``, ``y₂ = −y₁``, ``y₃ = [0, 0.5]`` (one colour
each); black arrows show the force field ``tanh(Kᵀy)``.

Every panel title also reports the Lemma 1 check (eq. 3.9) ``max |1 + hλ_i| ≤ 1``
of the layer's Jacobian at the origin (:func:`meganet.stability.jacobian_spectrum`
and :func:`meganet.stability.forward_euler_stable`) with the growth factor
``(max |1 + hλ_i|)^N`` of the linearization over the whole run
(:func:`euler_label`): *stable* if the check passes (``K₋``: ``|1 − 0.2| = 0.8``),
*marginal* if it fails but the growth is at most :data:`MARGINAL_GROWTH`
(``K₀``: ``|1 + 0.1i| = 1.005``, growth ``1.01⁵ = 1.05`` over 10 layers),
*unstable* otherwise (``K₊``: ``1.2¹⁰ = 6.2``).

Usage::

    python examples/stability_figure1.py [--out runs/examples]

writes ``stability_figure1.png`` into ``--out`` (default ``runs/examples/``,
which ``.gitignore`` covers; created if missing) and prints its path; the
committed copy is ``examples/results/haber_ruthotto_2017/figure1.png``.  Needs
matplotlib (``pip install 'meganet[plot]'``).
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np

from meganet.integrators import ResNet
from meganet.layers import SingleLayer
from meganet.stability import block_states, forward_euler_stable, jacobian_spectrum
from meganet.transforms import Dense

#: The matrices of eq. (3.10).
MATRICES = {
    "K+": np.array([[2.0, -2.0], [0.0, 2.0]]),
    "K-": np.array([[-2.0, 0.0], [2.0, -2.0]]),
    "K0": np.array([[0.0, -1.0], [1.0, 0.0]]),
}
TITLES = {"K+": "$K_+$", "K-": "$K_-$", "K0": "$K_0$"}
#: Default output folder (relative to the working directory; ``.gitignore`` covers ``runs/``).
DEFAULT_OUT = os.path.join("runs", "examples")
#: A failed Lemma 1 check counts as *marginal* while the growth ``(max|1 + hλ|)^N`` of the
#: linearization over the whole run stays at most this (10 %), *unstable* above.
MARGINAL_GROWTH = 1.1


def euler_growth(amplification, n_steps):
    """``amplification^n_steps``: growth of the linearized forward Euler map over the run (``inf`` on overflow)."""
    log_growth = n_steps * math.log(amplification)
    return math.exp(log_growth) if log_growth < 709.0 else math.inf


def euler_label(euler, n_steps, *, marginal_growth=MARGINAL_GROWTH):
    """Verdict and text of the Lemma 1 check ``euler`` (a :class:`~meganet.stability.ForwardEulerStability`).

    Returns ``(verdict, detail)``: ``verdict`` is ``'stable'`` (``max|1 + hλ| ≤ 1 + tol``),
    ``'marginal'`` (the check fails, but the linearization grows by at most ``marginal_growth`` over
    the ``n_steps`` steps — e.g. forward Euler on a purely imaginary spectrum,
    ``|1 + hλ| = √(1 + h²|λ|²)``) or ``'unstable'``; ``detail`` gives the numbers.
    """
    amp = euler.amplification
    growth = euler_growth(amp, n_steps)
    if euler:
        return "stable", f"max|1+hλ| = {amp:.5f}"
    if growth <= marginal_growth:
        return "marginal", f"|1+hλ|−1 = {amp - 1:.1e}, growth {growth:.4g} over N = {n_steps} steps"
    return "unstable", f"max|1+hλ| = {amp:.5f}, growth {growth:.3g} over N = {n_steps} steps"


#: Example 1's starting points y₁, y₂ = −y₁, y₃ (rows) and their colours.
START_POINTS = np.array([[0.1, 0.1], [-0.1, -0.1], [0.0, 0.5]])
COLORS = ("tab:blue", "tab:red", "tab:green")


def force_field(K, Y):
    """``tanh(Kᵀ y)`` for the rows ``y`` of ``Y`` (the right-hand side of eq. 3.5, ``b = 0``)."""
    return np.tanh(Y @ np.asarray(K))


def resnet_trajectories(K, Y0, *, n_steps, final_time):
    """States ``y_0, …, y_N`` of the ResNet with identical layers ``y + h tanh(Kᵀ y)``.

    Returns
    -------
    states : array, shape (n_steps + 1, n_points, 2)
    block : ResNet
    """
    layer = SingleLayer(Dense(2, 2), activation="tanh", bias=False)
    block = ResNet(layer, n_steps=n_steps, final_time=final_time, basis="constant")
    theta = np.asarray(K, dtype=np.float64).T.reshape(-1)  # Dense(θ) computes Y θᵀ = Y K: the paper's row form
    return np.stack(block_states(block, theta, Y0)), block


def hamiltonian_K0(Y):
    """``H = log cosh y₁ + log cosh y₂``, conserved by ``Y' = tanh(K₀ Y)``."""
    return np.sum(np.log(np.cosh(Y)), axis=-1)


def run(*, n_steps=10, h=0.1, starts=START_POINTS):
    """Simulate the three networks (Example 1: ``N = 10``, ``h = 0.1``); returns a dict of arrays and
    diagnostics per matrix."""
    Y0 = np.asarray(starts, dtype=np.float64)
    results = {}
    for name, K in MATRICES.items():
        states, block = resnet_trajectories(K, Y0, n_steps=n_steps, final_time=h * n_steps)
        eigs = jacobian_spectrum(block.layer, K.T.reshape(-1), np.zeros((1, 2)), method="dense")
        norms = np.linalg.norm(states, axis=-1)
        euler = forward_euler_stable(eigs, block.h)
        results[name] = {
            "states": states,
            "eigenvalues": eigs,
            "euler": euler,
            "euler_label": euler_label(euler, n_steps),  # (verdict, detail)
            "norm_ratio": norms[-1] / norms[0],  # per starting point
            "distance_ratio_12": float(np.linalg.norm(states[-1, 0] - states[-1, 1])
                                       / np.linalg.norm(states[0, 0] - states[0, 1])),  # |y₁ − y₂| at N vs 0
            "hamiltonian_ratio": hamiltonian_K0(states[-1]) / hamiltonian_K0(states[0]),
        }
    return results


def plot(results, path):
    """Three phase-plane panels, saved as a PNG at ``path``."""
    Figure = _figure_class()
    fig = Figure(figsize=(12, 4.2))
    axes = fig.subplots(1, 3)
    for ax, (name, res) in zip(axes, results.items()):
        S = res["states"]
        lo, hi = S.reshape(-1, 2).min(0), S.reshape(-1, 2).max(0)
        pad = 0.15 * np.maximum(hi - lo, 0.2)
        gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 15),
                             np.linspace(lo[1] - pad[1], hi[1] + pad[1], 15))
        F = force_field(MATRICES[name], np.stack([gx.ravel(), gy.ravel()], 1))
        ax.quiver(gx, gy, F[:, 0].reshape(gx.shape), F[:, 1].reshape(gx.shape), color="k", alpha=0.45,
                  width=0.003)
        for i in range(S.shape[1]):
            ax.plot(S[:, i, 0], S[:, i, 1], ".-", lw=1.5, ms=4, color=COLORS[i % len(COLORS)],
                    label=f"$y_{i + 1}$ = [{S[0, i, 0]:g}, {S[0, i, 1]:g}]")
            ax.plot(S[0, i, 0], S[0, i, 1], "o", ms=6, mfc="none", color=COLORS[i % len(COLORS)])
        lam = ", ".join(f"{v.real:+.0f}{v.imag:+.0f}i" for v in res["eigenvalues"])
        verdict, detail = res["euler_label"]
        check = f"{verdict} ({detail})" if verdict == "stable" else f"{verdict}:\n{detail}"  # fits the panel width
        ax.set_title(f"{TITLES[name]}: λ = {lam}\nLemma 1 at 0: {check}", fontsize=9)
        ax.set_xlabel("$y_1$")
        ax.set_ylabel("$y_2$")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=7)
    fig.suptitle("ResNet $y_{j+1} = y_j + h\\,\\tanh(K^\\top y_j)$, N = 10 identical layers, h = 0.1, b = 0, "
                 "K of eq. (3.10) (Haber & Ruthotto 2017, Example 1 / Fig. 1)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("this example needs matplotlib: pip install 'meganet[plot]'") from err
    return Figure  # no pyplot: no global backend state, works headless


def main(argv=None):
    """Command line entry point; returns the results of :func:`run` plus ``'png'``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"output directory for the PNG (default {DEFAULT_OUT}; created if missing)")
    parser.add_argument("--n-steps", type=int, default=10, help="number of layers N (default 10, Example 1)")
    parser.add_argument("--h", type=float, default=0.1, help="step size h (default 0.1, Example 1)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = run(n_steps=args.n_steps, h=args.h)
    png = plot(results, os.path.join(args.out, "stability_figure1.png"))
    for name, res in results.items():
        r = res["norm_ratio"]
        print(f"{name}: eigenvalues {np.round(res['eigenvalues'], 6)}, |Y_N|/|Y_0| in [{r.min():.3g}, {r.max():.3g}]; "
              "Lemma 1 at 0 (h = {:g}): {} ({})".format(res["euler"].h, *res["euler_label"]))
    print(f"wrote {os.path.abspath(png)}")
    return {"png": png, **results}


if __name__ == "__main__":
    main()
