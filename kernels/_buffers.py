"""A small pool of large host buffers for the compiled kernels.

The fused time-step sweeps write their whole trajectory (tens of MiB) into
new arrays at every call; the first touch of freshly mapped memory costs
about as much as the sweep's arithmetic (page faults and zeroing by the
kernel, ~6 ms of a 15 ms B1 forward), because glibc returns blocks this
large to the system when they are freed.  :func:`empty` hands out a
previously allocated array of the same shape and dtype **only when nothing
but the pool refers to it any more** (its reference count; every view of an
array holds a reference to it, so an array still used through a cache view is
never reused).  Small arrays (< 1 MiB) are not pooled; at most
:data:`MAX_PER_KEY` arrays per (shape, dtype) and :data:`MAX_BYTES` in all
are kept.  :func:`clear` drops the pool (memory measurements call it, so
that reused buffers are not hidden from the peak).
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["empty", "clear", "pooled_bytes"]

MIN_BYTES = 1 << 20
MAX_PER_KEY = 4
MAX_BYTES = 1 << 30

_POOL: dict = {}


def pooled_bytes():
    """Bytes held by the pool."""
    return sum(a.nbytes for lst in _POOL.values() for a in lst)


def empty(shape, dtype):
    """``numpy.empty(shape, dtype)``, reusing a pooled array no one else refers to."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    nbytes = dtype.itemsize * int(np.prod(shape))
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    key = (shape, dtype.str)
    lst = _POOL.setdefault(key, [])
    for a in lst:
        # references: the list, the loop variable, getrefcount's argument
        if sys.getrefcount(a) <= 3:
            return a
    a = np.empty(shape, dtype=dtype)
    if len(lst) < MAX_PER_KEY and pooled_bytes() + nbytes <= MAX_BYTES:
        lst.append(a)
    return a


def clear():
    """Forget every pooled array (memory returns to the system once unused)."""
    _POOL.clear()
