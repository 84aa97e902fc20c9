r"""Figure 1 of Haber & Ruthotto, "Stable architectures for deep neural networks" (2017).

Phase-plane trajectories of a ResNet with two features and identical layers,

.. math:: Y_{j+1} = Y_j + h\,\tanh(K Y_j), \qquad j = 0, …, N−1,

(forward Euler for ``Y' = tanh(K Y)``, no bias) for three matrices that
differ only in the spectrum of ``K`` — the Jacobian of the layer at the
origin, ``J_Y = diag(tanh'(KY)) K = K`` at ``Y = 0``:

``K₊ = [[2, −2], [0, 2]]``
    eigenvalues ``{2, 2}``, positive real part: the origin repels, the
    trajectories diverge (forward propagation is unstable; small input
    perturbations grow like ``e^{2t}`` until tanh saturates).
``K₋ = [[−2, 0], [2, −2]]``
    eigenvalues ``{−2, −2}``: every trajectory decays to the origin — stable,
    but information about the input is lost (all outputs collapse).
``K₀ = [[0, −1], [1, 0]]``
    antisymmetric, eigenvalues ``{i, −i}``: the trajectories circle the
    origin.  The ODE ``y₁' = −tanh(y₂)``, ``y₂' = tanh(y₁)`` is Hamiltonian
    with ``H = log cosh y₁ + log cosh y₂``, so its orbits are closed curves;
    forward Euler drifts outward by ``√(1 + h²|λ|²)`` per step near the
    origin (Lemma 1).  On a purely imaginary spectrum ``|1 + hλ| > 1`` for
    every ``h > 0``, so Lemma 1's check fails, but only marginally: over the
    ``N = T/h`` steps the linearization grows by
    ``(1 + h²ρ²)^{N/2} ≈ exp(T h ρ²/2)`` (``ρ = max|λ|``), which is 1.025
    for the defaults (``|1 + hλ| − 1 = 5e-5``) and vanishes as ``h → 0``.

These are the three matrices of the paper's eq. (3.10) as we know them: the
paper text was not available to this project, so the entries follow its
description (one matrix with eigenvalues of positive real part, one with
negative real part, one with purely imaginary eigenvalues) and our best
recollection of the printed matrices; the qualitative picture — divergence,
decay, rotation — is what Figure 1 shows.  Settings: tanh, no bias, identical
layers, final time ``T = 5`` with ``N = 500`` layers (``h = 0.01``), 24
starting points on a grid in ``[−1, 1]²``.

Every panel title also reports the Lemma 1 check ``max |1 + hλ_i| ≤ 1`` of
the layer's Jacobian at the origin (:func:`meganet.stability.jacobian_spectrum`
and :func:`meganet.stability.forward_euler_stable`) with the growth factor
``(max |1 + hλ_i|)^N`` of the linearization over the whole run
(:func:`euler_label`): *stable* if the check passes, *marginal* if it fails but
the growth is at most :data:`MARGINAL_GROWTH` (``K₀``), *unstable* otherwise
(``K₊``: growth ``≈ e^{2T}``).

Usage::

    python examples/stability_figure1.py [--out runs/examples]

writes ``stability_figure1.png`` into ``--out`` (default ``runs/examples/``,
which ``.gitignore`` covers; created if missing) and prints its path.  Needs
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

#: The matrices of eq. (3.10) (see the module docstring).
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


def starting_points(n_grid=5):
    """Grid points of ``[−1, 1]²`` without the origin (a fixed point), shape ``(n_grid² − 1, 2)``."""
    g = np.linspace(-1.0, 1.0, n_grid)
    pts = np.array([(a, b) for a in g for b in g])
    return pts[np.linalg.norm(pts, axis=1) > 1e-12]


def resnet_trajectories(K, Y0, *, n_steps, final_time):
    """States ``Y_0, …, Y_N`` of the ResNet with identical layers ``tanh(K Y)``.

    Returns
    -------
    states : array, shape (n_steps + 1, n_points, 2)
    block : ResNet
    """
    layer = SingleLayer(Dense(2, 2), activation="tanh", bias=False)
    block = ResNet(layer, n_steps=n_steps, final_time=final_time, basis="constant")
    theta = np.asarray(K, dtype=np.float64).reshape(-1)  # θ = vec(K), row-major: Dense computes Y Kᵀ
    return np.stack(block_states(block, theta, Y0)), block


def hamiltonian_K0(Y):
    """``H = log cosh y₁ + log cosh y₂``, conserved by ``Y' = tanh(K₀ Y)``."""
    return np.sum(np.log(np.cosh(Y)), axis=-1)


def run(*, n_steps=500, final_time=5.0, n_grid=5):
    """Simulate the three networks; returns a dict of arrays and diagnostics per matrix."""
    Y0 = starting_points(n_grid)
    results = {}
    for name, K in MATRICES.items():
        states, block = resnet_trajectories(K, Y0, n_steps=n_steps, final_time=final_time)
        eigs = jacobian_spectrum(block.layer, K.reshape(-1), np.zeros((1, 2)), method="dense")
        norms = np.linalg.norm(states, axis=-1)
        euler = forward_euler_stable(eigs, block.h)
        results[name] = {
            "states": states,
            "eigenvalues": eigs,
            "euler": euler,
            "euler_label": euler_label(euler, n_steps),  # (verdict, detail)
            "norm_ratio": norms[-1] / norms[0],  # per starting point
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
        for i in range(S.shape[1]):
            ax.plot(S[:, i, 0], S[:, i, 1], "-", lw=1.0, color="tab:blue")
        ax.plot(S[0, :, 0], S[0, :, 1], "o", ms=3, color="tab:green", label="$Y_0$")
        ax.plot(S[-1, :, 0], S[-1, :, 1], "o", ms=3, color="tab:red", label="$Y_N$")
        lam = ", ".join(f"{v.real:+.0f}{v.imag:+.0f}i" for v in res["eigenvalues"])
        verdict, detail = res["euler_label"]
        check = f"{verdict} ({detail})" if verdict == "stable" else f"{verdict}:\n{detail}"  # fits the panel width
        ax.set_title(f"{TITLES[name]}: λ = {lam}\nLemma 1 at 0: {check}", fontsize=9)
        ax.set_xlabel("$y_1$")
        ax.set_ylabel("$y_2$")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("ResNet $Y_{j+1} = Y_j + h\\,\\tanh(K Y_j)$ with identical layers "
                 "(Haber & Ruthotto 2017, Fig. 1)", fontsize=10)
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
    parser.add_argument("--n-steps", type=int, default=500, help="number of layers N (default 500)")
    parser.add_argument("--final-time", type=float, default=5.0, help="final time T (default 5); h = T/N")
    parser.add_argument("--n-grid", type=int, default=5, help="starting points per axis (default 5)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = run(n_steps=args.n_steps, final_time=args.final_time, n_grid=args.n_grid)
    png = plot(results, os.path.join(args.out, "stability_figure1.png"))
    for name, res in results.items():
        r = res["norm_ratio"]
        print(f"{name}: eigenvalues {np.round(res['eigenvalues'], 6)}, |Y_N|/|Y_0| in [{r.min():.3g}, {r.max():.3g}]; "
              "Lemma 1 at 0 (h = {:g}): {} ({})".format(res["euler"].h, *res["euler_label"]))
    print(f"wrote {os.path.abspath(png)}")
    return {"png": png, **results}


if __name__ == "__main__":
    main()
