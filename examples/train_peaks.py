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
    python examples/train_peaks.py --n-train 64 --max-iter 2 --levels 1 --steps 4   # smoke test, seconds

The report folder goes to ``--out`` (default ``runs/<data>-<network>-<solver>-<timestamp>/``);
the accuracy target is checked for the default sizes only (see ``_train_common.py``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _train_common, also when imported by path
from _train_common import run_example  # noqa: E402

TARGET = 0.98


def main(argv=None):
    return run_example("peaks", "peaks", TARGET, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
