r"""Scalar math for the numba kernels: a vectorizable ``tanh`` and the activations.

``math.tanh`` inside a numba loop is a call into libm per element (about 16 ns
here), which also blocks SIMD vectorization of the loop; numpy's ``tanh`` is a
SIMD loop (about 1.8 ns per float64).  The fused kernels therefore use
:func:`tanh64`, a branch-free transcription of the Cephes ``tanh``/``exp``
(S. L. Moshier, Cephes Math Library, ``tanh.c`` and ``exp.c``; relative error
about 2·10⁻¹⁶ on the whole real line):

* ``|x| < 0.625``: ``tanh x = x + x·x²·P(x²)/Q(x²)`` (Cephes rational form);
* otherwise ``tanh|x| = 1 − 2/(e^{2|x|} + 1)`` with ``e^r`` from the Cephes
  rational approximation on ``|r| ≤ ln2/2`` and the power of two ``2^n``
  assembled from its exponent bits (a bitcast, see :func:`_i64_as_f64`);
  ``|x|`` is clipped at 22, where ``tanh`` rounds to 1.

Both branches are computed and one is selected, so LLVM vectorizes the
calling loops (the kernels compile with ``error_model='numpy'``, which drops
numba's division-by-zero branches).  float32 data are evaluated in float64
and rounded once.

Activations are passed to kernels as an int code
(:data:`meganet.kernels.activation.ACT_CODES`) and a parameter ``eta`` (the half width of the smoothed ReLU); :func:`act_value_deriv`
evaluates ``σ`` and ``σ'`` of one value.
"""

from __future__ import annotations

import math

from . import _compile_notice, _prepare_threads

_prepare_threads()  # before numba's threading layer starts (OMP_WAIT_POLICY)

import numba  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.core import event  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

__all__ = ["tanh64", "tanh32", "act_value_deriv", "act_value", "act_row", "JIT"]

#: Options of every numba kernel: cached on disk, numpy error model (no
#: division-by-zero branches, so loops vectorize).
JIT = dict(cache=True, error_model="numpy", nogil=True)


class _CompileListener(event.Listener):
    """Says once on stderr that kernels are being compiled (see :func:`meganet.kernels.set_compile_message`);
    numba fires ``numba:compile`` after a miss of its on-disk cache only."""

    def on_start(self, ev):
        _compile_notice(ev.data["dispatcher"])

    def on_end(self, ev):
        pass


event.register("numba:compile", _CompileListener())


# activation codes (see .activation.ACT_CODES): 0 identity, 1 tanh, 2 relu, 3 smooth relu, 4 sigmoid


@intrinsic
def _i64_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1: the kernels run as Python (an intrinsic cannot)
    def _i64_as_f64(x):  # noqa: F811
        """Reinterpret the bits of an int64 as a float64 (no conversion)."""
        return np.int64(x).view(np.float64)


_LOG2E = 1.4426950408889634073599
_C1 = 6.93145751953125e-1
_C2 = 1.42860682030941723212e-6


@njit(inline="always", **JIT)
def _exp_nonneg(x):
    """``e^x`` for ``0 ≤ x ≤ 44`` (Cephes ``exp``: ``x = n ln2 + r``, rational ``e^r``)."""
    n = math.floor(_LOG2E * x + 0.5)
    r = x - n * _C1 - n * _C2
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr + 9.99999999999999999910e-1)
    qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr + 2.27265548208155028766e-1) * rr \
        + 2.00000000000000000009e0
    e = 1.0 + 2.0 * (px / (qx - px))
    return e * _i64_as_f64((np.int64(n) + 1023) << 52)


@njit(inline="always", **JIT)
def tanh64(x):
    """``tanh(x)`` in float64, branch-free (see the module docstring)."""
    x = np.float64(x)
    a = min(abs(x), 22.0)
    z = a * a
    p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
    q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3
    small = a + a * z * (p / q)
    large = 1.0 - 2.0 / (_exp_nonneg(2.0 * a) + 1.0)
    t = small if a < 0.625 else large
    return t if x >= 0.0 else -t


