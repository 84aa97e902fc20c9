"""Array-backend helpers: numpy on the CPU, cupy on the GPU.

Every compute path in meganet takes its array module from its inputs
(``xp = get_array_module(theta, Y)``), in the spirit of PyLops'
``get_array_module``.  Mixing numpy and cupy arrays, or float32 and float64
arrays, in one call raises a clear error instead of silently copying or
up-casting.

cupy is an optional dependency (extra ``gpu``); nothing here imports it unless
a cupy array is actually passed in.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "get_array_module",
    "is_cupy_array",
    "cupy_available",
    "to_numpy",
    "to_backend",
    "resolve_xp",
    "check_dtype",
    "SUPPORTED_DTYPES",
]

#: Floating point types meganet computes in (float64 is the default).
SUPPORTED_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def is_cupy_array(a) -> bool:
    """True if ``a`` is a ``cupy.ndarray`` (checked without importing cupy)."""
    return type(a).__module__.split(".")[0] == "cupy" and hasattr(a, "__cuda_array_interface__")


def cupy_available() -> bool:
    """True if cupy imports *and* a CUDA device is usable."""
    try:
        import cupy  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, ...
        return False


def _module_of(a):
    if isinstance(a, np.ndarray):
        return np
    if is_cupy_array(a):
        import cupy

        return cupy
    return None


def get_array_module(*arrays, names=None):
    """Return the array module (numpy or cupy) shared by ``arrays``.

    ``None`` entries are ignored.  If no array is given, numpy is returned.

    Parameters
    ----------
    *arrays : numpy.ndarray or cupy.ndarray or None
    names : sequence of str, optional
        Parameter names used in the error message.

    Raises
    ------
    TypeError
        If an argument is not an array, or numpy and cupy arrays are mixed.
    """
    for a in arrays:  # fast path (called ~20 times per product): numpy arrays and None only
        if a is not None and type(a) is not np.ndarray and not isinstance(a, np.ndarray):
            break
    else:
        return np
    names = list(names) if names is not None else [f"argument {i}" for i in range(len(arrays))]
    found = {}
    for name, a in zip(names, arrays):
        if a is None:
            continue
        mod = _module_of(a)
        if mod is None:
            raise TypeError(
                f"{name} must be a numpy.ndarray or cupy.ndarray, got {type(a).__name__}"
            )
        found.setdefault(mod.__name__, (mod, name))
    if not found:
        return np
    if len(found) > 1:
        desc = ", ".join(f"{n} is {m}" for m, (_, n) in found.items())
        raise TypeError(
            f"all arrays of one call must live on the same backend (numpy or cupy); got {desc}. "
            "Move them with meganet.backend.to_backend(array, xp) or element.to(xp)."
        )
    return next(iter(found.values()))[0]


def resolve_xp(xp):
    """Turn ``None``/``"numpy"``/``"cupy"``/module into an array module."""
    if xp is None or xp is np or xp == "numpy":
        return np
    if xp == "cupy" or getattr(xp, "__name__", None) == "cupy":
        try:
            import cupy
        except ImportError as err:  # pragma: no cover - depends on machine
            raise ImportError(
                "xp='cupy' requested but cupy is not installed; install the GPU extra: "
                "pip install 'meganet[gpu]'"
            ) from err
        return cupy
    raise ValueError(f"xp must be numpy, cupy, 'numpy' or 'cupy', got {xp!r}")


def to_numpy(a):
    """Copy ``a`` to the host as a numpy array (no-op for numpy arrays)."""
    if a is None or isinstance(a, np.ndarray):
        return a
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def to_backend(a, xp):
    """Move array ``a`` to the backend ``xp`` (explicit, never implicit)."""
    xp = resolve_xp(xp)
    if a is None:
        return None
    if xp is np:
        return to_numpy(a)
    return xp.asarray(a)


def check_dtype(dtype, name="dtype"):
    """Validate a floating point dtype and return it as ``numpy.dtype``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name} must be float64 or float32, got {dtype!r}") from err
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be float64 or float32, got {dt}")
    return dt
