"""Compute kernels of meganet (shipped as ``meganet.kernels``).

Hot loops live here as pure functions of arrays and ints.  Each operation has
a numpy reference written with the array module of its inputs (so it runs on
cupy arrays too); compiled variants (Numba on the CPU, CuPy raw/elementwise
kernels on the GPU) are optional and always tested against the reference.

Engines
-------
``"numpy"``
    The array-module reference (numpy or cupy, from the inputs).
``"numba"``
    CPU kernels compiled with numba (extra ``numba``).
``"cupy"``
    GPU kernels (extra ``gpu``).
``"auto"``
    cupy for cupy arrays, numba when installed, numpy otherwise.
"""

from __future__ import annotations

import importlib.util

__all__ = ["ENGINES", "available_engines", "resolve_engine"]

ENGINES = ("auto", "numpy", "numba", "cupy")

_INSTALL_HINT = {
    "numba": "pip install 'meganet[numba]'",
    "cupy": "pip install 'meganet[gpu]' (needs a CUDA device)",
}


def _have(module):
    return importlib.util.find_spec(module) is not None


def available_engines():
    """Engines usable on this machine (``'numpy'`` always)."""
    out = ["numpy"]
    if _have("numba"):
        out.append("numba")
    if _have("cupy"):
        from meganet.backend import cupy_available

        if cupy_available():
            out.append("cupy")
    return tuple(out)


def resolve_engine(engine, xp=None):
    """Resolve ``engine`` for arrays of module ``xp``.

    Parameters
    ----------
    engine : {'auto', 'numpy', 'numba', 'cupy'}
    xp : array module of the inputs (numpy or cupy), optional

    Returns
    -------
    str
        The concrete engine.  ``'numba'`` is only returned for numpy arrays and
        ``'cupy'`` only for cupy arrays; asking for an engine that does not match
        the arrays, or that is not installed, raises.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    on_gpu = xp is not None and getattr(xp, "__name__", "") == "cupy"
    if engine == "auto":
        if on_gpu:
            return "cupy"
        return "numba" if _have("numba") else "numpy"
    if engine == "numba":
        if on_gpu:
            raise ValueError("engine='numba' runs on the CPU but the arrays are cupy arrays; use 'cupy' or 'auto'")
        if not _have("numba"):
            raise ImportError(f"engine='numba' requested but numba is not installed: {_INSTALL_HINT['numba']}")
    if engine == "cupy":
        if not on_gpu and xp is not None:
            raise ValueError("engine='cupy' needs cupy arrays but the arrays are numpy arrays; move them with element.to('cupy')")
        if not _have("cupy"):
            raise ImportError(f"engine='cupy' requested but cupy is not installed: {_INSTALL_HINT['cupy']}")
    return engine
