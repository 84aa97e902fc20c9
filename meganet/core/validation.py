"""Input validation shared by all elements, raising early with clear messages.

Every message names the parameter, the value received and what was expected.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..backend import SUPPORTED_DTYPES, get_array_module

__all__ = [
    "check_option",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_bool",
    "check_shape_tuple",
    "check_array",
    "check_finite",
    "options",
]


class _Options:
    """Global switches.  ``check_finite`` scans data and parameters for NaN/Inf
    at the top-level call of every element (one reduction per array)."""

    check_finite: bool = True


options = _Options()


def check_option(name, value, allowed):
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        allowed_s = "{" + ", ".join(repr(a) for a in allowed) + "}"
        raise ValueError(f"{name} must be one of {allowed_s}, got {value!r}")
    return value


def check_positive(name, value, *, allow_zero=False):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        what = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_nonnegative(name, value):
    return check_positive(name, value, allow_zero=True)


def check_bool(name, value):
    """Raise ``TypeError`` unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_int(name, value, *, minimum=None, odd=False):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if odd and value % 2 != 1:
        raise ValueError(f"{name} must be odd, got {value}")
    return value


def check_shape_tuple(name, shape):
    """Normalize a feature shape (int or tuple of positive ints) to a tuple."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as err:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {shape!r}") from err
    if len(shape) == 0 or any(s < 1 for s in shape):
        raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {shape!r}")
    return shape


def check_finite(name, a):
    """Raise ``ValueError`` if ``a`` holds NaN or Inf."""
    xp = get_array_module(a)
    if a.size and not bool(xp.isfinite(a).all()):
        n_bad = int((~xp.isfinite(a)).sum())
        raise ValueError(f"{name} contains {n_bad} non-finite value(s) (NaN or Inf)")


def check_array(name, a, *, shape=None, dtype=None, xp=None, finite=None):
    """Validate an array argument.

    Parameters
    ----------
    name : str
        Parameter name used in messages.
    a : array
    shape : tuple, optional
        Expected shape; ``None`` entries match any size.
    dtype : numpy.dtype, optional
        Required dtype (float32/float64 only are accepted in any case).
    xp : module, optional
        Required array module.
    finite : bool, optional
        Check for NaN/Inf (default: ``options.check_finite``).
    """
    mod = get_array_module(a, names=[name])
    if xp is not None and mod is not xp:
        raise TypeError(
            f"{name} is a {mod.__name__} array but the other arguments are {xp.__name__} arrays; "
            "use one backend per call"
        )
    if a.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must have dtype float64 or float32, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {a.dtype} but the other arguments are {np.dtype(dtype)}; "
            "cast explicitly (meganet never up- or down-casts silently)"
        )
    if shape is not None:
        ok = len(shape) == a.ndim and all(s is None or s == t for s, t in zip(shape, a.shape))
        if not ok:
            exp = "(" + ", ".join("n" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
            raise ValueError(f"{name} must have shape {exp}, got {tuple(a.shape)}")
    if finite is None:
        finite = options.check_finite
    if finite:
        check_finite(name, a)
    return a
