"""Compile time of the numba kernels (issue 13): cold (empty numba cache) vs warm.

Each measurement runs in a fresh subprocess whose ``NUMBA_CACHE_DIR`` is a new
temporary directory (cold) or the directory a previous cold run filled (warm):

* ``import``: ``import meganet`` (seconds, in-process clock);
* ``main_job``: wall time of ``meganet train --max-iter 1 --levels 1 --steps 4
  --n-train 64 --no-plots --quiet`` (the default network, float64), cold and warm;
* ``warmup``: ``meganet.kernels.warmup(dtypes=(dt,))`` per dtype, cold and warm;
* ``per_kernel``: the compile time of each dispatcher during a cold
  ``warmup()`` of both dtypes (numba's ``numba:compile`` events; self time, i.e.
  nested compiles of callees subtracted), with the number of signatures per
  dispatcher after the run.

Prints one JSON line per measurement plus a header line with the CPU model and
``uptime``.  Usage::

    python benchmarks/compile_time.py [--reps 1] [--skip-main-job] [--label before]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from benchmarks.common import cpu_name  # noqa: E402  (no numpy / numba import: compile times stay cold)

_IMPORT = r"""
import time, json
t0 = time.perf_counter()
import meganet
t1 = time.perf_counter()
import meganet.kernels
t2 = time.perf_counter()
print(json.dumps({"import_meganet_s": t1 - t0, "import_kernels_s": t2 - t1}))
"""

_WARMUP = r"""
import time, json, sys
import meganet.kernels as k
dts = tuple(sys.argv[1].split(","))
t = k.warmup(dtypes=dts)
print(json.dumps({"warmup_s": t}))
"""

_PER_KERNEL = r"""
import time, json, sys
import numba
from numba.core import event
import meganet.kernels as k
stack, self_t, count = [], {}, {}
class L(event.Listener):
    def on_start(self, ev):
        stack.append([ev.data["dispatcher"], time.perf_counter(), 0.0])
    def on_end(self, ev):
        d, t0, child = stack.pop()
        dt = time.perf_counter() - t0
        name = d.py_func.__module__.rsplit(".", 1)[-1] + "." + d.py_func.__qualname__
        self_t[name] = self_t.get(name, 0.0) + dt - child
        count[name] = count.get(name, 0) + 1
        if stack:
            stack[-1][2] += dt
event.register("numba:compile", L())
dts = tuple(sys.argv[1].split(","))
t = k.warmup(dtypes=dts)
# signatures per dispatcher
import gc
from numba.core.registry import CPUDispatcher
sigs = {}
for o in gc.get_objects():
    if isinstance(o, CPUDispatcher) and o.py_func.__module__.startswith("meganet"):
        n = len(o.signatures)
        if n:
            sigs[o.py_func.__module__.rsplit(".", 1)[-1] + "." + o.py_func.__qualname__] = n
print(json.dumps({"warmup_s": t, "compile_self_s": self_t, "compiles": count, "signatures": sigs}))
"""


def _env(cache_dir):
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = cache_dir
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _py(code, cache_dir, *args):
    out = subprocess.run([sys.executable, "-c", code, *args], env=_env(cache_dir), cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _main_job(cache_dir, out_dir):
    exe = os.path.join(os.path.dirname(sys.executable), "meganet")
    cmd = [exe, "train", "--max-iter", "1", "--levels", "1", "--steps", "4", "--n-train", "64",
           "--no-plots", "--quiet", "--overwrite", "--out", out_dir]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=_env(cache_dir), cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--label", default="")
    ap.add_argument("--skip-main-job", action="store_true")
    ap.add_argument("--skip-per-kernel", action="store_true")
    a = ap.parse_args()
    import numba

    print(json.dumps({"kind": "header", "label": a.label, "cpu": cpu_name(), "nproc": os.cpu_count(),
                      "numba": numba.__version__, "uptime": _uptime()}), flush=True)
    for rep in range(a.reps):
        base = tempfile.mkdtemp(prefix="meganet_ct_")
        try:
            rec = {"kind": "run", "label": a.label, "rep": rep}
            c = os.path.join(base, "cache_import")
            rec["import_cold"] = _py(_IMPORT, c)
            rec["import_warm"] = _py(_IMPORT, c)
            if not a.skip_main_job:
                c = os.path.join(base, "cache_job")
                rec["main_job_cold_s"] = _main_job(c, os.path.join(base, "out1"))
                rec["main_job_warm_s"] = _main_job(c, os.path.join(base, "out2"))
            for dt in ("float64", "float32"):
                c = os.path.join(base, "cache_" + dt)
                rec[f"warmup_{dt}_cold_s"] = _py(_WARMUP, c, dt)["warmup_s"]
                rec[f"warmup_{dt}_warm_s"] = _py(_WARMUP, c, dt)["warmup_s"]
            rec["uptime"] = _uptime()
            print(json.dumps(rec), flush=True)
            if not a.skip_per_kernel and rep == 0:
                c = os.path.join(base, "cache_pk")
                pk = _py(_PER_KERNEL, c, "float64,float32")
                top = sorted(pk["compile_self_s"].items(), key=lambda kv: -kv[1])
                print(json.dumps({"kind": "per_kernel", "label": a.label, "warmup_both_cold_s": pk["warmup_s"],
                                  "total_compile_self_s": sum(pk["compile_self_s"].values()),
                                  "n_dispatchers": len(pk["signatures"]),
                                  "n_signatures": sum(pk["signatures"].values()),
                                  "top": [[n, round(t, 3), pk["compiles"][n]] for n, t in top],
                                  "signatures": pk["signatures"], "uptime": _uptime()}), flush=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