#: |x| beyond which the float32 rational tanh is clamped (there it rounds to ±1 in float32)
_TANH32_CLAMP = 7.90531110763549805


@njit(inline="always", **JIT)
def tanh32(x):
    """``tanh(x)`` for float32 data in float32 arithmetic: the clamped rational approximation
    ``x·P(x²)/Q(x²)`` (degrees 6 and 3 in ``x²``) of Eigen's ``generic_fast_tanh_float``
    (``Eigen/src/Core/MathFunctionsImpl.h``; the same coefficients are in XLA, ONNX Runtime's MLAS and
    PyTorch's CUDA kernels).  One division and twelve multiply-adds, no exponential: about 6× faster than
    :func:`tanh64` per float32 value (0.3 vs 1.8 ns, one core).  Error against the float64 ``tanh``: at
    most 7 ulp of float32 on [−12, 12] (``tests/test_kernels.py`` checks it on a dense grid), against
    0.5 ulp for :func:`tanh64` rounded to float32."""
    f = np.float32
    xc = min(max(f(x), f(-_TANH32_CLAMP)), f(_TANH32_CLAMP))
    z = xc * xc
    p = (((((f(-2.76076847742355e-16) * z + f(2.00018790482477e-13)) * z + f(-8.60467152213735e-11)) * z
           + f(5.12229709037114e-08)) * z + f(1.48572235717979e-05)) * z + f(6.37261928875436e-04)) * z \
        + f(4.89352455891786e-03)
    q = ((f(1.19825839466702e-06) * z + f(1.18534705686654e-04)) * z + f(2.26843463243900e-03)) * z \
        + f(4.89352518554385e-03)
    return xc * p / q


@njit(inline="always", **JIT)
def act_value_deriv(u, code, eta):
    """``(σ(u), σ'(u))`` for activation ``code`` (float64)."""
    u = np.float64(u)
    if code == 1:
        t = tanh64(u)
        return t, 1.0 - t * t
    if code == 2:
        return (u if u > 0.0 else 0.0), (1.0 if u > 0.0 else 0.0)
    if code == 3:
        quad = u * u / (4.0 * eta) + u / 2.0 + eta / 4.0
        v = u if u > eta else (0.0 if u < -eta else quad)
        d = min(max(u / (2.0 * eta) + 0.5, 0.0), 1.0)
        return v, d
    if code == 4:
        s = 0.5 * (1.0 + tanh64(0.5 * u))
        return s, s * (1.0 - s)
    return u, 1.0


@njit(inline="always", **JIT)
def act_value(u, code, eta):
    """``σ(u)`` for activation ``code`` (float64)."""
    return act_value_deriv(u, code, eta)[0]


@njit(**JIT)
def act_row(x, shift, code, eta, v, d):
    """``v[p] = σ(x[p] + shift)``, ``d[p] = σ'(x[p] + shift)`` for a row.

    The branch on the activation is taken once, outside the loops, so that
    each loop is branch-free and vectorizes (a branch per element does not).
    """
    m = x.shape[0]
    if code == 1:
        for p in range(m):
            t = tanh64(x[p] + shift)
            v[p] = t
            d[p] = 1.0 - t * t
    elif code == 4:
        for p in range(m):
            t = 0.5 * (1.0 + tanh64(0.5 * (x[p] + shift)))
            v[p] = t
            d[p] = t * (1.0 - t)
    elif code == 2:
        for p in range(m):
            u = x[p] + shift
            v[p] = u if u > 0.0 else 0.0
            d[p] = 1.0 if u > 0.0 else 0.0
    elif code == 3:
        for p in range(m):
            u = np.float64(x[p] + shift)
            quad = u * u / (4.0 * eta) + u / 2.0 + eta / 4.0
            v[p] = u if u > eta else (0.0 if u < -eta else quad)
            d[p] = min(max(u / (2.0 * eta) + 0.5, 0.0), 1.0)
    else:
        for p in range(m):
            v[p] = x[p] + shift
            d[p] = 1.0
