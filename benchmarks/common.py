"""Shared harness of the benchmarks B1–B4 (defined in ``benchmarks/README.md``, section "Workloads").

Call :func:`limit_threads` *before* numpy, numba or torch are imported: every
framework gets the same number of CPU threads (2 by default, as the workload
definitions ask).

Timing
    :func:`compare` times the ops of several engines **interleaved** in one
    process: two warm-ups per engine, then ``reps`` rounds that each run every
    engine once (alternating order), so drifts of the machine (clock, other
    load) hit all engines alike.  Times are medians.
Memory
    On Linux :func:`peak_rss` resets the process high-water mark
    (``/proc/self/clear_refs`` ← ``5``), runs the op once and reads ``VmHWM``;
    it reports the growth of the peak resident set over the resident set
    before the call, in MiB.  This counts every allocation the op touches,
    numpy's, numba's and torch's alike.  To keep one framework's retained
    heap from hiding another's allocations, every (engine, op) is measured in
    its own fresh process (:func:`peak_rss_isolated`: build the op, run it
    once to warm up, then measure one call), with glibc's mmap threshold fixed
    at 4 KiB so freed blocks go back to the system.  (Only there: the timing
    processes keep glibc's defaults, since a fixed threshold makes every large
    temporary an mmap/munmap with fresh page faults, which slows numpy and
    torch alike.)  On a GPU the cupy
    memory pool's and torch's ``max_memory_allocated`` peaks are used.
OpenMP wait policy
    meganet sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it) before its
    numba kernels load libgomp.  PyTorch ships its own libgomp; whichever
    OpenMP runtime is loaded first reads the variable then, and when numba's
    is loaded first PyTorch shares it.  :func:`torch_first` (called by the
    workloads that compare with PyTorch, right after :func:`limit_threads`)
    loads PyTorch and its OpenMP runtime *before* meganet, so PyTorch runs
    with the policy the user started with (unset: libgomp's default, idle
    threads spin a while) and meganet with its own.  Every record says which
    (``omp_wait_policy_pytorch``, ``omp_wait_policy_meganet``,
    ``openmp_runtimes``).  Before 2026-12-05 PyTorch was imported after
    meganet and ran PASSIVE, which slowed it (conv block: 0.81 s PASSIVE vs
    0.11–0.26 s default) and flattered the ratios.
Output
    One JSON object per line: ``workload, op, engine, device, dtype,
    median_s, reps, seed`` plus extras (``peak_mib``, ``gflops``,
    ``gflops_per_s``, ``compile_s``); ratio lines have ``engine`` =
    ``"meganet/pytorch"`` and a ``ratio`` field.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import sys
import time

__all__ = ["limit_threads", "torch_first", "openmp_fields", "compare", "peak_rss", "peak_rss_isolated", "peak_gpu", "emit", "ratio_line", "cpu_name", "cpu_peak_gflops",
           "have_torch", "run_ops", "first_call", "rel_diff"]

THREADS = 2
#: pause before each timed call (see :func:`compare`)
SETTLE_S = 0.005


def limit_threads(n=THREADS):
    """Set the thread count of every math library (call before importing them)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:  # pragma: no cover - order mistake of the caller
        sys.modules["torch"].set_num_threads(n)


#: OMP_WAIT_POLICY as PyTorch's OpenMP runtime saw it (set by :func:`torch_first`)
_TORCH_POLICY = {"value": None, "loaded_first": False}


def torch_first(n=THREADS):
    """Import PyTorch (if installed) before meganet, with the user's ``OMP_WAIT_POLICY``.

    Call right after :func:`limit_threads`, before anything imports meganet.
    PyTorch's own libgomp then reads the environment as the user left it,
    and numba's libgomp, loaded later, reads meganet's default (PASSIVE):
    two OpenMP runtimes, each with its framework's default policy.
    """
    if not have_torch() or "torch" in sys.modules:
        return
    if "meganet" in sys.modules:  # pragma: no cover - order mistake of the caller
        raise RuntimeError("torch_first() must run before meganet is imported")
    _TORCH_POLICY["value"] = os.environ.get("OMP_WAIT_POLICY")
    _TORCH_POLICY["loaded_first"] = True
    _torch_setup(n)


def _openmp_runtimes():
    try:
        with open("/proc/self/maps") as f:
            return len({line.split()[-1] for line in f if "libgomp" in line.rsplit("/", 1)[-1]})
    except OSError:  # pragma: no cover - not Linux
        return None


def openmp_fields():
    """The wait policy each framework's OpenMP runtime runs with, and how many runtimes are loaded."""
    meganet = os.environ.get("OMP_WAIT_POLICY") or "default"
    runtimes = _openmp_runtimes()
    if "torch" not in sys.modules:
        torch = None
    elif _TORCH_POLICY["loaded_first"] and (runtimes or 0) >= 2:
        torch = _TORCH_POLICY["value"] or "default"
    else:  # PyTorch imported after meganet set the variable, or one shared runtime
        torch = meganet
    return {"omp_wait_policy_pytorch": torch, "omp_wait_policy_meganet": meganet, "openmp_runtimes": runtimes}


