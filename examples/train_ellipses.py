r"""Concentric ellipses (Haber & Ruthotto 2017, §6; our definition in :func:`meganet.data.ellipses`).

Points uniform in ``[−1, 1]²``, two classes by the elliptic radius
(2000 training and 500 validation points), a tanh opening layer to width 16
and an antisymmetric ResNet (``T = 5``, multilevel 8 → 16 → 32 steps) trained
by Gauss-Newton-PCG.  Target: ≥ 99 % validation accuracy.

Usage::

    python examples/train_ellipses.py [--out runs/ellipses] [--network verlet] [--seed 1]
    python examples/train_ellipses.py --n-train 64 --max-iter 2 --levels 1 --steps 4   # smoke test, seconds

The report folder goes to ``--out`` (default ``runs/<data>-<network>-<solver>-<timestamp>/``);
the accuracy target is checked for the default sizes only (see ``_train_common.py``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _train_common, also when imported by path
from _train_common import run_example  # noqa: E402

TARGET = 0.99


def main(argv=None):
    return run_example("ellipses", "ellipses", TARGET, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
