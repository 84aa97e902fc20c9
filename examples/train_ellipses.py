r"""Concentric ellipses (Haber & Ruthotto 2017, §6; our definition in :func:`meganet.data.ellipses`).

Points uniform in ``[−1, 1]²``, two classes by the elliptic radius
(2000 training and 500 validation points), a tanh opening layer to width 16
and an antisymmetric ResNet (``T = 5``, multilevel 8 → 16 → 32 steps) trained
by Gauss-Newton-PCG.  Target: ≥ 99 % validation accuracy.

Usage::

    python examples/train_ellipses.py [--out runs/ellipses] [--network verlet] [--seed 1]
"""

import argparse
import sys

from meganet.cli import TrainConfig, train
from meganet.report import load_run

TARGET = 0.99


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="report folder (default runs/ellipses-...)")
    p.add_argument("--network", default="antisym", choices=("antisym", "verlet", "resnet", "leapfrog"))
    p.add_argument("--solver", default="gn", choices=("gn", "trn", "gnvpro", "lbfgs", "sgd", "adam", "steihaug"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    outcome = train(TrainConfig(data="ellipses", network=args.network, solver=args.solver, seed=args.seed,
                                out=args.out, overwrite=args.overwrite))
    run = load_run(outcome.path)
    data = run.load_data()
    acc = run.accuracy(data.Y_val, data.C_val)
    ok = acc >= TARGET
    print(f"ellipses: validation accuracy {100 * acc:.2f} % (target >= {100 * TARGET:.0f} %: "
          f"{'reached' if ok else 'NOT reached'}), {outcome.summary['wall_time_s']:.1f} s")
    return 0 if ok and outcome.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
