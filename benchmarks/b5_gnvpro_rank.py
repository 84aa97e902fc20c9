"""B5 follow-up: GNvpro's Krylov dimension r (the rank of its Gauss-Newton model) at the same budgets.

GNvpro costs ``2 + 2r`` work units per iteration; with the default r ≤ 20 it takes ~15–25
iterations of 600 work units.  This script reruns :func:`b5_second_order_vs_sgd.run_one` for
``gnvpro`` with ``krylov_dim`` in ``--ranks`` on seeds ``0..S-1`` and writes JSON lines (one per run,
without the curves) to ``--out`` (default ``benchmarks/results/b5-rank-<date>.jsonl``).

Usage::

    python benchmarks/b5_gnvpro_rank.py --problems peaks digits cdr dcr --ranks 5 10 --seeds 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchmarks.b5_second_order_vs_sgd as b5  # noqa: E402  (sets the thread limits)


def run(args):
    problem, r, seed = args
    rec = b5.run_one(problem, "gnvpro", seed, krylov_dim=r)
    rec.pop("curve", None)
    rec["krylov_dim"] = r
    return rec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", nargs="+", default=list(b5.PROBLEMS), choices=list(b5.PROBLEMS))
    ap.add_argument("--ranks", nargs="+", type=int, default=[5, 10])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    out = a.out or os.path.join("benchmarks", "results",
                                "b5-rank-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".jsonl")
    import multiprocessing as mp

    for p in a.problems:
        b5.load_data(p)
    jobs = [(p, r, s) for p in a.problems for r in a.ranks for s in range(a.seeds)]
    with mp.get_context("fork").Pool(a.jobs) as pool, open(out, "w") as fh:
        for rec in pool.imap_unordered(run, jobs):
            line = json.dumps(rec)
            print(line, flush=True)
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
