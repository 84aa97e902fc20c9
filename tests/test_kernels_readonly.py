"""Read-only inputs on every kernel and engine (memory maps, ``np.frombuffer``, locked arrays).

numba types a read-only array differently from a writable one; the kernels
receive read-only inputs as writable aliases of the same memory
(:func:`meganet.kernels._writable`), which is only legal because no kernel
writes into its inputs.  Every operation of every kernel module is called here
with read-only inputs, on the numpy reference and the numba engine: same
results as with writable inputs, inputs untouched.  Read-only ``out=``
buffers are refused.  The element-level counterpart (θ, Y, dθ, dY, W
read-only for every registered element) is ``test_read_only_inputs`` in
``tests/test_generic_elements.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import meganet.kernels as K
from meganet.kernels import activation as A
from meganet.kernels import conv2d as C
from meganet.kernels import normalization as NZ
from meganet.kernels import pooling as P
from meganet.kernels import timestep as T

ENGINES = ["numpy"] + (["numba"] if K.numba_available() else [])
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]


def _locked(a):
    """A read-only copy (``flags.writeable = False``)."""
    r = np.array(a)
    r.flags.writeable = False
    return r


def _frozen(a):
    """An array over an immutable ``bytes`` object (no writable view of it can exist)."""
    return np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=a.dtype).reshape(a.shape)


def _ops(dtype):
    """(name, call(r)) for every kernel operation; ``r`` maps each input array."""
    rng = np.random.default_rng(0)

    def g(*shape):
        return rng.standard_normal(shape).astype(dtype)

    Y, Kc, Z, K1 = g(3, 3, 4, 6), g(2, 3, 3, 3), g(3, 2, 4, 6), g(2, 3, 1, 1)
    X, M, b = g(17, 3), g(4, 3, 3), g(4, 3)
    st, ds = g(4, 17, 3), g(4, 17, 3)
    z, Kv = g(17, 2), g(4, 3, 2)
    tr = T.verlet_forward(X, z, Kv, g(4, 3), g(4, 2), 0.1, engine="numpy")
    inv_b, inv_i = np.abs(g(1, 3, 1, 1)) + 1, np.abs(g(3, 3, 1, 1)) + 1
    g3, b3 = g(4, 3, 3, 3), g(4)  # symmetric step: K (C_mid = 4, C = 3), bias

    def trj(r):
        return dataclasses.replace(tr, **{f.name: r(getattr(tr, f.name)) for f in dataclasses.fields(tr)})

    return [
        ("conv2d_forward", lambda r, e: C.conv2d_forward(r(Y), r(Kc), "zero", engine=e)),
        ("conv2d_forward_1x1", lambda r, e: C.conv2d_forward(r(Y), r(K1), "periodic", engine=e)),
        ("conv2d_adjoint_input", lambda r, e: C.conv2d_adjoint_input(r(Z), r(Kc), "periodic", engine=e)),
        ("conv2d_forward_epilogue", lambda r, e: C.conv2d_forward(
            r(Y), r(Kc), "zero", engine=e, epilogue=C.Epilogue(alpha=-0.5, add=r(Z), bias=r(Kc[:, 0, 0, 0]),
                                                               activation="tanh"))),
        ("conv2d_adjoint_input_dsigma", lambda r, e: C.conv2d_adjoint_input(
            r(Z), r(Kc), "zero", engine=e, epilogue=C.Epilogue(activation="tanh", dsigma_from=r(np.tanh(Y))))),
        ("conv2d_symmetric_step", lambda r, e: C.conv2d_symmetric_step(
            r(Y), r(g3), r(b3), "tanh", 0.1, "periodic", store_S=True, engine=e)),
        ("conv2d_adjoint_weight", lambda r, e: C.conv2d_adjoint_weight(r(Y), r(Z), (3, 3), "zero", engine=e)),
        ("conv2d_adjoint_weight_per_example",
         lambda r, e: C.conv2d_adjoint_weight(r(Y), r(Z), (1, 1), "zero", True, engine=e)),
        ("conv2d_fft_forward", lambda r, e: C.conv2d_fft_forward(r(Y), r(Kc), engine="auto")),
        ("conv2d_fft_adjoint_input", lambda r, e: C.conv2d_fft_adjoint_input(r(Z), r(Kc), engine="auto")),
        ("conv2d_fft_adjoint_weight", lambda r, e: C.conv2d_fft_adjoint_weight(r(Y), r(Z), (3, 3), engine="auto")),
        ("bias_activation", lambda r, e: A.bias_activation(r(Y), r(Y[0, :, 0, 0]), "tanh", engine=e)),
        ("bias_activation_value",
         lambda r, e: A.bias_activation(r(Y), r(Y[0, :, 0, 0]), "smooth_relu", derivative=False, engine=e)),
        ("derivative_from_value_mul", lambda r, e: A.derivative_from_value_mul(r(np.tanh(Y)), r(Y), engine=e)),
        ("avg_pool2d", lambda r, e: P.avg_pool2d(r(Y), 2, engine=e)),
        ("avg_pool2d_adjoint", lambda r, e: P.avg_pool2d_adjoint(r(Y), 2, engine=e)),
        ("standardize_batch", lambda r, e: NZ.standardize(r(Y), "batch", 1e-5, engine=e)),
        ("standardize_instance", lambda r, e: NZ.standardize(r(X), "instance", 1e-5, engine=e)),
        ("standardize_jmv_batch", lambda r, e: NZ.standardize_jmv(r(Y), r(Z[:, :1].repeat(3, 1)), r(inv_b), "batch",
                                                                  engine=e)),
        ("standardize_jmv_instance", lambda r, e: NZ.standardize_jmv(r(Y), r(Y), r(inv_i), "instance", engine=e)),
        ("resnet_dense_forward", lambda r, e: T.resnet_dense_forward(r(X), r(M), r(b), 0.1, engine=e)),
        ("resnet_dense_jmv", lambda r, e: T.resnet_dense_jmv(r(M), r(st), r(ds), 0.1, dY0=r(X), dM=r(M), db=r(b),
                                                             engine=e)),
        ("resnet_dense_jtmv", lambda r, e: T.resnet_dense_jtmv(r(X), r(M), r(st), r(ds), 0.1, engine=e)),
        ("resnet_dense_jvp", lambda r, e: T.resnet_dense_jvp(r(X), r(M), r(b), 0.1, dY0=r(X), dM=r(M), db=r(b),
                                                             engine=e)),
        ("leapfrog_forward", lambda r, e: T.leapfrog_forward(r(X), r(M), r(b), 0.1, engine=e)),
        ("leapfrog_jmv", lambda r, e: T.leapfrog_jmv(r(M), r(st), r(ds), 0.1, dY0=r(X), dM=r(M), engine=e)),
        ("leapfrog_jtmv", lambda r, e: T.leapfrog_jtmv(r(X), r(M), r(st), r(ds), 0.1, engine=e)),
        ("verlet_forward", lambda r, e: T.verlet_forward(r(X), r(z), r(Kv), r(b), None, 0.1, engine=e)),
        ("verlet_jmv", lambda r, e: T.verlet_jmv(r(Kv), trj(r), 0.1, dy0=r(X), dz0=r(z), dK=r(Kv), engine=e)),
        ("verlet_jtmv", lambda r, e: T.verlet_jtmv(r(X), r(z), r(Kv), trj(r), 0.1, engine=e)),
        ("verlet_jvp", lambda r, e: T.verlet_jvp(r(X), r(z), r(Kv), r(b), None, 0.1, dy0=r(X), dK=r(Kv), engine=e)),
    ]


def _arrays(result):
    """The arrays in a result, also inside (nested) dataclasses such as a trajectory's SigmaFromStates."""
    if isinstance(result, np.ndarray):
        return [result]
    if dataclasses.is_dataclass(result):
        return [a for f in dataclasses.fields(result) for a in _arrays(getattr(result, f.name))]
    if isinstance(result, (tuple, list)):
        return [a for r in result if r is not None for a in _arrays(r)]
    return []  # None, an activation's name


