"""Shared command line of the ``train_*.py`` examples (not an example itself).

Each example trains one data set with :func:`meganet.cli.train`, loads the
report folder back and checks the validation accuracy against the target
that the paper reports for the default settings.  The report folder goes to
``--out`` (default ``runs/<data>-<network>-<solver>-<timestamp>/``, which
``.gitignore`` covers).

``--n-train``, ``--max-iter``, ``--levels`` and ``--steps`` shrink the run
(e.g. for a smoke test: ``--n-train 64 --max-iter 2 --levels 1 --steps 4``
takes a few seconds); the accuracy target applies to the default settings
only, so a reduced run reports its accuracy without checking the target.
"""

import argparse
import os

from meganet.cli import SOLVERS, TrainConfig, train
from meganet.report import load_run

NETWORKS = ("antisym", "verlet", "resnet", "leapfrog")
#: Options that shrink the run; given any of them, the accuracy target is not checked.
REDUCING = ("n_train", "max_iter", "levels", "steps")


def parser(doc, data):
    """The argument parser of a ``train_<data>.py`` example (``doc``: its module docstring)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", default=None, help=f"report folder (default runs/{data}-<network>-<solver>-<timestamp>)")
    p.add_argument("--network", default="antisym", choices=NETWORKS)
    p.add_argument("--solver", default="gn", choices=SOLVERS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--n-train", type=int, default=None, help="training examples (reduced run)")
    p.add_argument("--max-iter", type=int, default=None, help="solver iterations per level (reduced run)")
    p.add_argument("--levels", type=int, default=None, help="multilevel depth levels (reduced run)")
    p.add_argument("--steps", type=int, default=None, help="time steps at the finest level (reduced run)")
    return p


def run_example(data, label, target, doc, argv=None):
    """Train ``data`` with the command line ``argv``; returns the exit code (0: success)."""
    args = parser(doc, data).parse_args(argv)
    reduced = {k: getattr(args, k) for k in REDUCING if getattr(args, k) is not None}
    outcome = train(TrainConfig(data=data, network=args.network, solver=args.solver, seed=args.seed,
                                out=args.out, overwrite=args.overwrite, **reduced))
    run = load_run(outcome.path)
    data_sets = run.load_data()
    acc = run.accuracy(data_sets.Y_val, data_sets.C_val)
    if reduced:
        ok, verdict = True, "not checked: reduced run"
    else:
        ok = acc >= target
        verdict = "reached" if ok else "NOT reached"
    print(f"{label}: validation accuracy {100 * acc:.2f} % (target >= {100 * target:.0f} %: {verdict}), "
          f"{outcome.summary['wall_time_s']:.1f} s")
    print(f"wrote the report folder {os.path.abspath(outcome.path)}")
    return 0 if ok and outcome.exit_code == 0 else 1
