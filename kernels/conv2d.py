r"""2-D multi-channel convolution kernels (array-module references).

All functions are pure functions of arrays and ints, written with the array
module of their inputs (numpy or cupy), examples first:

``Y : (n, C_in, H, W)``, ``K : (C_out, C_in, kh, kw)``, ``Z : (n, C_out, H, W)``.

The map is a stride-1, "same"-size **cross-correlation** (the PyTorch / cuDNN
convention), with odd ``kh = 2p + 1``, ``kw = 2q + 1``:

.. math::

    Z[s, o, x, y] = \sum_{i, a, b} K[o, i, a, b]\, Y[s, i, x + a - p, y + b - q],

where ``Y`` outside the image is zero (``boundary='zero'``) or continued
periodically (``boundary='periodic'``).

Direct kernels (any boundary)
    :func:`conv2d_forward` ``Z = K Y``, :func:`conv2d_adjoint_input` ``Kᵀ Z``,
    :func:`conv2d_adjoint_weight` (the θ-adjoint
    ``dK[o, i, a, b] = Σ_{s,x,y} W[s, o, x, y] Ypad[s, i, x + a, y + b]``).
    They build the im2col matrix from a padded copy of ``Y`` through a
    sliding-window view and do one (batched) GEMM; a 1×1 stencil is a plain
    GEMM over channels without padding.
FFT kernels (periodic boundary only)
    :func:`conv2d_fft_forward`, :func:`conv2d_fft_adjoint_input`,
    :func:`conv2d_fft_adjoint_weight` compute the same maps by diagonalizing
    the periodic convolution with ``rfft2``: the stencil is embedded in an
    ``H × W`` array ``k̃[(p − a) mod H, (q − b) mod W] = K[a, b]`` so that
    ``Z = irfft2(k̂ · Ŷ)`` (summed over input channels).

scipy offers single-channel 2-D correlation (``scipy.signal.correlate2d``,
``scipy.signal.fftconvolve``); these kernels hand-write the batched,
multi-channel version as one GEMM (or one spectral product) so that they run on
cupy arrays too and have an ``out=`` buffer.  The tests compare them with scipy.

Engines
-------
Every public function takes ``engine=`` (see :mod:`meganet.kernels`).  The
array-module reference (``'numpy'``, which also runs on cupy arrays) is defined
here; the compiled variants live in :mod:`._conv2d_numba` (direct kernels,
CPU) and :mod:`._conv2d_cupy` (im2col + cuBLAS GEMM and ``cupy.fft``, GPU) and
register themselves in ``_IMPLEMENTATIONS`` under their engine name when the
engine is first resolved.  ``engine='auto'`` falls back to the reference when
the resolved engine has no implementation of an operation (the numba engine
has no FFT kernels: ``scipy.fft`` is already compiled); asking explicitly for
such an engine raises ``NotImplementedError``.
"""

from __future__ import annotations

import math
import numbers

from meganet.backend import get_array_module
from meganet.core.validation import check_bool

from . import dispatch, resolve_engine
from .epilogue import Epilogue, apply_epilogue, check_epilogue

__all__ = [
    "BOUNDARIES",
    "Epilogue",
    "conv2d_forward",
    "conv2d_symmetric_step",
    "conv2d_adjoint_input",
    "conv2d_adjoint_weight",
    "conv2d_fft_forward",
    "conv2d_fft_adjoint_input",
    "conv2d_fft_adjoint_weight",
]

#: Boundary conditions of the direct kernels.
BOUNDARIES = ("zero", "periodic")


# ============================================================== helpers
def _check_boundary(boundary):
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {{'zero', 'periodic'}}, got {boundary!r}")


def _check_images(name, A, channels=None, channel_name="channels"):
    if A.ndim != 4:
        raise ValueError(f"{name} must have shape (n_examples, {channel_name}, height, width), got {tuple(A.shape)}")
    if channels is not None and A.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} {channel_name} (axis 1), got shape {tuple(A.shape)}")