_NAMES = [name for name, _ in _ops(np.float64)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", _NAMES)
def test_kernel_read_only_inputs(op, dtype, engine):
    call = dict(_ops(dtype))[op]
    expected = _arrays(call(np.array, engine))
    seen = []

    def frozen(a):
        r = (_frozen if len(seen) % 2 else _locked)(a)  # both kinds of read-only arrays
        seen.append((r, np.array(a)))
        return r

    got = _arrays(call(frozen, engine))
    assert len(got) == len(expected)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape
        assert np.linalg.norm((a - b).ravel()) <= tol * max(np.linalg.norm(b.ravel()), 1e-300)
    for r, original in seen:  # the kernels never write into their inputs
        assert not r.flags.writeable
        np.testing.assert_array_equal(r, original)


def test_writable_alias_shares_memory_and_keeps_writable_arrays():
    a = np.arange(12.0).reshape(3, 4)
    assert K._writable(a) is a  # the hot path: no wrapper, no copy
    r = _frozen(a[:, 1:])
    w = K._writable(r)
    assert w.flags.writeable and np.shares_memory(w, r) and w.strides == r.strides
    np.testing.assert_array_equal(w, r)
    assert K._writable(_locked(np.zeros((0, 3)))).shape == (0, 3)
    tr = T.DenseTrajectory(Z=_locked(a), states=a, dsigma=None)
    tw = K._writable(tr)
    assert tw.Z.flags.writeable and tw.states is a and np.shares_memory(tw.Z, tr.Z)


@pytest.mark.parametrize("engine", ENGINES)
def test_read_only_out_buffers_are_refused(engine):
    Y = np.ones((2, 3, 4, 4))
    with pytest.raises(ValueError, match="out must be writable"):
        C.conv2d_forward(Y, np.ones((3, 3, 3, 3)), "zero", out=_locked(np.empty_like(Y)), engine=engine)
    with pytest.raises(ValueError, match="out must be writable"):
        P.avg_pool2d(Y, 2, out=_locked(np.empty((2, 3, 2, 2))), engine=engine)
    with pytest.raises(ValueError, match="dsigma_out must be writable"):
        A.bias_activation(Y, None, "tanh", dsigma_out=_locked(np.empty_like(Y)), engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_conv_elements_on_memory_mapped_data(engine, tmp_path):
    """The reported failure: Conv2d / ParabolicCNN on a memory map opened read-only."""
    from meganet.integrators import ParabolicCNN
    from meganet.transforms.conv2d import Conv2d

    rng = np.random.default_rng(1)
    path = tmp_path / "Y.npy"
    np.save(path, rng.standard_normal((3, 2, 6, 6)))
    Y = np.load(path, mmap_mode="r")
    assert not Y.flags.writeable
    elements = [Conv2d(2, 3, (6, 6), engine=engine)]
    if engine != "numpy":  # the CNN block takes the default engine ('auto': numba when installed)
        elements.append(ParabolicCNN(2, (6, 6), n_steps=2, final_time=1.0))
    for el in elements:
        theta = el.init_theta(rng=rng)
        Z, cache = el.forward(theta, Y)
        np.testing.assert_allclose(Z, el.forward(theta, np.array(Y))[0], rtol=1e-12, atol=1e-14)
        W = np.ones_like(Z)
        W.flags.writeable = False
        dtheta, dY = el.JTmv(W, theta, Y, cache)
        assert dtheta.shape == theta.shape and dY.shape == Y.shape
