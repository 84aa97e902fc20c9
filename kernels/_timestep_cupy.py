r"""CuPy kernels of :mod:`meganet.kernels.timestep`: one CUDA thread per example, all layers.

Each thread carries one example through all N steps in registers (widths up
to :data:`MAX_WIDTH`), as the numba kernels do per CPU thread; the θ-adjoints
are accumulated with ``atomicAdd`` into one array per parameter (double
atomics need compute capability ≥ 6.0).  The time-step updates are thus fused
into one kernel launch per sweep (no per-step launches).  Wider layers use the
array-module reference (``engine='auto'``) — asking for ``'cupy'`` explicitly
then raises.

Not tested on the machine this was written on (no GPU there);
``tests/test_kernels.py`` compares every kernel with the reference when a GPU
is present.
"""

from __future__ import annotations

import cupy

from .activation import activation_code
from .timestep import _IMPLEMENTATIONS, DenseTrajectory, VerletTrajectory

#: Largest feature width handled by the kernels (per-thread register arrays).
MAX_WIDTH = 32

_SOURCE = r"""
#define MAXN {maxn}
typedef {T} T;

__device__ __forceinline__ void act(T u, int code, double eta, T* v, T* d) {{
    if (code == 1) {{ T t = tanh(u); *v = t; *d = (T)1 - t * t; }}
    else if (code == 2) {{ *v = u > (T)0 ? u : (T)0; *d = u > (T)0 ? (T)1 : (T)0; }}
    else if (code == 3) {{
        T e = (T)eta;
        *v = u > e ? u : (u < -e ? (T)0 : u * u / ((T)4 * e) + u / (T)2 + e / (T)4);
        T g = u / ((T)2 * e) + (T)0.5; *d = g < (T)0 ? (T)0 : (g > (T)1 ? (T)1 : g);
    }}
    else if (code == 4) {{ T s = (T)0.5 * ((T)1 + tanh((T)0.5 * u)); *v = s; *d = s * ((T)1 - s); }}
    else {{ *v = u; *d = (T)1; }}
}}

// bias entry o of step j for a stack (NB, bw): shared if NB == 1, scalar if bw == 1
__device__ __forceinline__ T bias(const T* b, int NB, int bw, int j, int o) {{
    return b[(long long)(NB == 1 ? 0 : j) * bw + (bw > 1 ? o : 0)];
}}

extern "C" __global__ void dense_forward(const T* Y0, const T* M, int NM, const T* b, int NB, int bw,
        T h, int code, double eta, int leapfrog, int store, int N, int S, int n,
        T* Z, T* Zprev, T* states, T* dsig) {{
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= S) return;
    T y[MAXN], yp[MAXN], u[MAXN];
    for (int i = 0; i < n; ++i) {{ y[i] = Y0[(long long)s * n + i]; yp[i] = y[i]; }}
    for (int j = 0; j < N; ++j) {{
        const T* Mj = M + (long long)(NM == 1 ? 0 : j) * n * n;
        for (int o = 0; o < n; ++o) u[o] = bias(b, NB, bw, j, o);
        for (int i = 0; i < n; ++i) {{
            if (store) states[((long long)j * S + s) * n + i] = y[i];
            for (int o = 0; o < n; ++o) u[o] += y[i] * Mj[i * n + o];
        }}
        for (int o = 0; o < n; ++o) {{
            T v, d; act(u[o], code, eta, &v, &d);
            if (store) dsig[((long long)j * S + s) * n + o] = d;
            if (leapfrog) {{ T nxt = (T)2 * y[o] - yp[o] + h * v; yp[o] = y[o]; y[o] = nxt; }}
            else y[o] += h * v;
        }}
    }}
    for (int i = 0; i < n; ++i) {{ Z[(long long)s * n + i] = y[i]; Zprev[(long long)s * n + i] = yp[i]; }}
}}

extern "C" __global__ void dense_jmv(const T* M, int NM, const T* states, const T* dsig, T h,
        const T* dY0, int has_dY0, const T* dM, int NdM, int has_dM, const T* db, int Ndb, int bw, int has_db,
        int leapfrog, int N, int S, int n, T* dZ) {{
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= S) return;
    T dy[MAXN], dyp[MAXN], du[MAXN];
    for (int i = 0; i < n; ++i) {{ dy[i] = has_dY0 ? dY0[(long long)s * n + i] : (T)0; dyp[i] = dy[i]; }}
    for (int j = 0; j < N; ++j) {{
        const T* Mj = M + (long long)(NM == 1 ? 0 : j) * n * n;
        const T* st = states + ((long long)j * S + s) * n;
        for (int o = 0; o < n; ++o) du[o] = has_db ? bias(db, Ndb, bw, j, o) : (T)0;
        for (int i = 0; i < n; ++i)
            for (int o = 0; o < n; ++o) du[o] += dy[i] * Mj[i * n + o];
        if (has_dM) {{
            const T* dMj = dM + (long long)(NdM == 1 ? 0 : j) * n * n;
            for (int i = 0; i < n; ++i)
                for (int o = 0; o < n; ++o) du[o] += st[i] * dMj[i * n + o];
        }}
        const T* ds = dsig + ((long long)j * S + s) * n;
        for (int o = 0; o < n; ++o) {{
            T inc = h * (ds[o] * du[o]);
            if (leapfrog) {{ T nxt = (T)2 * dy[o] - dyp[o] + inc; dyp[o] = dy[o]; dy[o] = nxt; }}
            else dy[o] += inc;
        }}
    }}
    for (int i = 0; i < n; ++i) dZ[(long long)s * n + i] = dy[i];
}}

extern "C" __global__ void dense_jtmv(const T* W, const T* M, int NM, const T* states, const T* dsig, T h,
        int need_theta, int leapfrog, int N, int S, int n, T* dM, T* db, T* dY0) {{
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= S) return;
    T w[MAXN], lp[MAXN], v[MAXN];
    for (int i = 0; i < n; ++i) {{ w[i] = W[(long long)s * n + i]; lp[i] = (T)0; }}
    for (int j = N - 1; j >= 0; --j) {{
        const int jm = NM == 1 ? 0 : j;
        const T* Mj = M + (long long)jm * n * n;
        const T* ds = dsig + ((long long)j * S + s) * n;
        for (int o = 0; o < n; ++o) v[o] = h * (ds[o] * w[o]);
        if (need_theta) {{
            const T* st = states + ((long long)j * S + s) * n;
            for (int i = 0; i < n; ++i)
                for (int o = 0; o < n; ++o) atomicAdd(dM + ((long long)jm * n + i) * n + o, st[i] * v[o]);
            for (int o = 0; o < n; ++o) atomicAdd(db + (long long)jm * n + o, v[o]);
        }}
        if (leapfrog) for (int i = 0; i < n; ++i) {{ T t = lp[i] + (T)2 * w[i]; lp[i] = -w[i]; w[i] = t; }}
        for (int i = 0; i < n; ++i) {{
            T acc = (T)0;
            for (int o = 0; o < n; ++o) acc += v[o] * Mj[i * n + o];
            w[i] += acc;
        }}
    }}
    for (int i = 0; i < n; ++i) dY0[(long long)s * n + i] = leapfrog ? w[i] + lp[i] : w[i];
}}

extern "C" __global__ void verlet_forward(const T* y0, const T* z0, const T* K, int NK, const T* by, int Nby,
        int byw, const T* bz, int Nbz, int bzw, T h, int code, double eta, int store, int N, int S, int ny, int nz,
        T* yN, T* zN, T* ys, T* zh, T* dsz, T* dsy) {{
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= S) return;
    T y[MAXN], z[MAXN], u[MAXN];
    for (int a = 0; a < ny; ++a) y[a] = y0[(long long)s * ny + a];
    for (int q = 0; q < nz; ++q) z[q] = z0[(long long)s * nz + q];
    for (int j = 0; j < N; ++j) {{
        const T* Kj = K + (long long)(NK == 1 ? 0 : j) * ny * nz;
        for (int q = 0; q < nz; ++q) u[q] = bias(bz, Nbz, bzw, j, q);
        for (int a = 0; a < ny; ++a) {{
            if (store) ys[((long long)j * S + s) * ny + a] = y[a];
            for (int q = 0; q < nz; ++q) u[q] += y[a] * Kj[a * nz + q];
        }}
        for (int q = 0; q < nz; ++q) {{
            T v, d; act(u[q], code, eta, &v, &d);
            z[q] -= h * v;
            if (store) {{ dsz[((long long)j * S + s) * nz + q] = d; zh[((long long)j * S + s) * nz + q] = z[q]; }}
        }}
        for (int a = 0; a < ny; ++a) {{
            T acc = bias(by, Nby, byw, j, a);
            for (int q = 0; q < nz; ++q) acc += z[q] * Kj[a * nz + q];
            T v, d; act(acc, code, eta, &v, &d);
            if (store) dsy[((long long)j * S + s) * ny + a] = d;
            y[a] += h * v;
        }}
    }}
    for (int a = 0; a < ny; ++a) yN[(long long)s * ny + a] = y[a];
    for (int q = 0; q < nz; ++q) zN[(long long)s * nz + q] = z[q];
}}

extern "C" __global__ void verlet_jmv(const T* K, int NK, const T* ys, const T* zh, const T* dsz, const T* dsy, T h,
        const T* dy0, int has_dy0, const T* dz0, int has_dz0, const T* dK, int NdK, int has_dK,
        const T* dby, int Nby, int byw, int has_dby, const T* dbz, int Nbz, int bzw, int has_dbz,
        int N, int S, int ny, int nz, T* dyN, T* dzN) {{
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= S) return;
    T dy[MAXN], dz[MAXN], du[MAXN];
    for (int a = 0; a < ny; ++a) dy[a] = has_dy0 ? dy0[(long long)s * ny + a] : (T)0;
    for (int q = 0; q < nz; ++q) dz[q] = has_dz0 ? dz0[(long long)s * nz + q] : (T)0;
    for (int j = 0; j < N; ++j) {{
        const T* Kj = K + (long long)(NK == 1 ? 0 : j) * ny * nz;
        const T* dKj = dK + (long long)(NdK == 1 ? 0 : j) * ny * nz;
        const T* yst = ys + ((long long)j * S + s) * ny;
        const T* zs = zh + ((long long)j * S + s) * nz;
        for (int q = 0; q < nz; ++q) du[q] = has_dbz ? bias(dbz, Nbz, bzw, j, q) : (T)0;
        for (int a = 0; a < ny; ++a)
            for (int q = 0; q < nz; ++q) {{
                du[q] += dy[a] * Kj[a * nz + q];
                if (has_dK) du[q] += yst[a] * dKj[a * nz + q];
            }}
        const T* dz_s = dsz + ((long long)j * S + s) * nz;
        for (int q = 0; q < nz; ++q) dz[q] -= h * (dz_s[q] * du[q]);
        const T* dy_s = dsy + ((long long)j * S + s) * ny;
        for (int a = 0; a < ny; ++a) {{
            T acc = has_dby ? bias(dby, Nby, byw, j, a) : (T)0;
            for (int q = 0; q < nz; ++q) {{
                acc += dz[q] * Kj[a * nz + q];
                if (has_dK) acc += zs[q] * dKj[a * nz + q];
            }}
            dy[a] += h * (dy_s[a] * acc);
        }}
    }}
    for (int a = 0; a < ny; ++a) dyN[(long long)s * ny + a] = dy[a];
    for (int q = 0; q < nz; ++q) dzN[(long long)s * nz + q] = dz[q];
}}

extern "C" __global__ void verlet_jtmv(const T* Wy, const T* Wz, const T* K, int NK, const T* ys, const T* zh,
        const T* dsz, const T* dsy, T h, int need_theta, int N, int S, int ny, int nz,
        T* dK, T* dby, T* dbz, T* dy0, T* dz0) {{
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= S) return;
    T wy[MAXN], wz[MAXN], vy[MAXN], vz[MAXN];
    for (int a = 0; a < ny; ++a) wy[a] = Wy[(long long)s * ny + a];
    for (int q = 0; q < nz; ++q) wz[q] = Wz[(long long)s * nz + q];
    for (int j = N - 1; j >= 0; --j) {{
        const int jk = NK == 1 ? 0 : j;
        const T* Kj = K + (long long)jk * ny * nz;
        const T* dy_s = dsy + ((long long)j * S + s) * ny;
        const T* dz_s = dsz + ((long long)j * S + s) * nz;
        for (int a = 0; a < ny; ++a) vy[a] = h * (dy_s[a] * wy[a]);
        for (int a = 0; a < ny; ++a)
            for (int q = 0; q < nz; ++q) wz[q] += vy[a] * Kj[a * nz + q];
        for (int q = 0; q < nz; ++q) vz[q] = -h * (dz_s[q] * wz[q]);
        if (need_theta) {{
            const T* yst = ys + ((long long)j * S + s) * ny;
            const T* zs = zh + ((long long)j * S + s) * nz;
            for (int a = 0; a < ny; ++a) {{
                for (int q = 0; q < nz; ++q)
                    atomicAdd(dK + ((long long)jk * ny + a) * nz + q, vy[a] * zs[q] + yst[a] * vz[q]);
                atomicAdd(dby + (long long)jk * ny + a, vy[a]);
            }}
            for (int q = 0; q < nz; ++q) atomicAdd(dbz + (long long)jk * nz + q, vz[q]);
        }}
        for (int a = 0; a < ny; ++a) {{
            T acc = wy[a];
            for (int q = 0; q < nz; ++q) acc += vz[q] * Kj[a * nz + q];
            wy[a] = acc;
        }}
    }}
    for (int a = 0; a < ny; ++a) dy0[(long long)s * ny + a] = wy[a];
    for (int q = 0; q < nz; ++q) dz0[(long long)s * nz + q] = wz[q];
}}
"""