def _check_stencil(kernel_shape):
    kh, kw = (int(k) for k in kernel_shape)
    if kh < 1 or kw < 1 or kh % 2 != 1 or kw % 2 != 1:
        raise ValueError(f"kernel_shape must be two odd positive ints, got {tuple(kernel_shape)}")
    return kh, kw


def _check_kernel(K, Y):
    if K.ndim != 4:
        raise ValueError(f"K must have shape (C_out, C_in, kh, kw), got {tuple(K.shape)}")
    _check_stencil(K.shape[2:])
    _check_images("Y", Y, K.shape[1], "input channels")
    if K.dtype != Y.dtype:
        raise TypeError(f"K has dtype {K.dtype} but Y has dtype {Y.dtype}; cast explicitly")


def _check_periodic_size(kernel_shape, image_shape):
    if kernel_shape[0] > image_shape[0] or kernel_shape[1] > image_shape[1]:
        raise ValueError(
            f"the stencil {tuple(kernel_shape)} must not exceed the image {tuple(image_shape)} "
            "for a periodic boundary"
        )


def _check_out(out, shape, dtype, xp):
    """Validate an ``out=`` buffer: right shape and dtype, C-contiguous (so reshapes are views)."""
    if out is None:
        return None
    if get_array_module(out, names=["out"]) is not xp:
        raise TypeError("out must live on the same backend as the inputs")
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"out must have shape {tuple(shape)} and dtype {dtype}, got {tuple(out.shape)} and {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not getattr(out.flags, "writeable", True):  # cupy arrays have no such flag
        raise ValueError("out must be writable (got a read-only array)")
    return out


def _windows(A, kh, kw):
    """View ``V[s, c, x, y, a, b] = A[s, c, x + a, y + b]`` (no copy)."""
    xp = get_array_module(A)
    swv = getattr(xp.lib.stride_tricks, "sliding_window_view", None)
    if swv is not None:
        return swv(A, (kh, kw), axis=(2, 3))
    n, c, Hp, Wp = A.shape
    s = A.strides
    return xp.lib.stride_tricks.as_strided(
        A, shape=(n, c, Hp - kh + 1, Wp - kw + 1, kh, kw), strides=(s[0], s[1], s[2], s[3], s[2], s[3])
    )


def _pad(Y, p, q, boundary):
    xp = get_array_module(Y)
    width = ((0, 0), (0, 0), (p, p), (q, q))
    if boundary == "periodic":
        return xp.pad(Y, width, mode="wrap")
    return xp.pad(Y, width, mode="constant")


