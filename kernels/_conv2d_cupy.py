r"""CuPy (GPU) kernels of the 2-D convolution: im2col ``RawKernel`` + cuBLAS GEMM, and ``cupy.fft``.

Registered as engine ``'cupy'`` of :mod:`meganet.kernels.conv2d` when first
resolved for cupy arrays.  Nothing here touches the host.

Direct kernels
    A ``RawKernel`` writes the im2col matrix ``cols[s, (i, a, b), (x, y)] =
    Y[s, i, x + a − p, y + b − q]`` (zero or periodic outside) for a chunk of
    examples, reading ``Y`` directly (no padded copy, no sliding-window view);
    ``cupy.matmul`` then runs one strided-batched cuBLAS GEMM per chunk:
    ``Z = K₂ cols`` (forward), the same with the flipped, channel-swapped
    stencil (``KᵀZ``), and ``dK = Σ_s W_s cols_sᵀ`` (θ-adjoint).  Chunks bound
    the workspace to about 256 MiB.  A 1×1 stencil is a GEMM on ``Y`` itself.
FFT kernels
    The array-module references already run as ``cupy.fft`` (cuFFT) plus one
    batched complex GEMM over the frequencies; they are registered as the
    cupy engine's FFT kernels.

Not tested on the machine this was written on (no GPU there); the tests in
``tests/test_kernels.py`` compare every kernel here with the reference when a
GPU is present.
"""

from __future__ import annotations

import cupy

from .conv2d import (
    _IMPLEMENTATIONS,
    _fft_adjoint_input_ref,
    _fft_adjoint_weight_ref,
    _fft_forward_ref,
)

_SOURCE = r"""
extern "C" __global__ void im2col_{name}(const {T}* __restrict__ Y, {T}* __restrict__ cols,
        const int C, const int H, const int W, const int kh, const int kw, const int periodic,
        const long long s0, const long long total)
{{
    long long idx = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (idx >= total) return;
    long long r = idx;
    const int y = (int)(r % W); r /= W;
    const int x = (int)(r % H); r /= H;
    const int b = (int)(r % kw); r /= kw;
    const int a = (int)(r % kh); r /= kh;
    const int i = (int)(r % C);
    const long long s = s0 + r / C;
    int xs = x + a - (kh - 1) / 2;
    int ys = y + b - (kw - 1) / 2;
    {T} v = 0;
    if (periodic) {{
        xs = ((xs % H) + H) % H;
        ys = ((ys % W) + W) % W;
        v = Y[((s * C + i) * H + xs) * W + ys];
    }} else if (xs >= 0 && xs < H && ys >= 0 && ys < W) {{
        v = Y[((s * C + i) * H + xs) * W + ys];
    }}
    cols[idx] = v;
}}
"""

_KERNELS = {}
_WORKSPACE_BYTES = 256 * 2**20
_THREADS = 256


def _kernel(dtype):
    name = {"float32": "f32", "float64": "f64"}[dtype.name]
    if name not in _KERNELS:
        T = "float" if name == "f32" else "double"
        mod = cupy.RawModule(code=_SOURCE.format(name=name, T=T))
        _KERNELS[name] = mod.get_function(f"im2col_{name}")
    return _KERNELS[name]


def _chunk(n, c, kh, kw, H, W, itemsize):
    per = c * kh * kw * H * W * itemsize
    return max(1, min(n, _WORKSPACE_BYTES // max(per, 1)))


def _cols(Y, s0, s1, kh, kw, boundary, buf):
    """im2col of examples ``s0:s1`` into ``buf`` (shape (≥ s1−s0, C·kh·kw, H·W))."""
    n, c, H, W = Y.shape
    total = (s1 - s0) * c * kh * kw * H * W
    blocks = (total + _THREADS - 1) // _THREADS
    _kernel(Y.dtype)((blocks,), (_THREADS,), (Y, buf, cupy.int32(c), cupy.int32(H), cupy.int32(W), cupy.int32(kh),
                                              cupy.int32(kw), cupy.int32(boundary == "periodic"),
                                              cupy.int64(s0), cupy.int64(total)))
    return buf[: s1 - s0]


def _forward_cupy(Y, K, boundary, out):
    Y = cupy.ascontiguousarray(Y)
    n, c_in, H, W = Y.shape
    c_out, _, kh, kw = K.shape
    K2 = cupy.ascontiguousarray(K).reshape(c_out, c_in * kh * kw)
    Z = out if out is not None else cupy.empty((n, c_out, H, W), dtype=Y.dtype)
    Z3 = Z.reshape(n, c_out, H * W)
    if kh == 1 and kw == 1:
        cupy.matmul(K2, Y.reshape(n, c_in, H * W), out=Z3)
        return Z
    chunk = _chunk(n, c_in, kh, kw, H, W, Y.itemsize)
    buf = cupy.empty((chunk, c_in * kh * kw, H * W), dtype=Y.dtype)
    for s0 in range(0, n, chunk):
        s1 = min(n, s0 + chunk)
        cupy.matmul(K2, _cols(Y, s0, s1, kh, kw, boundary, buf), out=Z3[s0:s1])
    return Z


def _adjoint_input_cupy(Z, K, boundary, out):
    K_T = cupy.ascontiguousarray(K[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return _forward_cupy(Z, K_T, boundary, out)


def _adjoint_weight_cupy(Y, W, kernel_shape, boundary, per_example, out):
    Y = cupy.ascontiguousarray(Y)
    W = cupy.ascontiguousarray(W)
    n, c_in, H, Wd = Y.shape
    c_out = W.shape[1]
    kh, kw = kernel_shape
    m = c_in * kh * kw
    W3 = W.reshape(n, c_out, H * Wd)
    if per_example:
        res = out if out is not None else cupy.empty((n, c_out, c_in, kh, kw), dtype=Y.dtype)
        res3 = res.reshape(n, c_out, m)
    else:
        res = out if out is not None else cupy.empty((c_out, c_in, kh, kw), dtype=Y.dtype)
        res2 = res.reshape(c_out, m)
        res2[...] = 0
    if kh == 1 and kw == 1:
        chunk = n
        buf = None
    else:
        chunk = _chunk(n, c_in, kh, kw, H, Wd, Y.itemsize)
        buf = cupy.empty((chunk, m, H * Wd), dtype=Y.dtype)
    for s0 in range(0, n, chunk):
        s1 = min(n, s0 + chunk)
        cols = Y[s0:s1].reshape(s1 - s0, c_in, H * Wd) if buf is None else _cols(Y, s0, s1, kh, kw, boundary, buf)
        G = cupy.matmul(W3[s0:s1], cols.transpose(0, 2, 1))  # (chunk, C_out, m), batched cuBLAS
        if per_example:
            res3[s0:s1] = G
        else:
            res2 += G.sum(axis=0)
    return res


_IMPLEMENTATIONS["forward"]["cupy"] = _forward_cupy
_IMPLEMENTATIONS["adjoint_input"]["cupy"] = _adjoint_input_cupy
_IMPLEMENTATIONS["adjoint_weight"]["cupy"] = _adjoint_weight_cupy
# cuFFT through cupy.fft: the references are already device code
_IMPLEMENTATIONS["fft_forward"]["cupy"] = _fft_forward_ref
_IMPLEMENTATIONS["fft_adjoint_input"]["cupy"] = _fft_adjoint_input_ref
_IMPLEMENTATIONS["fft_adjoint_weight"]["cupy"] = _fft_adjoint_weight_ref