_MODULES = {}
_THREADS = 128


def _fn(dtype, name):
    key = dtype.name
    if key not in _MODULES:
        T = {"float32": "float", "float64": "double"}[key]
        _MODULES[key] = cupy.RawModule(code=_SOURCE.format(T=T, maxn=MAX_WIDTH))
    return _MODULES[key].get_function(name)


def _grid(S):
    return ((S + _THREADS - 1) // _THREADS,), (_THREADS,)


def _c(a):
    return cupy.ascontiguousarray(a)


def _check_width(*widths):
    if max(widths) > MAX_WIDTH:
        raise NotImplementedError(f"the cupy time-step kernels handle widths up to {MAX_WIDTH}, got {max(widths)}; "
                                  "use engine='auto' or 'numpy'")


def _opt(a, dt):
    """(array, leading size, width, given) of an optional stack."""
    if a is None:
        return cupy.zeros((1, 1), dtype=dt), 1, 1, 0
    a = _c(a)
    return a, a.shape[0], a.shape[-1] if a.ndim == 2 else 1, 1


def _i(v):
    return cupy.int32(v)


def _dense_forward_cupy(Y0, M, b, h, activation, store, N, leapfrog=False):
    code, eta = activation_code(activation)
    Y0, M = _c(Y0), _c(M)
    S, n = Y0.shape
    _check_width(n)
    dt = Y0.dtype
    bb, NB, bw, _ = _opt(b, dt)
    Z, Zprev = cupy.empty_like(Y0), cupy.empty_like(Y0)
    states = cupy.empty((N, S, n) if store else (1, 1, n), dtype=dt)
    dsig = cupy.empty_like(states)
    hh = h * h if leapfrog else h
    _fn(dt, "dense_forward")(*_grid(S), (Y0, M, _i(M.shape[0]), bb, _i(NB), _i(bw), dt.type(hh), _i(code),
                                         cupy.float64(eta), _i(leapfrog), _i(store), _i(N), _i(S), _i(n),
                                         Z, Zprev, states, dsig))
    return DenseTrajectory(Z=Z, states=states if store else None, dsigma=dsig if store else None,
                           prev=Zprev if leapfrog else None)


def _dense_jmv_cupy(M, states, dsigma, h, dY0, dM, db, leapfrog=False):
    N, S, n = states.shape
    _check_width(n)
    dt = states.dtype
    M = _c(M)
    dY0a, _, _, has_dY0 = _opt(dY0, dt)
    if dM is None:
        dMa, NdM, has_dM = cupy.zeros((1, n, n), dtype=dt), 1, 0
    else:
        dMa, NdM, has_dM = _c(dM), dM.shape[0], 1
    dba, Ndb, bw, has_db = _opt(db, dt)
    dZ = cupy.empty((S, n), dtype=dt)
    hh = h * h if leapfrog else h
    _fn(dt, "dense_jmv")(*_grid(S), (M, _i(M.shape[0]), _c(states), _c(dsigma), dt.type(hh), dY0a, _i(has_dY0),
                                     dMa, _i(NdM), _i(has_dM), dba, _i(Ndb), _i(bw), _i(has_db), _i(leapfrog),
                                     _i(N), _i(S), _i(n), dZ))
    return dZ


def _dense_jtmv_cupy(W, M, states, dsigma, h, need_theta, leapfrog=False):
    N, S, n = states.shape
    _check_width(n)
    dt = states.dtype
    M = _c(M)
    NM = M.shape[0]
    dM = cupy.zeros((NM, n, n), dtype=dt)
    db = cupy.zeros((NM, n), dtype=dt)
    dY0 = cupy.empty((S, n), dtype=dt)
    hh = h * h if leapfrog else h
    _fn(dt, "dense_jtmv")(*_grid(S), (_c(W), M, _i(NM), _c(states), _c(dsigma), dt.type(hh), _i(need_theta),
                                      _i(leapfrog), _i(N), _i(S), _i(n), dM, db, dY0))
    return (dM, db, dY0) if need_theta else (None, None, dY0)


def _leapfrog_forward_cupy(Y0, M, b, h, activation, store, N):
    return _dense_forward_cupy(Y0, M, b, h, activation, store, N, leapfrog=True)


def _leapfrog_jmv_cupy(M, states, dsigma, h, dY0, dM, db):
    return _dense_jmv_cupy(M, states, dsigma, h, dY0, dM, db, leapfrog=True)


def _leapfrog_jtmv_cupy(W, M, states, dsigma, h, need_theta):
    return _dense_jtmv_cupy(W, M, states, dsigma, h, need_theta, leapfrog=True)


def _verlet_forward_cupy(y0, z0, K, by, bz, h, activation, store, N):
    code, eta = activation_code(activation)
    y0, z0, K = _c(y0), _c(z0), _c(K)
    S, ny = y0.shape
    nz = z0.shape[1]
    _check_width(ny, nz)
    dt = y0.dtype
    bya, Nby, byw, _ = _opt(by, dt)
    bza, Nbz, bzw, _ = _opt(bz, dt)
    yN, zN = cupy.empty_like(y0), cupy.empty_like(z0)
    ys = cupy.empty((N, S, ny) if store else (1, 1, ny), dtype=dt)
    zh = cupy.empty((N, S, nz) if store else (1, 1, nz), dtype=dt)
    dsz, dsy = cupy.empty_like(zh), cupy.empty_like(ys)
    _fn(dt, "verlet_forward")(*_grid(S), (y0, z0, K, _i(K.shape[0]), bya, _i(Nby), _i(byw), bza, _i(Nbz), _i(bzw),
                                          dt.type(h), _i(code), cupy.float64(eta), _i(store), _i(N), _i(S), _i(ny),
                                          _i(nz), yN, zN, ys, zh, dsz, dsy))
    if not store:
        ys = zh = dsz = dsy = None
    return VerletTrajectory(y=yN, z=zN, ys=ys, z_half=zh, dsigma_z=dsz, dsigma_y=dsy)


def _verlet_jmv_cupy(K, tr, h, dy0, dz0, dK, dby, dbz):
    K = _c(K)
    N, S, ny = tr.ys.shape
    nz = K.shape[2]
    _check_width(ny, nz)
    dt = K.dtype
    dy0a, _, _, h_dy0 = _opt(dy0, dt)
    dz0a, _, _, h_dz0 = _opt(dz0, dt)
    if dK is None:
        dKa, NdK, h_dK = cupy.zeros((1, ny, nz), dtype=dt), 1, 0
    else:
        dKa, NdK, h_dK = _c(dK), dK.shape[0], 1
    dbya, Nby, byw, h_dby = _opt(dby, dt)
    dbza, Nbz, bzw, h_dbz = _opt(dbz, dt)
    dyN, dzN = cupy.empty((S, ny), dtype=dt), cupy.empty((S, nz), dtype=dt)
    _fn(dt, "verlet_jmv")(*_grid(S), (K, _i(K.shape[0]), _c(tr.ys), _c(tr.z_half), _c(tr.dsigma_z), _c(tr.dsigma_y),
                                      dt.type(h), dy0a, _i(h_dy0), dz0a, _i(h_dz0), dKa, _i(NdK), _i(h_dK),
                                      dbya, _i(Nby), _i(byw), _i(h_dby), dbza, _i(Nbz), _i(bzw), _i(h_dbz),
                                      _i(N), _i(S), _i(ny), _i(nz), dyN, dzN))
    return dyN, dzN


def _verlet_jtmv_cupy(Wy, Wz, K, tr, h, need_theta):
    K = _c(K)
    NK, ny, nz = K.shape
    N, S = tr.ys.shape[:2]
    _check_width(ny, nz)
    dt = K.dtype
    dK = cupy.zeros((NK, ny, nz), dtype=dt)
    dby, dbz = cupy.zeros((NK, ny), dtype=dt), cupy.zeros((NK, nz), dtype=dt)
    dy0, dz0 = cupy.empty((S, ny), dtype=dt), cupy.empty((S, nz), dtype=dt)
    _fn(dt, "verlet_jtmv")(*_grid(S), (_c(Wy), _c(Wz), K, _i(NK), _c(tr.ys), _c(tr.z_half), _c(tr.dsigma_z),
                                       _c(tr.dsigma_y), dt.type(h), _i(need_theta), _i(N), _i(S), _i(ny), _i(nz),
                                       dK, dby, dbz, dy0, dz0))
    if not need_theta:
        return None, None, None, dy0, dz0
    return dK, dby, dbz, dy0, dz0


_IMPLEMENTATIONS["resnet_dense_forward"]["cupy"] = _dense_forward_cupy
_IMPLEMENTATIONS["resnet_dense_jmv"]["cupy"] = _dense_jmv_cupy
_IMPLEMENTATIONS["resnet_dense_jtmv"]["cupy"] = _dense_jtmv_cupy
_IMPLEMENTATIONS["leapfrog_forward"]["cupy"] = _leapfrog_forward_cupy
_IMPLEMENTATIONS["leapfrog_jmv"]["cupy"] = _leapfrog_jmv_cupy
_IMPLEMENTATIONS["leapfrog_jtmv"]["cupy"] = _leapfrog_jtmv_cupy
_IMPLEMENTATIONS["verlet_forward"]["cupy"] = _verlet_forward_cupy
_IMPLEMENTATIONS["verlet_jmv"]["cupy"] = _verlet_jmv_cupy
_IMPLEMENTATIONS["verlet_jtmv"]["cupy"] = _verlet_jtmv_cupy
