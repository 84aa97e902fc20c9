"""Shared fixtures: backends (numpy always, cupy when a GPU is present) and dtypes."""

from __future__ import annotations

import os

# meganet.kernels sets this itself (unless the user chose a policy) before numba starts its OpenMP pool;
# it is set here too so that it also holds for the warm-up subprocesses started below.  With libgomp's
# default (active) the pool threads of one xdist worker busy-wait after every parallel region and take
# the core from the other worker (the suite took 172 s instead of 31 s on 2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from meganet.backend import cupy_available  # noqa: E402
from meganet.kernels import numba_available  # noqa: E402

HAVE_GPU = cupy_available()

#: Backends as pytest params; the cupy ones skip cleanly without a GPU.
XP_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu,
                                            pytest.mark.skipif(not HAVE_GPU, reason="cupy with a CUDA device not available")]),
]
DTYPE_PARAMS = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]


def get_xp(name):
    if name == "numpy":
        return np
    import cupy

    return cupy


@pytest.fixture(params=XP_PARAMS)
def xp(request):
    return get_xp(request.param)


@pytest.fixture(params=DTYPE_PARAMS)
def dtype(request):
    return request.param


_WARMUP = {}


def pytest_configure(config):
    """Compile the numba kernels once, in the controller, before the xdist workers start.

    The kernels are cached on disk (``cache=True``), so the workers load them
    instead of each compiling every kernel again (a cold compile of all kernels
    takes minutes).  Only for distributed runs (``-n``); a plain run compiles
    what it uses on first use.
    """
    if hasattr(config, "workerinput") or not numba_available():
        return
    if not getattr(config.option, "numprocesses", None):
        return
    import subprocess
    import sys
    import time

    # one process per dtype, concurrently (numba merges the cache index of each kernel on save)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", f"from meganet.kernels import warmup; warmup(dtypes=('{dt}',))"])
             for dt in ("float64", "float32")]
    if any(p.wait() != 0 for p in procs):
        raise pytest.UsageError("meganet.kernels.warmup() failed (see the traceback above)")
    _WARMUP["seconds"] = time.perf_counter() - t0


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line for all skipped tests, grouped by reason (instead of ``-rs``' line per test location)."""
    import collections

    reasons = collections.Counter()
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = rep.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.write_line("skipped: " + "; ".join(f"{n} ({r})" for r, n in reasons.most_common()))


def pytest_report_header(config):
    if "seconds" in _WARMUP:
        return f"numba kernels compiled or loaded from cache in {_WARMUP['seconds']:.1f} s (meganet.kernels.warmup)"
    return None
