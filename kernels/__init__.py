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
    cupy for cupy arrays, numba when installed, numpy otherwise (also when
    numba's JIT is disabled with ``NUMBA_DISABLE_JIT=1``: one warning says so).

Read-only inputs (memory maps, ``np.frombuffer``) work on every engine, without
copies (see :func:`dispatch`).

Threads and reproducibility
---------------------------
The numba kernels run on numba's thread pool (``NUMBA_NUM_THREADS``,
``numba.set_num_threads``).  Each example's forward, linearized and adjoint
state, and every convolution output, normalization statistic, pooled value and
activation, is computed in the same order whatever the number of threads, so
it has the same bits.  The exceptions are the reductions over examples: the
θ-adjoints of the fused time-step sweeps (dense and antisymmetric ResNet,
leapfrog, Verlet) and the convolution weight gradient keep one partial sum per
thread and add them at the end, so a gradient computed with 1, 2 or 64 threads
differs in the last bits (relative ~1e-16), and a training run amplifies the
difference.  :func:`set_deterministic` (or ``MEGANET_DETERMINISTIC=1``) fixes
the chunks of these reductions by the problem size alone: bitwise the same
gradients for any number of threads, at no measurable cost on 2 cores for the
benchmark sizes (it is not the default because it lets at most 64 threads, and
for batches under 128 examples one thread, share a reduction).  The numba
kernels make no BLAS calls; the numpy code of the elements (``Dense``
products, losses, the numpy engine's references) does, and OpenBLAS splits the
long reductions of a θ-gradient ``Yᵀ V`` over its own threads
(``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``, not ``NUMBA_NUM_THREADS``):
pin that count too to reproduce a training run bitwise on another machine.

``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` when meganet loads numba (see
:func:`_prepare_threads`); the first compile of a kernel is announced once on
stderr (see :func:`set_compile_message`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os

import numpy as np

__all__ = ["ENGINES", "available_engines", "resolve_engine", "numba_available", "dispatch", "warmup",
           "release_buffers", "set_compile_message", "COMPILE_MESSAGE", "set_deterministic", "deterministic",
           "DETERMINISTIC_CHUNKS", "DETERMINISTIC_PARTIAL_BYTES"]

ENGINES = ("auto", "numpy", "numba", "cupy")

_INSTALL_HINT = {
    "numba": "pip install 'meganet[numba]'",
    "cupy": "pip install 'meganet[gpu]' (needs a CUDA device)",
}


def _have(module):
    return importlib.util.find_spec(module) is not None


def numba_available():
    """True if numba can be imported (the ``numba`` engine is usable)."""
    return _have("numba")


def _prepare_threads():
    """Defaults for numba's threads, set before meganet first loads a numba kernel.

    ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it (``os.environ.setdefault``):
    with numba's OpenMP threading layer (libgomp, which reads the variable when it
    is loaded, at the first parallel kernel), the default policy lets the idle
    threads of the pool spin after every parallel region, taking the cores from
    the thread that continues and from other processes.  On a busy 2-core machine
    (load ≈ 3.5) the default training job took 110.7 s instead of 56.1 s and a
    short Adam run 9.5 s instead of 1.3 s.  A program that loaded libgomp before
    (through another library) keeps the setting it started with.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


#: Deterministic mode (see :func:`set_deterministic`): at most this many chunks per reduction,
DETERMINISTIC_CHUNKS = 64
#: and at most this many bytes of partial sums.
DETERMINISTIC_PARTIAL_BYTES = 64 << 20
_DETERMINISTIC = {"enabled": None}


def set_deterministic(enabled=True):
    """Make the numba kernels' sums over examples independent of the number of threads (or not).

    The parallel reductions over examples — the θ-adjoints of the fused
    time-step sweeps (dense ResNet, antisymmetric ResNet, leapfrog, Verlet) and
    the convolution weight gradient — keep one partial sum per chunk of
    examples and add the partial sums in chunk order.  By default there is one
    chunk per numba thread, so the rounding of a gradient depends on
    ``NUMBA_NUM_THREADS`` / ``numba.set_num_threads`` (relative differences of
    about 1e-16, which a training run amplifies).  Every other kernel
    (forward and linearized sweeps, convolutions, normalization statistics,
    pooling, activations) gives the same bits for any number of threads.

    In deterministic mode the chunks are fixed by the problem size alone: at
    most :data:`DETERMINISTIC_CHUNKS` chunks of at least 128 examples (time
    steps) or 1 example (convolution), and at most
    :data:`DETERMINISTIC_PARTIAL_BYTES` of partial sums, so the same inputs
    give the same bits with 1, 2 or 64 threads (on the same machine and build:
    another CPU or SIMD width may still round differently).  Its cost on 2
    cores is nil for the benchmark sizes (B1 gradient 0.97×, B2 gradient
    1.00× of the default time) and for batches of 256 to 5000 examples; a batch
    below 128 examples runs the adjoint sweep's reduction on one thread, and
    at most 64 threads share a reduction.

    The environment variable ``MEGANET_DETERMINISTIC=1`` selects it too; this
    function overrides the variable (``None`` returns to it).
    """
    from meganet.core.validation import check_bool

    _DETERMINISTIC["enabled"] = None if enabled is None else check_bool("enabled", enabled)


def deterministic():
    """True if the reductions over examples use a thread-independent order (see :func:`set_deterministic`)."""
    enabled = _DETERMINISTIC["enabled"]
    if enabled is None:
        return os.environ.get("MEGANET_DETERMINISTIC", "").strip().lower() in ("1", "true", "yes", "on")
    return enabled


def _reduction_bounds(n_items, min_chunk=1, partial_bytes=0):
    """Boundaries (int64, ``k + 1`` values from 0 to ``n_items``) of the chunks of items (examples, or
    blocks of examples) whose partial sums (``partial_bytes`` each) a parallel reduction keeps apart
    and then adds in chunk order: one chunk per numba thread, or, in deterministic mode
    (:func:`set_deterministic`), chunks of at least ``min_chunk`` items fixed by the sizes alone."""
    if deterministic():
        k = min(n_items // min_chunk, DETERMINISTIC_CHUNKS,
                max(1, DETERMINISTIC_PARTIAL_BYTES // max(partial_bytes, 1)))
    else:
        import numba

        k = min(n_items, numba.get_num_threads())
    return np.linspace(0, n_items, max(k, 1) + 1).round().astype(np.int64)


#: The one-line notice printed (once per process) when a numba kernel of meganet is compiled.
COMPILE_MESSAGE = "meganet: compiling numba kernels (first run only, cached afterwards) ..."
_NOTICE = {"enabled": None, "shown": False}


def set_compile_message(enabled=True):
    """Show (default) or silence the notice :data:`COMPILE_MESSAGE` on stderr.

    numba compiles each kernel the first time it is used (2–20 s per kernel
    and dtype; about 40 s before the first iteration of the default training
    job) and caches it on disk; meganet says so once, when the first kernel is
    actually compiled (numba's ``numba:compile`` event fires on a cache miss
    only: nothing is printed when the kernels are loaded from the cache).  The
    environment variable ``MEGANET_QUIET=1`` silences it too; this function
    overrides the variable.
    """
    from meganet.core.validation import check_bool

    _NOTICE["enabled"] = check_bool("enabled", enabled)


def _compile_notice(dispatcher):
    """numba is about to compile ``dispatcher`` (a cache miss): print the notice once if it is a kernel of ours."""
    if _NOTICE["shown"]:
        return
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", None) or ""
    if not module.startswith(__name__ + "."):
        return  # a user's own numba function
    enabled = _NOTICE["enabled"]
    if enabled is None:
        enabled = os.environ.get("MEGANET_QUIET", "").strip().lower() in ("", "0", "false", "no")
    if enabled:
        _NOTICE["shown"] = True
        import sys

        print(COMPILE_MESSAGE, file=sys.stderr, flush=True)


@functools.cache
def _jit_disabled():
    """True when numba is installed but its JIT is off (``NUMBA_DISABLE_JIT=1``, read when numba is
    imported, so the answer is computed once).

    The numba kernels then run as Python loops, hundreds of times slower than
    the numpy engine; ``engine='auto'`` uses the numpy engine instead and says
    so once (``engine='numba'`` still runs them, for stepping through a kernel
    in a debugger).
    """
    import numba

    if not numba.config.DISABLE_JIT:
        return False
    import warnings

    warnings.warn("meganet: numba's JIT is disabled (NUMBA_DISABLE_JIT), so its kernels would run as Python "
                  "loops; engine='auto' uses the numpy engine instead (engine='numba' runs the kernels as "
                  "Python, for debugging)", RuntimeWarning, stacklevel=4)
    return True


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
        return "numba" if _have("numba") and not _jit_disabled() else "numpy"
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


def dispatch(table, op, engine, xp, loaders=None, resolve=None):
    """The implementation of ``op`` for ``engine`` on arrays of module ``xp``.

    Shared by every kernel module.  ``table`` maps ``op -> {engine: function}``;
    compiled engines live in private modules (``_x_numba.py``, ``_x_cupy.py``)
    that add their entries to ``table`` when imported, so numba and cupy are
    imported only when an engine that needs them is resolved.  ``loaders`` maps
    an engine name to the module (relative to this package) that registers it;
    ``resolve`` replaces :func:`resolve_engine` (for tests).

    ``engine='auto'`` falls back to the array-module reference (``'numpy'``,
    which also runs on cupy arrays, on the device) when the resolved engine
    has no implementation of ``op``; asking explicitly for such an engine
    raises ``NotImplementedError``.  Numba entry points are returned wrapped
    so that read-only input arrays reach the kernels as writable aliases of
    the same memory (see :func:`_writable`).
    """
    resolved = (resolve or resolve_engine)(engine, xp)
    impls = table[op]
    impl = impls.get(resolved)
    if impl is None and loaders and resolved in loaders:
        import importlib

        importlib.import_module(loaders[resolved], __name__)
        impl = impls.get(resolved)
    if impl is None:
        if engine == "auto":
            return impls["numpy"]
        raise NotImplementedError(
            f"{op} has no {resolved!r} kernel yet; use engine='numpy' (the array-module reference) or 'auto'"
        )
    if resolved == "numba":
        return _read_only_safe(impl)
    return impl


# ------------------------------------------------------- read-only inputs
class _Alias:
    """Holder of the ``__array_interface__`` of a writable alias (see :func:`_writable`)."""

    __slots__ = ("__array_interface__", "owner")


def _writable(a):
    """``a`` itself, or a writable alias of a read-only array's memory (no copy).

    numba types a read-only array (``flags.writeable`` False: a memory map
    opened with ``mode='r'``, ``np.frombuffer`` of ``bytes``, an array the user
    locked) as a different type: kernels that give a view of an input and a
    private buffer one name fail to compile (``TypingError ... readonly
    array``), and the others would be compiled a second time for every
    combination of read-only arguments.  No numba kernel writes into its
    inputs (``tests/test_kernels_readonly.py`` checks every one, and the
    public functions reject read-only ``out=`` buffers), so handing them an
    alias typed as writable is safe and costs neither a copy nor a compile.
    Dataclass arguments (the cached trajectories) are aliased field by field.
    """
    if isinstance(a, np.ndarray):
        if a.flags.writeable:
            return a
        if a.size == 0:
            return np.empty(a.shape, dtype=a.dtype)
        holder = _Alias()
        iface = dict(a.__array_interface__)
        iface["data"] = (iface["data"][0], False)  # (pointer, read-only flag)
        holder.__array_interface__ = iface
        holder.owner = a  # keeps the memory alive as long as the alias
        return np.asarray(holder)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        fields = {f.name: getattr(a, f.name) for f in dataclasses.fields(a)}
        changed = {k: _writable(v) for k, v in fields.items()
                   if isinstance(v, np.ndarray) and not v.flags.writeable}
        return dataclasses.replace(a, **changed) if changed else a
    return a


_READ_ONLY_SAFE = {}


def _read_only_safe(impl):
    """``impl`` (a numba engine's entry point) taking read-only arrays too (see :func:`_writable`)."""
    entry = _READ_ONLY_SAFE.get(impl)
    if entry is None:
        def entry(*args):
            return impl(*[_writable(a) for a in args])

        entry.__name__ = getattr(impl, "__name__", "entry")
        entry.__doc__ = impl.__doc__
        entry.__wrapped__ = impl
        _READ_ONLY_SAFE[impl] = entry
    return entry


def release_buffers():
    """Drop the numba kernels' pool of reusable trajectory buffers; returns the bytes it held.

    The fused sweeps reuse large output arrays that nothing else refers to any
    more (see :mod:`meganet.kernels._buffers`: it saves the page faults of
    fresh memory, about a third of a B1 forward); the pool keeps at most 1 GiB.
    Call this to give that memory back, e.g. after training.
    """
    from . import _buffers

    held = _buffers.pooled_bytes()
    _buffers.clear()
    return held


def _warm_winograd(conv2d, Y, K, engine):
    """The Winograd kernels of the 3×3 convolutions (``'auto'`` picks them only for large problems)."""
    from . import _conv2d_numba

    old, _conv2d_numba.METHOD = _conv2d_numba.METHOD, "winograd"
    try:
        conv2d.conv2d_forward(Y, K, "zero", engine=engine)
        conv2d.conv2d_symmetric_step(Y, K, None, "tanh", 0.1, "zero", store_S=True, engine=engine)
    finally:
        _conv2d_numba.METHOD = old


def warmup(engine="numba", dtypes=("float64", "float32")):
    """Compile (or load from numba's on-disk cache) every kernel of ``engine``
    for ``dtypes`` on tiny inputs; returns the seconds it took.

    The numba kernels are compiled on first use and cached on disk
    (``cache=True``).  Calling this once before a parallel test run (e.g.
    ``python -c "import meganet.kernels as k; k.warmup()"`` before
    ``pytest -n 2``) lets every worker load the compiled kernels instead of
    compiling them again.
    """
    import time

    import numpy as np

    from . import activation, conv2d, normalization, pooling, timestep

    if engine not in ("numba",):
        raise ValueError(f"engine must be 'numba' (the engine with a JIT compile), got {engine!r}")
    resolve_engine(engine, np)
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for dt in dtypes:
        dt = np.dtype(dt)
        if dt not in (np.float64, np.float32):
            raise ValueError(f"dtypes must be float64 and/or float32, got {dt}")
        Y = rng.standard_normal((2, 3, 4, 4)).astype(dt)
        K = rng.standard_normal((2, 3, 3, 3)).astype(dt)
        Z = conv2d.conv2d_forward(Y, K, "zero", engine=engine)
        conv2d.conv2d_adjoint_input(Z, K, "zero", engine=engine)
        conv2d.conv2d_adjoint_weight(Y, Z, (3, 3), "zero", engine=engine)
        conv2d.conv2d_symmetric_step(Y, K, None, "tanh", 0.1, "zero", store_S=True, engine=engine)
        _warm_winograd(conv2d, Y, K, engine)
        activation.bias_activation(Y, None, "tanh", engine=engine)
        activation.bias_activation(Y, None, "tanh", derivative=False, engine=engine)
        activation.derivative_from_value_mul(Y, Y, "tanh", engine=engine)
        pooling.avg_pool2d_adjoint(pooling.avg_pool2d(Y, 2, engine=engine), 2, engine=engine)
        for kind in normalization.KINDS:
            Yh, r = normalization.standardize(Y, kind, 1e-5, engine=engine)
            normalization.standardize_jmv(Y, Yh, r, kind, engine=engine)
        X, M, b = Y[:, :, 0, 0].copy(), K[:1, :, :, 0].copy(), K[:1, :, 0, 0].copy()
        X3 = np.ascontiguousarray(X[:, :3])
        M3 = np.ascontiguousarray(rng.standard_normal((1, 3, 3)).astype(dt))
        for fwd, jmv, jtmv in ((timestep.resnet_dense_forward, timestep.resnet_dense_jmv, timestep.resnet_dense_jtmv),
                               (timestep.leapfrog_forward, timestep.leapfrog_jmv, timestep.leapfrog_jtmv)):
            tr = fwd(X3, M3, None, 0.1, n_steps=2, engine=engine)
            jmv(M3, tr.states, tr.dsigma, 0.1, dY0=X3, engine=engine)
            jtmv(X3, M3, tr.states, tr.dsigma, 0.1, engine=engine)
        timestep.resnet_dense_jvp(X3, M3, None, 0.1, dY0=X3, dM=M3, n_steps=2, engine=engine)
        z = np.ascontiguousarray(X[:, :2])
        Kv = np.ascontiguousarray(rng.standard_normal((1, 3, 2)).astype(dt))
        tr = timestep.verlet_forward(X3, z, Kv, None, None, 0.1, n_steps=2, engine=engine)
        timestep.verlet_jmv(Kv, tr, 0.1, dy0=X3, engine=engine)
        timestep.verlet_jtmv(X3, z, Kv, tr, 0.1, engine=engine)
        timestep.verlet_jvp(X3, z, Kv, None, None, 0.1, dy0=X3, dK=Kv, n_steps=2, engine=engine)
        del M, b
    return time.perf_counter() - t0
