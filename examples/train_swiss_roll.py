r"""Swiss roll (Haber & Ruthotto 2017, §6.2; Meganet.m ``setupSwissRoll.m``).

Two interleaved spirals, 512 training and 512 validation points
(:func:`meganet.data.swiss_roll`), a tanh opening layer to width 16 and an
antisymmetric ResNet (``T = 5``, multilevel 8 → 16 → 32 steps) trained by
Gauss-Newton-PCG.  The papers report ≥ 99 % validation accuracy on this
problem; this script checks it.

Usage::

    python examples/train_swiss_roll.py [--out runs/swiss] [--network verlet] [--seed 1]
"""

import argparse
import sys

from meganet.cli import TrainConfig, train
from meganet.report import load_run

TARGET = 0.99


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="report folder (default runs/swiss_roll-...)")
    p.add_argument("--network", default="antisym", choices=("antisym", "verlet", "resnet", "leapfrog"))
    p.add_argument("--solver", default="gn", choices=("gn", "trn", "gnvpro", "lbfgs", "sgd", "adam", "steihaug"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    outcome = train(TrainConfig(data="swiss_roll", network=args.network, solver=args.solver, seed=args.seed,
                                out=args.out, overwrite=args.overwrite))
    run = load_run(outcome.path)
    data = run.load_data()
    acc = run.accuracy(data.Y_val, data.C_val)
    ok = acc >= TARGET
    print(f"swiss roll: validation accuracy {100 * acc:.2f} % (target >= {100 * TARGET:.0f} %: "
          f"{'reached' if ok else 'NOT reached'}), {outcome.summary['wall_time_s']:.1f} s")
    return 0 if ok and outcome.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
