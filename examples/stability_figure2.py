r"""Figure 2 of Haber & Ruthotto, "Stable architectures for deep neural networks" (2017), Example 2.

Phase-plane diagrams of the two Hamiltonian-inspired networks of §4.3 with
identical layers, ``b = 0``, tanh, for ``N = 500`` (short term) and
``N = 5000`` layers (long term), starting from ``y₁ = [0.1, 0.1]`` (blue) and
``y₂ = [−0.1, −0.1]`` (red):

leapfrog, eq. (4.16) (:class:`meganet.integrators.leapfrog.Leapfrog`), ``h = 1``
    ``y_{j+1} = 2y_j − y_{j−1} + h² tanh(K y_j)`` with ``K = K₋ = [[−2, 0], [2, −2]]``
    of eq. (3.10) (``λ₁ = λ₂ = −2``; the linearization is inside the leapfrog
    stability interval ``h²λ ∈ [−4, 0]``).  The first step uses ``y_{−1} = y₀``
    (zero initial velocity, as the library's leapfrog; the printed ``j = 0``
    case of eq. 4.16 reads ``2y₀ + h²σ(…)``, i.e. ``y_{−1} = 0``).
Verlet, eq. (4.17) (:class:`meganet.integrators.verlet.HamiltonianVerlet`), ``h = 0.1``
    ``z_{j+½} = z_{j−½} − h tanh(K_v y_j)``, ``y_{j+1} = y_j + h tanh(K_vᵀ z_{j+½})``,
    ``z_{−½} = 0``, with the non-square ``K_v = [[2, 1], [−1, 2], [0, 1]]``
    (3 × 2).  The features ``y`` are 2-D and the auxiliary ``z`` 3-D, so the
    2 × 3 matrix applied to ``y`` in eq. (4.17) is ``K_v`` acting on ``y``:
    in the library's notation (``K`` of shape ``(n_y, n_z)``, ``z`` update
    ``σ(Kᵀy)``) the weight is ``K = K_vᵀ``.

Both discretizations are symplectic.  Verlet reproduces the paper's statement
that the features neither explode nor vanish: ``max |y| = 0.142`` (``|y₀| = 0.141``)
over the first and the second half of both runs, Lissajous-like orbits filling
the square ``[−0.1, 0.1]²``.  Leapfrog with ``K₋`` does not grow exponentially
either, but ``K₋`` is defective (a Jordan block, ``λ = −2`` twice), and the
linearized leapfrog recursion then grows secularly: ``y₁`` oscillates while
``y₂`` (driven by ``2y₁``) drifts along the ``y₂`` axis, ``max |y| ≈ 33`` at
``N = 500`` and ``≈ 1.2e3`` at ``N = 5000`` (roughly linear in ``N``; the same with
``y_{−1} = 0`` or with ``Kᵀ``).  The script reports ``max |y|`` over the first
and the second half of each run and the smallest ``|y|`` in the second half.

Usage::

    python examples/stability_figure2.py [--out runs/examples]

writes ``stability_figure2.png`` into ``--out`` (default ``runs/examples/``,
which ``.gitignore`` covers; created if missing) and prints its path; the
committed copy is ``examples/results/haber_ruthotto_2017/figure2.png``.  Needs
matplotlib (``pip install 'meganet[plot]'``).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.stability import block_states

#: ``K₋`` of eq. (3.10), the leapfrog weight of Example 2.
K_MINUS = np.array([[-2.0, 0.0], [2.0, -2.0]])
#: ``K_v`` of Example 2 (3 × 2), the Verlet weight.
K_VERLET = np.array([[2.0, 1.0], [-1.0, 2.0], [0.0, 1.0]])
#: Example 2's starting points y₁, y₂ (rows) and their colours.
START_POINTS = np.array([[0.1, 0.1], [-0.1, -0.1]])
COLORS = ("tab:blue", "tab:red")
#: Step sizes of Example 2.
H_LEAPFROG, H_VERLET = 1.0, 0.1
#: Default output folder (relative to the working directory; ``.gitignore`` covers ``runs/``).
DEFAULT_OUT = os.path.join("runs", "examples")


def leapfrog_trajectories(Y0, *, n_steps, h=H_LEAPFROG, K=K_MINUS):
    """``y_0, …, y_N`` of the leapfrog network ``2y_j − y_{j−1} + h² tanh(K y_j)``, shape ``(N + 1, n_points, 2)``."""
    # The orbit is chaotic: two engines' rounding differences (1e-16) grow to 1e-3 between steps 100 and 300 and
    # to O(1) by step 500 (measured numpy vs numba, 2026-12-05), so the figure uses the reference engine and does
    # not change with the compiled kernels' summation order.
    block = Leapfrog(2, n_steps=n_steps, final_time=h * n_steps, activation="tanh", bias="none", basis="constant",
                     engine="numpy")
    return np.stack(block_states(block, np.asarray(K, dtype=np.float64).reshape(-1), Y0))  # θ = vec(K): σ(K y)


def verlet_trajectories(Y0, *, n_steps, h=H_VERLET, Kv=K_VERLET):
    """``y_0, …, y_N`` of the Verlet network with ``z_{−½} = 0``, shape ``(N + 1, n_points, 2)``."""
    Kv = np.asarray(Kv, dtype=np.float64)
    n_z, n_y = Kv.shape
    block = HamiltonianVerlet(n_y, n_z, n_steps=n_steps, final_time=h * n_steps, activation="tanh", bias="none",
                              basis="constant")
    states = np.stack(block_states(block, Kv.T.reshape(-1), np.hstack([Y0, np.zeros((Y0.shape[0], n_z))])))
    return states[..., :n_y]  # the state is [y, z]; plot y


def run(*, depths=(500, 5000), starts=START_POINTS):
    """Simulate both networks (Example 2); returns ``{(name, N): {'states', 'max_norm', 'max_norm_first_half',
    'max_norm_second_half', 'min_norm_second_half', 'final_norm_ratio'}}`` with ``name`` in
    ``'leapfrog', 'verlet'``."""
    Y0 = np.asarray(starts, dtype=np.float64)
    results = {}
    for N in depths:
        for name, fn in (("leapfrog", leapfrog_trajectories), ("verlet", verlet_trajectories)):
            S = fn(Y0, n_steps=N)
            norms = np.linalg.norm(S, axis=-1)
            half = (N + 1) // 2
            results[(name, N)] = {
                "states": S,
                "max_norm": float(norms.max()),
                "max_norm_first_half": float(norms[:half].max()),
                "max_norm_second_half": float(norms[half:].max()),
                "min_norm_second_half": float(norms[half:].min()),
                "final_norm_ratio": norms[-1] / norms[0],
            }
    return results


def plot(results, path, *, depths):
    """A 2 × len(depths) grid (leapfrog, Verlet) saved as a PNG at ``path``."""
    Figure = _figure_class()
    fig = Figure(figsize=(4.6 * len(depths), 8.6))
    axes = np.atleast_2d(fig.subplots(2, len(depths), squeeze=False))
    labels = {"leapfrog": f"leapfrog (4.16), $K = K_-$, h = {H_LEAPFROG:g}",
              "verlet": f"Verlet (4.17), $K_v$ (3×2), h = {H_VERLET:g}"}
    for row, name in enumerate(("leapfrog", "verlet")):
        for col, N in enumerate(depths):
            ax = axes[row, col]
            res = results[(name, N)]
            S = res["states"]
            for i in range(S.shape[1]):
                ax.plot(S[:, i, 0], S[:, i, 1], "-", lw=0.6, alpha=0.8, color=COLORS[i % len(COLORS)],
                        label=f"$y_{i + 1}$ = [{S[0, i, 0]:g}, {S[0, i, 1]:g}]")
                ax.plot(S[0, i, 0], S[0, i, 1], "o", ms=5, color="k")
            ax.set_title(f"{labels[name]}\nN = {N}: max |y| = {res['max_norm']:.3f}, "
                         f"min |y| (2nd half) = {res['min_norm_second_half']:.3f}", fontsize=8)
            ax.set_xlabel("$y_1$")
            ax.set_ylabel("$y_2$")
            ax.set_aspect("equal", adjustable="datalim")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle("Identical layers, b = 0, tanh (Haber & Ruthotto 2017, Example 2 / Fig. 2)", fontsize=10)
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
    """Command line entry point; returns ``{'png': path, '<name>_N<N>': result, ...}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"output directory for the PNG (default {DEFAULT_OUT}; created if missing)")
    parser.add_argument("--depths", type=int, nargs="+", default=[500, 5000],
                        help="numbers of layers N (default 500 5000, Example 2)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = run(depths=tuple(args.depths))
    png = plot(results, os.path.join(args.out, "stability_figure2.png"), depths=tuple(args.depths))
    for (name, N), res in results.items():
        print(f"{name:8s} N = {N:5d}: max |y| = {res['max_norm']:.4g} (first half {res['max_norm_first_half']:.4g}, "
              f"second half {res['max_norm_second_half']:.4g}), min |y| in the second half "
              f"{res['min_norm_second_half']:.3g}")
    print(f"wrote {os.path.abspath(png)}")
    return {"png": png, **{f"{name}_N{N}": res for (name, N), res in results.items()}}


if __name__ == "__main__":
    main()
