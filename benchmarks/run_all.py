"""Run every available benchmark (B1–B4 of benchmarks/README.md, "Workloads") and write a table.

    python benchmarks/run_all.py [--out DIR] [--reps N] [--only B1,B3]

Each workload runs in its own process (2 threads for every framework, see
:mod:`benchmarks.common`) with a fresh, empty numba cache directory, so the
``first_call_s`` fields include the JIT compile of the kernels the op needs
(reported separately; the timed repetitions never include it).  B4 runs only
when cupy finds a CUDA device.  Output in ``DIR`` (default
``benchmarks/results/<date-time>``): ``results.jsonl`` (all JSON lines) and
``results.md`` (a table: median times, ratios meganet/PyTorch, peak memory,
GFLOP/s).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

WORKLOADS = {
    "B1": "b1_dense_antisym",
    "B2": "b2_conv_parabolic",
    "B3": "b3_hamiltonian_verlet",
    "B4": "b4_conv_parabolic_gpu",
}


def _run(module, reps, seed):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
        code = (f"import sys; sys.path.insert(0, {ROOT!r}); import benchmarks.{module} as m; "
                f"m.main(seed={seed}, reps={reps})")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
    return lines, proc.returncode


def _fmt(x, spec):
    return "" if x is None else format(x, spec)


def table(records):
    """Markdown table: one row per (workload, op, engine)."""
    ratios = {(r["workload"], r["op"], r["engine"].split("/")[0]): r for r in records if "ratio" in r}
    head = ("| workload | op | engine | median [ms] | ratio vs PyTorch | first call [s] | peak mem [MiB] | "
            "mem ratio | GFLOP/s | of peak | max rel diff |")
    rows = [head, "|" + "|".join(["---"] * 11) + "|"]
    for r in records:
        if "ratio" in r:
            continue
        q = ratios.get((r["workload"], r["op"], r["engine"]), {})
        rows.append("| " + " | ".join([
            r["workload"], r["op"], r["engine"], _fmt(1e3 * r["median_s"], ".2f"), _fmt(q.get("ratio"), ".3f"),
            _fmt(r.get("first_call_s"), ".2f"), _fmt(r.get("peak_mib"), ".1f"), _fmt(q.get("memory_ratio"), ".2f"),
            _fmt(r.get("gflops_per_s"), ".1f"), _fmt(r.get("fraction_of_peak"), ".2f"),
            _fmt(r.get("max_rel_diff_vs_pytorch"), ".1e"),
        ]) + " |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma separated subset, e.g. B1,B3")
    args = ap.parse_args(argv)
    if args.reps < 5:
        ap.error("--reps must be at least 5 (benchmarks/README.md, Workloads)")
    out = args.out or os.path.join(HERE, "results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    chosen = [k for k in WORKLOADS if not args.only or k in args.only.split(",")]
    records, failed = [], []
    from benchmarks.common import cpu_name
    from meganet.backend import cupy_available

    if "B4" in chosen and not cupy_available():
        print("== B4 skipped: needs cupy with a CUDA device", flush=True)
        chosen.remove("B4")

    loads = {}
    for key in chosen:
        loads[key] = os.getloadavg()[0]
        print(f"== {key} ({WORKLOADS[key]}), 1-min load average {loads[key]:.2f}", flush=True)
        lines, rc = _run(WORKLOADS[key], args.reps, args.seed)
        records += lines
        for line in lines:
            print(json.dumps(line), flush=True)
        if rc != 0:
            failed.append(key)
    with open(os.path.join(out, "results.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"# meganet benchmarks ({datetime.datetime.now():%Y-%m-%d %H:%M}, {cpu_name()}, 2 threads)\n\n")
        f.write("1-min load average before each workload (other processes on the machine distort timings): "
                + ", ".join(f"{k} {v:.2f}" for k, v in loads.items()) + "\n\n")
        f.write(table(records) + "\n")
        if failed:
            f.write(f"\nFailed or skipped: {', '.join(failed)}\n")
    print(f"wrote {out}/results.jsonl and results.md")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
