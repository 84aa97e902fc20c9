r"""Fused bias + activation (+ derivative) kernels.

.. math:: S = σ(U + b), \qquad D = σ'(U + b),

with one bias per channel (axis 1: ``U`` of shape ``(n, C)`` or
``(n, C, *spatial)``, ``b`` of shape ``(C,)``) or no bias.  The layers compute
``U + b``, ``σ``, ``σ'`` as three or four passes over the data; the compiled
engines do it in one (numba: parallel loop with a vectorizable ``tanh``;
cupy: one ``ElementwiseKernel``).

Activations are given by name (``'identity'``, ``'tanh'``, ``'relu'``,
``'smooth_relu'``, ``'sigmoid'``) or as an
:class:`~meganet.activations.Activation` of one of these types (the smoothed
ReLU's ``eta`` is read from the instance).  The reference evaluates the
activation objects of :mod:`meganet.activations`, so the compiled kernels are
tested against exactly the formulas the elements use.
"""

from __future__ import annotations

from meganet.backend import get_array_module
from meganet.core.validation import check_bool

from . import dispatch

__all__ = ["ACT_CODES", "activation_code", "supports", "bias_activation", "derivative_from_value_mul"]

#: Activation name -> integer code used inside the compiled kernels.
ACT_CODES = {"identity": 0, "tanh": 1, "relu": 2, "smooth_relu": 3, "sigmoid": 4}


def _name(activation):
    return activation if isinstance(activation, str) else getattr(activation, "name", None)


def supports(activation):
    """True if the compiled kernels implement ``activation`` (a name or instance)."""
    from meganet.activations import ACTIVATIONS

    name = _name(activation)
    if name not in ACT_CODES:
        return False
    # a user subclass that reuses a built-in name is not the built-in formula
    return isinstance(activation, str) or type(activation) is ACTIVATIONS[name]


def activation_code(activation):
    """``(code, eta)`` of an activation name or instance for the compiled kernels.

    Raises
    ------
    ValueError
        For activations without a compiled kernel.
    """
    if not supports(activation):
        raise ValueError(f"activation must be one of {sorted(ACT_CODES)} (or its built-in instance), "
                         f"got {activation!r}")
    eta = 0.1 if isinstance(activation, str) else float(getattr(activation, "eta", 0.1))
    return ACT_CODES[_name(activation)], eta


def _check(U, b, out, dsigma_out, xp):
    if U.ndim < 2:
        raise ValueError(f"U must have shape (n_examples, channels, ...), got {tuple(U.shape)}")
    if b is not None and (b.ndim != 1 or b.shape[0] != U.shape[1] or b.dtype != U.dtype):
        raise ValueError(f"b must have shape ({U.shape[1]},) and dtype {U.dtype}, got {tuple(b.shape)} ({b.dtype})")
    for name, buf in (("out", out), ("dsigma_out", dsigma_out)):
        if buf is None:
            continue
        if get_array_module(buf) is not xp:
            raise TypeError(f"{name} must live on the same backend as U")
        if tuple(buf.shape) != tuple(U.shape) or buf.dtype != U.dtype or not buf.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous with shape {tuple(U.shape)} and dtype {U.dtype}, "
                             f"got {tuple(buf.shape)} ({buf.dtype})")
        if not getattr(buf.flags, "writeable", True):  # cupy arrays have no such flag
            raise ValueError(f"{name} must be writable (got a read-only array)")


def _store(a, out):
    if out is None:
        return a
    out[...] = a
    return out


def _bias_activation_ref(U, b, activation, derivative, out, dsigma_out):
    from meganet.activations import get_activation

    act = get_activation(activation)
    if b is not None:
        U = U + b.reshape((1, b.shape[0]) + (1,) * (U.ndim - 2))
    if derivative:
        S, D = act.value_and_derivative(U)
        return _store(S, out), _store(D, dsigma_out)
    return _store(act.value(U), out), None


def bias_activation(U, b=None, activation="tanh", *, derivative=True, out=None, dsigma_out=None, engine="auto"):
    """``S = σ(U + b)`` and (optionally) ``D = σ'(U + b)`` in one pass.

    Parameters
    ----------
    U : array, shape (n_examples, C) or (n_examples, C, *spatial)
    b : array, shape (C,), or None
        Per-channel bias, same dtype as U.
    activation : str or Activation
        ``'identity'``, ``'tanh'``, ``'relu'``, ``'smooth_relu'``, ``'sigmoid'``.
    derivative : bool
        Also return ``σ'``.
    out, dsigma_out : arrays like U, optional
        C-contiguous output buffers.
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    S : array like U
    D : array like U, or None when ``derivative=False``
    """
    xp = get_array_module(U, b, names=["U", "b"])
    _check(U, b, out, dsigma_out, xp)
    if not supports(activation):
        if engine not in ("auto", "numpy"):
            activation_code(activation)  # raises with the list of supported activations
        return _bias_activation_ref(U, b, activation, derivative, out, dsigma_out)
    impl = dispatch(_IMPLEMENTATIONS, "bias_activation", engine, xp, _LOADERS)
    return impl(U, b, activation, check_bool("derivative", derivative), out, dsigma_out)


def _derivative_from_value_mul_ref(S, W, activation):
    from meganet.activations import get_activation

    return get_activation(activation).derivative_from_value(S) * W


def derivative_from_value_mul(S, W, activation="tanh", *, engine="auto"):
    """``σ'(x) ⊙ W`` from ``S = σ(x)``, in one pass (the products of a layer that keeps ``σ(x)`` only).

    For the activations whose derivative is a function of their value
    (:attr:`~meganet.activations.Activation.derivative_from_value_available`:
    tanh ``1 − S²``, sigmoid ``S(1 − S)``, relu ``[S > 0]``, identity 1).

    Parameters
    ----------
    S, W : arrays of the same shape and dtype
    activation : str or Activation
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    array like W
    """
    from meganet.activations import get_activation

    xp = get_array_module(S, W, names=["S", "W"])
    if tuple(S.shape) != tuple(W.shape) or S.dtype != W.dtype:
        raise ValueError(f"S and W must have the same shape and dtype, got {tuple(S.shape)} ({S.dtype}) and "
                         f"{tuple(W.shape)} ({W.dtype})")
    act = get_activation(activation)
    if not act.derivative_from_value_available:
        raise ValueError(f"activation must have a derivative that is a function of its value "
                         f"(tanh, sigmoid, relu, identity), got {activation!r}")
    if not supports(act):
        if engine not in ("auto", "numpy"):
            activation_code(act)  # raises with the list of supported activations
        return _derivative_from_value_mul_ref(S, W, act)
    return dispatch(_IMPLEMENTATIONS, "derivative_from_value_mul", engine, xp, _LOADERS)(S, W, act)


#: op -> {engine: implementation}; compiled engines add their entries.
#: The product ``σ'(S) ⊙ W`` is two elementwise cupy operations on the device;
#: the reference serves as the cupy engine (no separate kernel).
_IMPLEMENTATIONS = {"bias_activation": {"numpy": _bias_activation_ref},
                    "derivative_from_value_mul": {"numpy": _derivative_from_value_mul_ref,
                                                  "cupy": _derivative_from_value_mul_ref}}
_LOADERS = {"numba": "._activation_numba", "cupy": "._activation_cupy"}