def have_torch():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _torch_setup(n=THREADS):
    import torch

    torch.set_num_threads(n)
    return torch


def _now():
    return time.perf_counter()


def _sync(device):
    if device == "gpu":
        import cupy

        cupy.cuda.Device().synchronize()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except ImportError:  # pragma: no cover
            pass


def compare(fns, *, reps=5, warmup=2, device="cpu"):
    """Median wall time of each callable, measured interleaved.

    Parameters
    ----------
    fns : dict name -> callable ()
    reps : int, ≥ 5 for reported numbers
    warmup : int

    Returns
    -------
    dict name -> (median_s, list of times)
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
        _sync(device)
    times = {n: [] for n in names}
    for r in range(reps):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            _sync(device)
            # let the previous engine's OpenMP threads go to sleep first: under libgomp's default policy (PyTorch's)
            # idle threads spin for a while after a parallel region and take a core from the next engine's call
            # (at the size sweep's smallest sizes the engine timed right after PyTorch lost ≈ 60 µs per call)
            time.sleep(SETTLE_S)
            t0 = _now()
            fns[name]()
            _sync(device)
            times[name].append(_now() - t0)
    out = {}
    for n in names:
        ts = sorted(times[n])
        m = len(ts)
        med = ts[m // 2] if m % 2 else 0.5 * (ts[m // 2 - 1] + ts[m // 2])
        out[n] = (med, times[n])
    return out


def _status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_rss(fn):
    """Peak resident-set growth (MiB) of one call of ``fn`` (Linux), or None.

    The kernels' buffer pool is emptied first, so reused buffers count.
    """
    if "meganet.kernels._buffers" in sys.modules:
        sys.modules["meganet.kernels._buffers"].clear()
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kib("VmRSS")
    except OSError:  # pragma: no cover - not Linux / not permitted
        return None
    res = fn()
    peak = _status_kib("VmHWM")
    del res
    return max(peak - base, 0) / 1024.0


def peak_rss_isolated(module, engine, op, seed):
    """Peak RSS growth (MiB) of one call of ``op``, measured in a fresh process.

    ``module`` is a benchmark module with ``build(engine, seed) -> {op: callable}``.
    """
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path.insert(0, {root!r}); from benchmarks.common import limit_threads; "
            f"limit_threads(); import benchmarks.{module} as m; from benchmarks.common import peak_rss; "
            f"f = m.build({engine!r}, {seed})[{op!r}]; f(); print('PEAK', peak_rss(f))")
    # every block ≥ 4 KiB is mmapped and returned when freed: nothing of a warm-up call stays in the heap
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="4096")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK "):
            value = line.split()[1]
            return None if value == "None" else float(value)
    return None


def peak_gpu(fn, framework):
    """Peak device memory (MiB) of one call: cupy pool or torch allocator."""
    if framework == "torch":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        res = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del res
        return peak / 2**20
    import cupy

    pool = cupy.get_default_memory_pool()
    cupy.cuda.Device().synchronize()
    pool.free_all_blocks()
    base = pool.used_bytes()
    peak = [base]
    # cupy has no peak counter: sample used_bytes through a malloc hook
    from cupy.cuda import memory_hooks

    class _Peak(memory_hooks.MemoryHook if hasattr(memory_hooks, "MemoryHook") else object):
        name = "PeakHook"

        def malloc_postprocess(self, **kw):
            peak[0] = max(peak[0], pool.used_bytes())

        def alloc_postprocess(self, **kw):
            peak[0] = max(peak[0], pool.used_bytes())

    with _Peak():
        res = fn()
        cupy.cuda.Device().synchronize()
    del res
    return (peak[0] - base) / 2**20


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "cpu"


def cpu_peak_gflops(dtype="float32", threads=THREADS):
    """Machine peak (GFLOP/s) of ``threads`` cores, measured: the best of a few
    large square GEMMs through numpy's BLAS (a practical peak; the
    theoretical one needs the clock and SIMD width, which a VM hides)."""
    import numpy as np

    n = 2048
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    A @ B
    best = 0.0
    for _ in range(3):
        t0 = _now()
        A @ B
        best = max(best, 2 * n**3 / (_now() - t0) / 1e9)
    return best


def emit(rec, stream=None):
    """Print one JSON line (and return it)."""
    line = json.dumps(rec, sort_keys=False)
    print(line, file=stream or sys.stdout, flush=True)
    return rec


def ratio_line(workload, op, dtype, device, t_meganet, t_ref, reps, seed, **extra):
    rec = {"workload": workload, "op": op, "engine": "meganet/pytorch", "device": device, "dtype": dtype,
           "ratio": t_meganet / t_ref, "reps": reps, "seed": seed}
    rec.update(extra)
    return rec


def run_ops(workload, ops, *, dtype, device, seed, reps=5, warmup=2, memory=True, flops=None, peak=None,
            reference="pytorch", extra=None, out=None, module=None):
    """Time every op of a workload for several engines, interleaved.

    Parameters
    ----------
    ops : dict op -> {engine name: callable or None}
        Engine names are e.g. ``"meganet[numba]"``, ``"meganet[numpy]"``,
        ``"pytorch"``; ``None`` entries are left out.
    flops : dict op -> flop count (for achieved GFLOP/s), optional
    peak : float, machine peak GFLOP/s, optional
    reference : name of the engine the ratios are taken against
    extra : dict (op, engine) -> dict of fields added to that record
    module : benchmark module name with ``build(engine, seed)`` (CPU memory is
        then measured in isolated processes; engine names ``meganet[e]`` map to ``e``)

    Returns
    -------
    list of records (also printed as JSON lines).
    """
    recs = []
    omp = openmp_fields() if device == "cpu" else {}
    for op, fns in ops.items():
        fns = {k: v for k, v in fns.items() if v is not None}
        timing = compare(fns, reps=reps, warmup=warmup, device=device)
        per = {}
        for name, (med, _) in timing.items():
            rec = {"workload": workload, "op": op, "engine": name, "device": device, "dtype": dtype,
                   "median_s": med, "reps": reps, "seed": seed, **omp}
            if memory:
                if device == "gpu":
                    rec["peak_mib"] = peak_gpu(fns[name], "torch" if name == "pytorch" else "cupy")
                elif module is not None:
                    engine = name[len("meganet["):-1] if name.startswith("meganet[") else name
                    rec["peak_mib"] = peak_rss_isolated(module, engine, op, seed)
                else:
                    rec["peak_mib"] = peak_rss(fns[name])
            if flops and op in flops:
                rec["gflops"] = flops[op] / 1e9
                rec["gflops_per_s"] = flops[op] / med / 1e9
                if peak:
                    rec["fraction_of_peak"] = flops[op] / med / 1e9 / peak
            if extra and (op, name) in extra:
                rec.update(extra[op, name])
            per[name] = rec
            recs.append(emit(rec, out))
        if reference in per:
            ref = per[reference]
            for name, rec in per.items():
                if name == reference:
                    continue
                more = {}
                if memory and rec.get("peak_mib") is not None and ref.get("peak_mib"):
                    more["memory_ratio"] = rec["peak_mib"] / ref["peak_mib"]
                r = ratio_line(workload, op, dtype, device, rec["median_s"], ref["median_s"], reps, seed, **more, **omp)
                r["engine"] = f"{name}/{reference}"
                recs.append(emit(r, out))
    return recs


def first_call(fn):
    """Wall time of the first call (JIT compile or cache load included)."""
    t0 = _now()
    fn()
    return _now() - t0


def rel_diff(a, b):
    """``‖a − b‖ / ‖b‖`` of host arrays (for the agreement checks)."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-300))