def _im2col(Y, kh, kw, boundary):
    """Columns ``cols[s, (i, a, b), (x, y)] = Ypad[s, i, x + a, y + b]``,
    shape ``(n, C·kh·kw, H·W)``.  For a 1×1 stencil this is a view of ``Y``."""
    n, c, H, W = Y.shape
    if kh == 1 and kw == 1:
        return Y.reshape(n, c, H * W)
    xp = get_array_module(Y)
    V = _windows(_pad(Y, (kh - 1) // 2, (kw - 1) // 2, boundary), kh, kw)  # (n, c, H, W, kh, kw)
    cols = xp.ascontiguousarray(V.transpose(0, 1, 4, 5, 2, 3))  # the im2col copy
    return cols.reshape(n, c * kh * kw, H * W)


def _stencil_indices(xp, kernel_shape, image_shape, sign=1):
    """Where the stencil entries ``(a, b)`` sit in the periodic ``H × W`` image:
    rows ``sign·(p − a) mod H`` and columns ``sign·(q − b) mod W`` (as broadcastable
    index arrays).  ``sign=1`` embeds the stencil for the convolution, ``sign=-1``
    gives the lags ``(a − p, b − q)`` of the weight adjoint's correlation."""
    (kh, kw), (H, W) = kernel_shape, image_shape
    rows = ((sign * ((kh - 1) // 2 - xp.arange(kh))) % H)[:, None]
    cols = ((sign * ((kw - 1) // 2 - xp.arange(kw))) % W)[None, :]
    return rows, cols


def _fft(xp):
    """FFT module: ``scipy.fft`` for numpy arrays (it keeps float32 in single
    precision on every numpy version), ``cupy.fft`` for cupy arrays."""
    if xp.__name__ == "numpy":
        import scipy.fft

        return scipy.fft
    return xp.fft


def _kernel_spectrum(K, image_shape):
    """``k̂ = rfft2(k̃)`` with ``k̃[o, i, (p − a) mod H, (q − b) mod W] = K[o, i, a, b]``,
    shape ``(C_out, C_in, H, W//2 + 1)``."""
    xp = get_array_module(K)
    c_out, c_in, kh, kw = K.shape
    ktil = xp.zeros((c_out, c_in, *image_shape), dtype=K.dtype)
    rows, cols = _stencil_indices(xp, (kh, kw), image_shape)
    ktil[:, :, rows, cols] = K
    return _fft(xp).rfft2(ktil)


def _channel_matmul(M, A):
    """Per-frequency channel mixing ``B[s, o, f] = Σ_i M[o, i, f] A[s, i, f]``
    (complex), as one batched matmul over the frequencies ``f``."""
    xp = get_array_module(M, A)
    n, c_in = A.shape[:2]
    c_out = M.shape[0]
    Mf = M.reshape(c_out, c_in, -1).transpose(2, 0, 1)  # (f, o, i)
    Af = A.reshape(n, c_in, -1).transpose(2, 1, 0)  # (f, i, s)
    Bf = xp.matmul(Mf, Af)  # (f, o, s)
    return Bf.transpose(2, 1, 0).reshape(n, c_out, *A.shape[2:])


def _real(a, dtype, out):
    """Store the real result ``a`` as ``dtype`` (in ``out`` when given)."""
    if out is None:
        return a.astype(dtype, copy=False)
    out[...] = a
    return out


# ===================================================== engine dispatch
def _reference(op):
    return _IMPLEMENTATIONS[op]["numpy"]


#: Private modules that register the compiled engines in ``_IMPLEMENTATIONS``.
_LOADERS = {"numba": "._conv2d_numba", "cupy": "._conv2d_cupy"}


def _dispatch(op, engine, xp):
    """The implementation of ``op`` for ``engine`` on arrays of module ``xp``
    (see :func:`meganet.kernels.dispatch`)."""
    return dispatch(_IMPLEMENTATIONS, op, engine, xp, _LOADERS, resolve=resolve_engine)


def _with_epilogue(op, engine, xp, args, out, ep, input_name, inp):
    """Run ``op`` with the epilogue ``ep``: the engine's fused kernel (``op + '_ep'``) where it has one,
    else its plain kernel followed by :func:`~meganet.kernels.epilogue.apply_epilogue`."""
    if out is not None and xp.may_share_memory(out, inp):
        raise ValueError(f"out must not overlap the input {input_name} (the kernel reads it while writing out)")
    plain = _dispatch(op, engine, xp)  # loads the engine's module (and checks that the engine exists)
    if _IMPLEMENTATIONS[op + "_ep"].get(resolve_engine(engine, xp)) is not None:
        return _dispatch(op + "_ep", engine, xp)(*args, out, ep)
    return apply_epilogue(plain(*args, None), ep, out)


# ======================================================= direct kernels
def _forward_ref(Y, K, boundary, out):
    xp = get_array_module(Y, K)
    n, _, H, W = Y.shape
    c_out, c_in, kh, kw = K.shape
    cols = _im2col(Y, kh, kw, boundary)
    K2 = K.reshape(c_out, c_in * kh * kw)
    out3 = None if out is None else out.reshape(n, c_out, H * W)
    Z = xp.matmul(K2, cols, out=out3)  # (n, C_out, H·W): one GEMM per example
    return out if out is not None else Z.reshape(n, c_out, H, W)


def _adjoint_input_ref(Z, K, boundary, out):
    # Kᵀ is the correlation with the flipped stencil and swapped channels, with the
    # same padding: Σ_{o,a,b} K[o,i,a,b] Z[s,o,x−a+p, y−b+q]  (substitute a → kh−1−a).
    K_T = K[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return _forward_ref(Z, get_array_module(K).ascontiguousarray(K_T), boundary, out)


def _adjoint_weight_ref(Y, W, kernel_shape, boundary, per_example, out):
    xp = get_array_module(Y, W)
    n, c_in, H, Wd = Y.shape
    c_out = W.shape[1]
    kh, kw = kernel_shape
    cols = _im2col(Y, kh, kw, boundary)  # (n, C_in·kh·kw, H·W)
    W2 = W.reshape(n, c_out, H * Wd)
    # per example: dK_s = W_s cols_sᵀ, shape (n, C_out, C_in·kh·kw)
    if per_example:
        out3 = None if out is None else out.reshape(n, c_out, c_in * kh * kw)
        G = xp.matmul(W2, cols.transpose(0, 2, 1), out=out3)
        return out if out is not None else G.reshape(n, c_out, c_in, kh, kw)
    G = xp.matmul(W2, cols.transpose(0, 2, 1))
    out2 = None if out is None else out.reshape(c_out, c_in * kh * kw)
    g = G.sum(axis=0, out=out2)
    return out if out is not None else g.reshape(c_out, c_in, kh, kw)


def conv2d_forward(Y, K, boundary, *, out=None, engine="auto", epilogue=None):
    """``Z = K Y``: stride-1 "same" cross-correlation of ``Y`` with the stencils ``K``.

    ``Z[s, o, x, y] = Σ_{i,a,b} K[o, i, a, b] Y[s, i, x + a − p, y + b − q]``.

    Parameters
    ----------
    Y : array, shape (n_examples, C_in, H, W)
    K : array, shape (C_out, C_in, kh, kw), odd kh and kw, same dtype as Y
    boundary : {'zero', 'periodic'}
    out : array, shape (n_examples, C_out, H, W), optional
        C-contiguous output buffer (must not overlap ``Y``).
    engine : {'auto', 'numpy', 'numba', 'cupy'}
    epilogue : Epilogue, optional
        Write ``f(α·KY + add + bias)`` instead of ``KY`` (see
        :mod:`meganet.kernels.epilogue`); the numba kernels apply it on the way
        out of the convolution (no extra pass over the data).

    Returns
    -------
    Z : array, shape (n_examples, C_out, H, W)
    """
    xp = get_array_module(Y, K, names=["Y", "K"])
    _check_boundary(boundary)
    _check_kernel(K, Y)
    shape = (Y.shape[0], K.shape[0], *Y.shape[2:])
    _check_out(out, shape, Y.dtype, xp)
    if check_epilogue(epilogue, shape, Y.dtype, xp) is not None:
        return _with_epilogue("forward", engine, xp, (Y, K, boundary), out, epilogue, "Y", Y)
    return _dispatch("forward", engine, xp)(Y, K, boundary, out)


def conv2d_adjoint_input(Z, K, boundary, *, out=None, engine="auto", epilogue=None):
    """``Kᵀ Z``: the adjoint of :func:`conv2d_forward` in ``Y`` (transposed convolution).

    ``(KᵀZ)[s, i, x, y] = Σ_{o,a,b} K[o, i, a, b] Z[s, o, x − a + p, y − b + q]``,
    i.e. the correlation with the flipped stencil and swapped channels.

    Parameters
    ----------
    Z : array, shape (n_examples, C_out, H, W)
    K : array, shape (C_out, C_in, kh, kw)
    boundary : {'zero', 'periodic'}
    out : array, shape (n_examples, C_in, H, W), optional
        C-contiguous output buffer (must not overlap ``Z``).
    engine : {'auto', 'numpy', 'numba', 'cupy'}
    epilogue : Epilogue, optional
        Write ``f(α·KᵀZ + add + bias)`` instead of ``KᵀZ`` (see :func:`conv2d_forward`).

    Returns
    -------
    array, shape (n_examples, C_in, H, W)
    """
    xp = get_array_module(Z, K, names=["Z", "K"])
    _check_boundary(boundary)
    if K.ndim != 4:
        raise ValueError(f"K must have shape (C_out, C_in, kh, kw), got {tuple(K.shape)}")
    _check_stencil(K.shape[2:])
    _check_images("Z", Z, K.shape[0], "output channels")
    if K.dtype != Z.dtype:
        raise TypeError(f"K has dtype {K.dtype} but Z has dtype {Z.dtype}; cast explicitly")
    shape = (Z.shape[0], K.shape[1], *Z.shape[2:])
    _check_out(out, shape, Z.dtype, xp)
    if check_epilogue(epilogue, shape, Z.dtype, xp) is not None:
        return _with_epilogue("adjoint_input", engine, xp, (Z, K, boundary), out, epilogue, "Z", Z)
    return _dispatch("adjoint_input", engine, xp)(Z, K, boundary, out)


def conv2d_adjoint_weight(Y, W, kernel_shape, boundary, per_example=False, *, out=None, engine="auto"):
    """θ-adjoint: the gradient of ``⟨K Y, W⟩`` with respect to the stencils ``K``.

    ``dK[o, i, a, b] = Σ_{s,x,y} W[s, o, x, y] Ypad[s, i, x + a, y + b]``
    (``Ypad`` is ``Y`` padded by ``p, q`` with zeros or periodically).

    Parameters
    ----------
    Y : array, shape (n_examples, C_in, H, W)
    W : array, shape (n_examples, C_out, H, W)
    kernel_shape : (kh, kw), odd
    boundary : {'zero', 'periodic'}
    per_example : bool
        Keep the sum over examples apart.
    out : array, optional
        Buffer of the result's shape.
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    dK : array, shape (C_out, C_in, kh, kw), or (n_examples, C_out, C_in, kh, kw)
        when ``per_example``.
    """
    xp = get_array_module(Y, W, names=["Y", "W"])
    _check_boundary(boundary)
    kh, kw = _check_stencil(kernel_shape)
    _check_images("Y", Y)
    _check_images("W", W)
    if W.shape[0] != Y.shape[0] or W.shape[2:] != Y.shape[2:] or W.dtype != Y.dtype:
        raise ValueError(f"W must have shape (n_examples, C_out, H, W) and dtype like Y {tuple(Y.shape)}, "
                         f"got {tuple(W.shape)} ({W.dtype})")
    shape = (W.shape[1], Y.shape[1], kh, kw)
    _check_out(out, (Y.shape[0], *shape) if per_example else shape, Y.dtype, xp)
    return _dispatch("adjoint_weight", engine, xp)(Y, W, (kh, kw), boundary, check_bool("per_example", per_example), out)


# ========================================================== FFT kernels
def _fft_forward_ref(Y, K, out):
    xp = get_array_module(Y, K)
    image = Y.shape[2:]
    Zh = _channel_matmul(_kernel_spectrum(K, image), _fft(xp).rfft2(Y))
    return _real(_fft(xp).irfft2(Zh, s=image), Y.dtype, out)


def _fft_adjoint_input_ref(Z, K, out):
    xp = get_array_module(Z, K)
    image = Z.shape[2:]
    Kh = _kernel_spectrum(K, image)
    # adjoint of the spectral multiplication: conjugate, swap channels
    Yh = _channel_matmul(xp.conj(Kh).transpose(1, 0, 2, 3), _fft(xp).rfft2(Z))
    return _real(_fft(xp).irfft2(Yh, s=image), Z.dtype, out)


def _fft_adjoint_weight_ref(Y, W, kernel_shape, per_example, out):
    # c[s, o, i, d] = Σ_x W[s, o, x] Y[s, i, x + d] (circular), ĉ = conj(Ŵ) Ŷ;
    # dK[o, i, a, b] = c[o, i, (a − p) mod H, (b − q) mod W].
    xp = get_array_module(Y, W)
    image = Y.shape[2:]
    Yh, Wh = _fft(xp).rfft2(Y), xp.conj(_fft(xp).rfft2(W))
    if per_example:
        Ch = Wh[:, :, None] * Yh[:, None, :]  # (n, C_out, C_in, H, W//2+1)
    else:
        n, c_out, c_in = Y.shape[0], W.shape[1], Y.shape[1]
        Whf = Wh.reshape(n, c_out, -1).transpose(2, 1, 0)  # (f, o, s)
        Yhf = Yh.reshape(n, c_in, -1).transpose(2, 0, 1)  # (f, s, i)
        Ch = xp.matmul(Whf, Yhf).transpose(1, 2, 0).reshape(c_out, c_in, *Wh.shape[2:])
    C = _fft(xp).irfft2(Ch, s=image)
    rows, cols = _stencil_indices(xp, kernel_shape, image, sign=-1)
    return _real(C[..., rows, cols], Y.dtype, out)


def conv2d_fft_forward(Y, K, *, out=None, engine="auto"):
    """``Z = K Y`` for a periodic boundary, through ``rfft2``.

    Same map as ``conv2d_forward(Y, K, 'periodic')``.  Needs ``kh ≤ H``, ``kw ≤ W``.

    Parameters
    ----------
    Y : array, shape (n_examples, C_in, H, W)
    K : array, shape (C_out, C_in, kh, kw)
    out : array, shape (n_examples, C_out, H, W), optional
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    Z : array, shape (n_examples, C_out, H, W)
    """
    xp = get_array_module(Y, K, names=["Y", "K"])
    _check_kernel(K, Y)
    _check_periodic_size(K.shape[2:], Y.shape[2:])
    _check_out(out, (Y.shape[0], K.shape[0], *Y.shape[2:]), Y.dtype, xp)
    return _dispatch("fft_forward", engine, xp)(Y, K, out)


def conv2d_fft_adjoint_input(Z, K, *, out=None, engine="auto"):
    """``Kᵀ Z`` for a periodic boundary, through ``rfft2`` (conjugate spectrum).

    Same map as ``conv2d_adjoint_input(Z, K, 'periodic')``.

    Parameters
    ----------
    Z : array, shape (n_examples, C_out, H, W)
    K : array, shape (C_out, C_in, kh, kw)
    out : array, shape (n_examples, C_in, H, W), optional
        C-contiguous output buffer (must not overlap ``Z``).
    engine : {'auto', 'numpy', 'numba', 'cupy'}
    epilogue : Epilogue, optional
        Write ``f(α·KᵀZ + add + bias)`` instead of ``KᵀZ`` (see :func:`conv2d_forward`).

    Returns
    -------
    array, shape (n_examples, C_in, H, W)
    """
    xp = get_array_module(Z, K, names=["Z", "K"])
    if K.ndim != 4:
        raise ValueError(f"K must have shape (C_out, C_in, kh, kw), got {tuple(K.shape)}")
    _check_stencil(K.shape[2:])
    _check_images("Z", Z, K.shape[0], "output channels")
    if K.dtype != Z.dtype:
        raise TypeError(f"K has dtype {K.dtype} but Z has dtype {Z.dtype}; cast explicitly")
    _check_periodic_size(K.shape[2:], Z.shape[2:])
    _check_out(out, (Z.shape[0], K.shape[1], *Z.shape[2:]), Z.dtype, xp)
    return _dispatch("fft_adjoint_input", engine, xp)(Z, K, out)


def conv2d_fft_adjoint_weight(Y, W, kernel_shape, per_example=False, *, out=None, engine="auto"):
    """θ-adjoint for a periodic boundary, through ``rfft2``: circular
    cross-correlation of ``W`` and ``Y`` in Fourier space, then the stencil entries
    are gathered.

    Same map as ``conv2d_adjoint_weight(Y, W, kernel_shape, 'periodic', per_example)``.

    Parameters
    ----------
    Y : array, shape (n_examples, C_in, H, W)
    W : array, shape (n_examples, C_out, H, W)
    kernel_shape : (kh, kw), odd, at most (H, W)
    per_example : bool
    out : array, optional
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    dK : array, shape (C_out, C_in, kh, kw) or (n_examples, C_out, C_in, kh, kw)
    """
    xp = get_array_module(Y, W, names=["Y", "W"])
    kh, kw = _check_stencil(kernel_shape)
    _check_images("Y", Y)
    _check_images("W", W)
    if W.shape[0] != Y.shape[0] or W.shape[2:] != Y.shape[2:] or W.dtype != Y.dtype:
        raise ValueError(f"W must have shape (n_examples, C_out, H, W) and dtype like Y {tuple(Y.shape)}, "
                         f"got {tuple(W.shape)} ({W.dtype})")
    _check_periodic_size((kh, kw), Y.shape[2:])
    shape = (W.shape[1], Y.shape[1], kh, kw)
    _check_out(out, (Y.shape[0], *shape) if per_example else shape, Y.dtype, xp)
    return _dispatch("fft_adjoint_weight", engine, xp)(Y, W, (kh, kw), check_bool("per_example", per_example), out)


def _symmetric_step_composed(Y, K, b, activation, h, boundary, store_S, out, engine):
    """The step from the engine's convolutions with epilogues (engines without a step kernel)."""
    S = conv2d_forward(Y, K, boundary, engine=engine, epilogue=Epilogue(bias=b, activation=activation))
    Z = conv2d_adjoint_input(S, K, boundary, engine=engine, epilogue=Epilogue(alpha=-h, add=Y), out=out)
    return Z, (S if store_S else None)


def conv2d_symmetric_step(Y, K, b, activation, h, boundary, *, store_S=False, out=None, engine="auto"):
    """One forward Euler step of the symmetric (parabolic) conv layer, ``S = σ(K Y + b)``, ``Z = Y − h KᵀS``
    (Ruthotto & Haber, JMIV 2019, eqs. 2 and 7), example by example.

    The numba kernel keeps ``S`` of one example in cache between the two convolutions (padded there for
    the second) instead of writing the whole ``S`` to memory and reading it back; ``store_S`` also writes
    it out (the cache of the derivatives).  Engines without the kernel compose :func:`conv2d_forward`
    and :func:`conv2d_adjoint_input` with epilogues.

    Parameters
    ----------
    Y : array, shape (n_examples, C, H, W)
    K : array, shape (C_mid, C, kh, kw), same dtype as Y
    b : array, shape (C_mid,), or None
    activation : str or Activation with a compiled kernel (see :mod:`meganet.kernels.activation`)
    h : float
    boundary : {'zero', 'periodic'}
    store_S : bool
    out : array like Y, optional
        May be ``Y`` itself (overwritten).
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    Z : array like Y
    S : array, shape (n_examples, C_mid, H, W), or None unless ``store_S``
    """
    from .activation import activation_code

    xp = get_array_module(Y, K, b, names=["Y", "K", "b"])
    _check_boundary(boundary)
    _check_kernel(K, Y)
    mid = (Y.shape[0], K.shape[0], *Y.shape[2:])
    check_epilogue(Epilogue(bias=b), mid, Y.dtype, xp)
    activation_code(activation)  # raises for activations without a compiled kernel
    _check_out(out, Y.shape, Y.dtype, xp)
    if not isinstance(h, numbers.Real) or isinstance(h, bool) or not math.isfinite(h):
        raise TypeError(f"h must be a finite real number, got {h!r}")
    store_S = check_bool("store_S", store_S)
    _dispatch("forward", engine, xp)  # loads the engine's module (and checks that the engine exists)
    if _IMPLEMENTATIONS["symmetric_step"].get(resolve_engine(engine, xp)) is not None:
        return _dispatch("symmetric_step", engine, xp)(Y, K, b, activation, float(h), boundary, store_S, out)
    return _symmetric_step_composed(Y, K, b, activation, float(h), boundary, store_S, out, engine)


#: op -> {engine: implementation}.  Compiled engines add their entries here.
_IMPLEMENTATIONS = {
    # with a fused epilogue (meganet.kernels.epilogue); engines without an entry run their plain
    # kernel and the epilogue as a pass after it (see _with_epilogue)
    "forward_ep": {},
    "adjoint_input_ep": {},
    "symmetric_step": {},  # compiled engines only; the others compose (_symmetric_step_composed)
    "forward": {"numpy": _forward_ref},
    "adjoint_input": {"numpy": _adjoint_input_ref},
    "adjoint_weight": {"numpy": _adjoint_weight_ref},
    "fft_forward": {"numpy": _fft_forward_ref},
    "fft_adjoint_input": {"numpy": _fft_adjoint_input_ref},
    "fft_adjoint_weight": {"numpy": _fft_adjoint_weight_ref},
}
