r"""Peaks (Haber & Ruthotto, "Stable architectures for deep neural networks", 2017, §6.3).

Five classes cut from the level sets of MATLAB's ``peaks`` function on
``[−3, 3]²`` (:func:`meganet.data.peaks`).  The network: a tanh layer lifting
the 2-D input to width 16, an antisymmetric ResNet
``Y_{j+1} = Y_j + h tanh(½(K_j − K_jᵀ)Y_j + b_j)`` with ``T = 5``, trained
multilevel in depth (8 → 16 → 32 steps) by Gauss-Newton-PCG with a softmax
classifier.  The paper reports about 98.8–99.1 % validation accuracy
(its Fig. 3); this script checks ≥ 98 %.

This is the default of ``meganet train``; the script is the same run from
Python, followed by loading the report folder back.

Usage::

    python examples/train_peaks.py [--out runs/peaks] [--network verlet] [--solver trn] [--seed 1]
"""

import argparse
import sys

from meganet.cli import TrainConfig, train
from meganet.report import load_run

TARGET = 0.98


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="report folder (default runs/peaks-...)")
    p.add_argument("--network", default="antisym", choices=("antisym", "verlet", "resnet", "leapfrog"))
    p.add_argument("--solver", default="gn", choices=("gn", "trn", "gnvpro", "lbfgs", "sgd", "adam", "steihaug"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    outcome = train(TrainConfig(data="peaks", network=args.network, solver=args.solver, seed=args.seed,
                                out=args.out, overwrite=args.overwrite))
    run = load_run(outcome.path)
    data = run.load_data()
    acc = run.accuracy(data.Y_val, data.C_val)
    ok = acc >= TARGET
    print(f"peaks: validation accuracy {100 * acc:.2f} % (target >= {100 * TARGET:.0f} %: "
          f"{'reached' if ok else 'NOT reached'}), {outcome.summary['wall_time_s']:.1f} s")
    return 0 if ok and outcome.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
