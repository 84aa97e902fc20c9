r"""Average pooling over non-overlapping ``f × f`` blocks and its adjoint.

.. math:: Z[s, c, i, j] = \frac{1}{f^2} \sum_{a,b=0}^{f-1} Y[s, c, f i + a, f j + b],
          \qquad (P^\top W)[s, c, x, y] = \frac{1}{f^2}\, W[s, c, ⌊x/f⌋, ⌊y/f⌋].

The reference reshapes to ``(n, C, H/f, f, W/f, f)`` and takes a mean (what
``skimage.measure.block_reduce`` does; scipy has no block mean); the adjoint
broadcasts.  On cupy arrays the reference already runs as device kernels, so
there is no separate cupy engine (``'auto'`` uses it).  The numba engine does
each in one parallel pass without temporaries.
"""

from __future__ import annotations

from meganet.backend import get_array_module

from . import dispatch

__all__ = ["avg_pool2d", "avg_pool2d_adjoint"]


def _check(A, name, factor, out, out_shape, xp):
    if A.ndim != 4:
        raise ValueError(f"{name} must have shape (n_examples, channels, height, width), got {tuple(A.shape)}")
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive int, got {factor!r}")
    if out is not None:
        if get_array_module(out) is not xp:
            raise TypeError("out must live on the same backend as the input")
        if tuple(out.shape) != tuple(out_shape) or out.dtype != A.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous with shape {tuple(out_shape)} and dtype {A.dtype}, "
                             f"got {tuple(out.shape)} ({out.dtype})")
        if not getattr(out.flags, "writeable", True):  # cupy arrays have no such flag
            raise ValueError("out must be writable (got a read-only array)")


def _pool_ref(Y, f, out):
    n, C, H, W = Y.shape
    Z = Y.reshape(n, C, H // f, f, W // f, f).mean(axis=(3, 5))
    if out is None:
        return Z
    out[...] = Z
    return out


def _spread_ref(Z, f, out):
    xp = get_array_module(Z)
    n, C, h, w = Z.shape
    B = xp.broadcast_to(Z[:, :, :, None, :, None], (n, C, h, f, w, f))
    Y = (B * (1.0 / f ** 2)).reshape(n, C, h * f, w * f)
    if out is None:
        return Y
    out[...] = Y
    return out


def avg_pool2d(Y, factor, *, out=None, engine="auto"):
    """Block means of ``Y``.

    Parameters
    ----------
    Y : array, shape (n_examples, C, H, W), H and W divisible by ``factor``
    factor : int
    out : array, shape (n_examples, C, H/f, W/f), optional
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    Z : array, shape (n_examples, C, H/f, W/f)
    """
    xp = get_array_module(Y, names=["Y"])
    n, C, H, W = Y.shape if Y.ndim == 4 else (0, 0, 0, 0)
    _check(Y, "Y", factor, out, (n, C, H // max(factor, 1), W // max(factor, 1)), xp)
    if H % factor or W % factor:
        raise ValueError(f"image size ({H}, {W}) must be divisible by factor = {factor}")
    return dispatch(_IMPLEMENTATIONS, "avg_pool2d", engine, xp, _LOADERS)(Y, factor, out)


def avg_pool2d_adjoint(Z, factor, *, out=None, engine="auto"):
    """Adjoint of :func:`avg_pool2d`: every value ``/f²`` on its block.

    Parameters
    ----------
    Z : array, shape (n_examples, C, h, w)
    factor : int
    out : array, shape (n_examples, C, h·f, w·f), optional
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    array, shape (n_examples, C, h·f, w·f)
    """
    xp = get_array_module(Z, names=["Z"])
    n, C, h, w = Z.shape if Z.ndim == 4 else (0, 0, 0, 0)
    _check(Z, "Z", factor, out, (n, C, h * factor, w * factor), xp)
    return dispatch(_IMPLEMENTATIONS, "avg_pool2d_adjoint", engine, xp, _LOADERS)(Z, factor, out)


#: op -> {engine: implementation}; compiled engines add their entries.
_IMPLEMENTATIONS = {"avg_pool2d": {"numpy": _pool_ref}, "avg_pool2d_adjoint": {"numpy": _spread_ref}}
_LOADERS = {"numba": "._pooling_numba"}
