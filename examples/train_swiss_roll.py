r"""Swiss roll (Haber & Ruthotto 2017, §6.2; Meganet.m ``setupSwissRoll.m``).

Two interleaved spirals, 512 training and 512 validation points
(:func:`meganet.data.swiss_roll`), a tanh opening layer to width 16 and an
antisymmetric ResNet (``T = 5``, multilevel 8 → 16 → 32 steps) trained by
Gauss-Newton-PCG.  The papers report ≥ 99 % validation accuracy on this
problem; this script checks it.

Usage::

    python examples/train_swiss_roll.py [--out runs/swiss] [--network verlet] [--seed 1]
    python examples/train_swiss_roll.py --n-train 64 --max-iter 2 --levels 1 --steps 4   # smoke test, seconds

The report folder goes to ``--out`` (default ``runs/<data>-<network>-<solver>-<timestamp>/``);
the accuracy target is checked for the default sizes only (see ``_train_common.py``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _train_common, also when imported by path
from _train_common import run_example  # noqa: E402

TARGET = 0.99


def main(argv=None):
    return run_example("swiss_roll", "swiss roll", TARGET, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
