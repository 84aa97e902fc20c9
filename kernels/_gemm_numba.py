r"""BLAS ``sgemm`` / ``dgemm`` callable from numba kernels, with leading dimensions.

numba's ``np.dot`` calls BLAS too, but only on contiguous arrays and without
``beta`` (no accumulation) or leading dimensions.  The implicit-GEMM
convolution (:mod:`._conv2d_numba`) needs both: its operands are shifted
windows of one padded channels-last image buffer (a ``pixels × C`` matrix with
leading dimension ``C`` that starts at the tap's offset), and it accumulates the
``kh·kw`` taps into one result.  So this module takes the Fortran ``?gemm`` of scipy's BLAS
(``scipy.linalg.cython_blas``, the same library numba's ``np.dot`` uses) as a
ctypes function pointer and calls it from nopython code with raw addresses
(every argument is pointer-sized, so it is declared as a 64-bit int).

BLAS threads: the kernels call ``gemm`` from every numba thread (one example per
call), so the BLAS must run single-threaded inside them, or its own thread pool
oversubscribes the cores (measured: 30× slower).  :func:`blas_single_thread`
sets scipy's OpenBLAS to one thread for the duration of a kernel and restores
the previous count; :func:`available` is false when that control (or the
function pointers) cannot be found, and the callers then keep the direct
stencil kernels.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import sys

import numpy as np
from numba import njit

from ._numba_math import JIT

_PTR = ctypes.c_int64 if ctypes.sizeof(ctypes.c_void_p) == 8 else ctypes.c_int32
_GEMM_T = ctypes.CFUNCTYPE(None, *([_PTR] * 13))


def _capi_pointer(name):
    import scipy.linalg.cython_blas as cb

    cap = cb.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype, get_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_ptr(cap, get_name(cap))


def _thread_control():
    """``(get, set)`` of scipy's OpenBLAS thread count, or ``None``."""
    try:
        import scipy

        libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs", "*openblas*"))
        for path in libs:
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                get = getattr(lib, prefix + "_get_num_threads", None)
                put = getattr(lib, prefix + "_set_num_threads", None)
                if get is not None and put is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    put.restype, put.argtypes = None, [ctypes.c_int]
                    return get, put
    except Exception:  # pragma: no cover - unusual scipy builds
        return None
    return None


try:
    _sgemm = _GEMM_T(_capi_pointer("sgemm"))
    _dgemm = _GEMM_T(_capi_pointer("dgemm"))
    _CONTROL = _thread_control()
except Exception:  # pragma: no cover - scipy without cython_blas
    _sgemm = _dgemm = None
    _CONTROL = None


def available():
    """True if the BLAS pointers and scipy's OpenBLAS thread control were found
    (or numba runs one thread, so that no control is needed)."""
    if _sgemm is None or sys.byteorder != "little":
        return False
    if _CONTROL is not None:
        return True
    import numba

    return numba.config.NUMBA_NUM_THREADS == 1


@contextlib.contextmanager
def blas_single_thread():
    """scipy's OpenBLAS on one thread inside the block (restored afterwards)."""
    if _CONTROL is None:
        yield
        return
    get, put = _CONTROL
    old = get()
    if old == 1:
        yield
        return
    put(1)
    try:
        yield
    finally:
        put(old)


def scratch(n_threads):
    """Per-thread scratch of :func:`gemm_rm`: ``(ints (t, 8) int32, (t, 2) float32, (t, 2) float64)``.

    Allocated by the driver and passed to the kernel as arguments: an array
    whose address goes to BLAS must stay referenced until the call returns, and
    numba frees a local array after its last *visible* use (the ``.ctypes.data``
    read), so every buffer handed to BLAS is a slice of a kernel argument."""
    return (np.empty((n_threads, 8), dtype=np.int32), np.empty((n_threads, 2), dtype=np.float32),
            np.empty((n_threads, 2), dtype=np.float64))


if _sgemm is not None:

    @njit(inline="always", **JIT)
    def gemm_rm(ints, fs, ds, M, N, K, a, lda, b, ldb, c, ldc, beta, trans_a, trans_b, itemsize):
        """Row-major ``C = op(A)·op(B) + beta·C`` (``M × N``, inner dimension ``K``)
        on raw addresses ``a, b, c`` (bytes), leading dimensions in elements;
        computed as the column-major ``Cᵀ = op(B)ᵀ·op(A)ᵀ``.

        ``ints`` (8 int32), ``fs`` (2 float32), ``ds`` (2 float64): this thread's
        row of :func:`scratch` (the scalars are passed by address).
        """
        ints[0] = N
        ints[1] = M
        ints[2] = K
        ints[3] = ldb
        ints[4] = lda
        ints[5] = ldc
        ints[6] = 84 if trans_b else 78  # 'T' / 'N' (little endian: first byte)
        ints[7] = 84 if trans_a else 78
        ip = ints.ctypes.data
        if itemsize == 4:
            fs[0] = 1.0
            fs[1] = beta
            fp = fs.ctypes.data
            _sgemm(ip + 24, ip + 28, ip, ip + 4, ip + 8, fp, b, ip + 12, a, ip + 16, fp + 4, c, ip + 20)
        else:
            ds[0] = 1.0
            ds[1] = beta
            dp = ds.ctypes.data
            _dgemm(ip + 24, ip + 28, ip, ip + 4, ip + 8, dp, b, ip + 12, a, ip + 16, dp + 8, c, ip + 20)
