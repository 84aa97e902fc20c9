r"""Figure 2 of Haber & Ruthotto, "Stable architectures for deep neural networks" (2017).

Phase-plane trajectories of the two stable architectures of §4 with two
features and identical layers, for ``N = 500`` and ``N = 5000`` layers at the
same step size ``h = 0.1`` (so the deeper network runs ten times longer):

second-order network, leapfrog (eq. 4.16; :class:`meganet.integrators.leapfrog.Leapfrog`)
    ``Y_{j+1} = 2Y_j − Y_{j−1} + h² tanh(K_L Y_j)``, ``Y_{−1} = Y_0``, with the
    symmetric negative definite ``K_L = −¼ K₊ᵀK₊ = [[−1, 1], [1, −2]]``
    (eigenvalues ``(−3 ± √5)/2``, real and negative, the stability condition
    of the second-order network; ``h²|λ| < 4`` for leapfrog).
Hamiltonian network, Verlet (eq. 4.15/4.17; :class:`meganet.integrators.verlet.HamiltonianVerlet`)
    ``z_{j+½} = z_{j−½} − h tanh(Kᵀ y_j)``, ``y_{j+1} = y_j + h tanh(K z_{j+½})``,
    ``z_{−½} = 0``, with ``K = K₊ = [[2, −2], [0, 2]]`` — the matrix that makes
    the forward Euler ResNet of Figure 1 diverge.  The Jacobian of the
    Hamiltonian system has purely imaginary eigenvalues for every ``K``.

No biases.  The panels show the features ``y`` in the plane; the trajectories
stay bounded, and going from 500 to 5000 layers does not enlarge them.  For
contrast the script also runs the forward Euler ResNet with the antisymmetric
``K₀`` of Figure 1 at the same ``h`` and depth, whose amplification
``√(1 + h²)`` per step (Lemma 1) makes it spiral outwards.

The paper's exact weights for this figure were not available to this
project; the matrices above are our choice, reusing Figure 1's ``K₊``.

Usage::

    python examples/stability_figure2.py [--out runs/examples]

writes ``stability_figure2.png`` into ``--out`` (default ``runs/examples/``,
which ``.gitignore`` covers; created if missing) and prints its path.  Needs
matplotlib (``pip install 'meganet[plot]'``).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from meganet.integrators import ResNet
from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.layers import SingleLayer
from meganet.stability import block_states
from meganet.transforms import Dense

K_PLUS = np.array([[2.0, -2.0], [0.0, 2.0]])
K_LEAPFROG = -0.25 * K_PLUS.T @ K_PLUS  # [[-1, 1], [1, -2]]
K_ZERO = np.array([[0.0, -1.0], [1.0, 0.0]])
#: Default output folder (relative to the working directory; ``.gitignore`` covers ``runs/``).
DEFAULT_OUT = os.path.join("runs", "examples")


def starting_points(n_grid=3):
    """Grid points of ``[−1, 1]²`` without the origin, shape ``(n_grid² − 1, 2)``."""
    g = np.linspace(-1.0, 1.0, n_grid)
    pts = np.array([(a, b) for a in g for b in g])
    return pts[np.linalg.norm(pts, axis=1) > 1e-12]


def leapfrog_trajectories(Y0, *, n_steps, h):
    """``Y_0, …, Y_N`` of the leapfrog network, shape ``(N + 1, n_points, 2)``."""
    block = Leapfrog(2, n_steps=n_steps, final_time=h * n_steps, activation="tanh", bias="none", basis="constant")
    return np.stack(block_states(block, K_LEAPFROG.reshape(-1), Y0))


def verlet_trajectories(Y0, *, n_steps, h):
    """``y_0, …, y_N`` of the Hamiltonian network (``z_{−½} = 0``), shape ``(N + 1, n_points, 2)``."""
    block = HamiltonianVerlet(2, 2, n_steps=n_steps, final_time=h * n_steps, activation="tanh", bias="none",
                              basis="constant")
    states = np.stack(block_states(block, K_PLUS.reshape(-1), np.hstack([Y0, np.zeros_like(Y0)])))
    return states[..., :2]  # the state is [y, z]; plot y


def resnet_trajectories(Y0, *, n_steps, h):
    """Forward Euler ResNet ``Y + h tanh(K₀ Y)`` for contrast, shape ``(N + 1, n_points, 2)``."""
    layer = SingleLayer(Dense(2, 2), activation="tanh", bias=False)
    block = ResNet(layer, n_steps=n_steps, final_time=h * n_steps, basis="constant")
    return np.stack(block_states(block, K_ZERO.reshape(-1), Y0))


def run(*, depths=(500, 5000), h=0.1, n_grid=3):
    """Simulate all networks; returns ``{(name, N): {'states', 'max_norm', 'max_norm_first_half',
    'max_norm_second_half'}}`` with ``name`` in ``'leapfrog', 'verlet', 'resnet_K0'``."""
    Y0 = starting_points(n_grid)
    results = {}
    for N in depths:
        for name, fn in (("leapfrog", leapfrog_trajectories), ("verlet", verlet_trajectories),
                         ("resnet_K0", resnet_trajectories)):
            S = fn(Y0, n_steps=N, h=h)
            norms = np.linalg.norm(S, axis=-1)
            half = (N + 1) // 2
            results[(name, N)] = {
                "states": S,
                "max_norm": float(norms.max()),
                "max_norm_first_half": float(norms[:half].max()),
                "max_norm_second_half": float(norms[half:].max()),
                "final_norm_ratio": norms[-1] / norms[0],
            }
    return results


def plot(results, path, *, depths, h):
    """A 2 × len(depths) grid (leapfrog, Verlet) saved as a PNG at ``path``."""
    Figure = _figure_class()
    fig = Figure(figsize=(4.2 * len(depths), 8.0))
    axes = np.atleast_2d(fig.subplots(2, len(depths), squeeze=False))
    labels = {"leapfrog": "second order (leapfrog), $K_L = -\\frac{1}{4} K_+^T K_+$",
              "verlet": "Hamiltonian (Verlet), $K = K_+$"}
    for row, name in enumerate(("leapfrog", "verlet")):
        for col, N in enumerate(depths):
            ax = axes[row, col]
            res = results[(name, N)]
            S = res["states"]
            for i in range(S.shape[1]):
                ax.plot(S[:, i, 0], S[:, i, 1], "-", lw=0.5, alpha=0.8)
            ax.plot(S[0, :, 0], S[0, :, 1], "o", ms=3, color="k")
            euler = results[("resnet_K0", N)]["max_norm"]
            ax.set_title(f"{labels[name]}\nN = {N}, h = {h:g}: max |y| = {res['max_norm']:.3f} "
                         f"(Euler, $K_0$: {euler:.3g})", fontsize=8)
            ax.set_xlabel("$y_1$")
            ax.set_ylabel("$y_2$")
            ax.set_aspect("equal", adjustable="datalim")
            ax.grid(alpha=0.3)
    fig.suptitle("Stable architectures with identical layers (Haber & Ruthotto 2017, Fig. 2)", fontsize=10)
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
    parser.add_argument("--depths", type=int, nargs="+", default=[500, 5000], help="numbers of layers N")
    parser.add_argument("--h", type=float, default=0.1, help="step size h (default 0.1)")
    parser.add_argument("--n-grid", type=int, default=3, help="starting points per axis (default 3)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = run(depths=tuple(args.depths), h=args.h, n_grid=args.n_grid)
    png = plot(results, os.path.join(args.out, "stability_figure2.png"), depths=tuple(args.depths), h=args.h)
    for (name, N), res in results.items():
        print(f"{name:9s} N = {N:5d}: max |y| = {res['max_norm']:.4g} (first half {res['max_norm_first_half']:.4g}, "
              f"second half {res['max_norm_second_half']:.4g})")
    print(f"wrote {os.path.abspath(png)}")
    return {"png": png, **{f"{name}_N{N}": res for (name, N), res in results.items()}}


if __name__ == "__main__":
    main()
