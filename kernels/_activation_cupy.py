"""CuPy kernel of :func:`meganet.kernels.activation.bias_activation`: one ``ElementwiseKernel``.

``S = σ(U + b_c)`` and ``D = σ'(U + b_c)`` in one pass over the data, the
channel of element ``i`` being ``(i / P) mod C`` for ``U`` of shape
``(n, C, P…)``.  The formulas are those of :mod:`meganet.activations`
(computed in the data's precision).  Not tested on the machine this was
written on (no GPU there); ``tests/test_kernels.py`` compares it with the
reference when a GPU is present.
"""

from __future__ import annotations

import cupy

from .activation import _IMPLEMENTATIONS, activation_code

_BODY = r"""
const long long c = (i / P) % C;
const T x = u + (has_b ? b[c] : (T)0);
T v, dv;
if (code == 1) {            // tanh
    v = tanh(x); dv = (T)1 - v * v;
} else if (code == 2) {     // relu
    v = x > (T)0 ? x : (T)0; dv = x > (T)0 ? (T)1 : (T)0;
} else if (code == 3) {     // smoothed relu, half width eta
    const T e = (T)eta;
    v = x > e ? x : (x < -e ? (T)0 : x * x / ((T)4 * e) + x / (T)2 + e / (T)4);
    dv = x / ((T)2 * e) + (T)0.5;
    dv = dv < (T)0 ? (T)0 : (dv > (T)1 ? (T)1 : dv);
} else if (code == 4) {     // sigmoid = (1 + tanh(x/2))/2
    v = (T)0.5 * ((T)1 + tanh((T)0.5 * x)); dv = v * ((T)1 - v);
} else {                    // identity
    v = x; dv = (T)1;
}
s = v;
d = dv;
"""

_KERNEL = cupy.ElementwiseKernel(
    "T u, raw T b, int64 C, int64 P, int32 has_b, int32 code, float64 eta",
    "T s, T d",
    _BODY,
    "meganet_bias_activation",
)


def _bias_activation_cupy(U, b, activation, derivative, out, dsigma_out):
    code, eta = activation_code(activation)
    U = cupy.ascontiguousarray(U)
    n, C = U.shape[:2]
    P = U.size // max(n * C, 1)
    bb = cupy.zeros(1, dtype=U.dtype) if b is None else cupy.ascontiguousarray(b)
    S = out if out is not None else cupy.empty_like(U)
    D = dsigma_out if dsigma_out is not None else cupy.empty_like(U)
    _KERNEL(U, bb, C, P, int(b is not None), code, eta, S, D)
    return S, (D if derivative else None)


_IMPLEMENTATIONS["bias_activation"]["cupy"] = _bias_activation_cupy