def side_by_side(workload, module, meganet_sides, torch_side, *, dtype, device, seed, reps, out=None, flops=None,
                 peak=None, first=first_call):
    """Check agreement with PyTorch, then time every op of every engine interleaved.

    Parameters
    ----------
    meganet_sides : dict engine name (``'meganet[numba]'``, …) -> ``(ops, results)``
        ``ops``: op -> callable; ``results()``: op -> list of arrays/floats
        (compared, in order, with PyTorch's).
    torch_side : ``(ops, results)`` of PyTorch, or None when it is not installed
    first : how to time a first call (the GPU benchmark synchronizes)

    The shared body of the workloads' ``main``: first-call (JIT) times,
    ``max_rel_diff_vs_pytorch`` and the machine peak go into the records.
    """
    ops, extra = {}, {}
    reference = torch_side[1]() if torch_side is not None else None
    base = {} if peak is None else {"machine_peak_gflops_per_s": peak}
    for name, (fns, results) in meganet_sides.items():
        first_s = {op: first(fn) for op, fn in fns.items()}
        mine = results()
        for op, fn in fns.items():
            extra[op, name] = dict(base, first_call_s=first_s[op])
            if reference is not None:
                extra[op, name]["max_rel_diff_vs_pytorch"] = max(
                    rel_diff(a, b) for a, b in zip(mine[op], reference[op]))
            ops.setdefault(op, {})[name] = fn
    if torch_side is not None:
        for op, fn in torch_side[0].items():
            ops[op]["pytorch"] = fn
            extra[op, "pytorch"] = dict(base)
    return run_ops(workload, ops, dtype=dtype, device=device, seed=seed, reps=reps, extra=extra, flops=flops,
                   peak=peak, out=out, module=module)


def torch_pair(d, torch_ops):
    """PyTorch's ``(ops, results)`` on the workload data ``d`` (threads set up), or None without PyTorch."""
    if not have_torch():
        return None
    _torch_setup()
    return torch_ops(d)


def ops_of(engine, d, meganet_ops, torch_ops):
    """``{op: callable}`` of one engine (``'pytorch'`` or a meganet engine) on ``d``; the ``build``
    of the workload modules (isolated memory measurements)."""
    if engine == "pytorch":
        _torch_setup()
        return torch_ops(d)[0]
    return meganet_ops(d, engine)[0]
