r"""What a convolution kernel does with its result before it writes it (a fused epilogue).

The symmetric (parabolic) residual step ``Y + h F(Y) = Y − h Kᵀ σ(K Y + b)``
(Ruthotto & Haber, JMIV 2019, eq. 7 with forward Euler, eq. 2) and its linearized
and adjoint steps chain convolutions with element-wise passes: bias + σ after
``K Y``, ``σ' ⊙`` after ``K W``, ``Y − h ·`` after ``Kᵀ S``.  Done apart, each
pass reads and writes a state-sized array once more (B2: 8 MiB per pass, about a
fifth of the block's time).  An :class:`Epilogue` tells the convolution kernel to
apply them to its accumulators on the way out:

.. math::

    V = α\,C + A + b_o, \qquad
    \mathrm{out} = \begin{cases} V & \text{(no activation)} \\
                                 σ(V) & \text{(activation, no } S) \\
                                 σ'(x)\big|_{σ(x) = S} ⊙ V & \text{(activation and } S) \end{cases}

where ``C`` is the convolution's result, ``A`` an array added to it (``add``, may
be the output buffer itself: accumulate in place), ``b_o`` a per-channel bias
(axis 1) and ``S = σ(x)`` a kept activation value whose derivative is a function
of it (tanh ``1 − S²``, sigmoid ``S(1 − S)``, relu ``[S > 0]``, identity 1).

:func:`apply_epilogue` is the array-module reference (numpy or cupy), used by
engines whose kernels have no fused epilogue and by the tests that compare the
fused kernels with it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from meganet.backend import get_array_module

__all__ = ["Epilogue", "apply_epilogue", "check_epilogue"]


@dataclass(frozen=True)
class Epilogue:
    """``out = f(α C + add + bias)``, see the module docstring.

    Attributes
    ----------
    alpha : float
        Scale of the convolution's result.
    add : array like the output, or None
        Added after scaling; may be the output buffer (in-place accumulation).
    bias : array, shape (C_out,), or None
        Per-channel bias.
    activation : str or Activation or None
        With ``dsigma_from=None``: ``out = σ(V)``.
    dsigma_from : array like the output, or None
        ``S = σ(x)``: ``out = σ'(x) ⊙ V`` (needs an activation whose derivative
        is a function of its value).
    """

    alpha: float = 1.0
    add: object = None
    bias: object = None
    activation: object = None
    dsigma_from: object = None

    @property
    def trivial(self):
        """True when the epilogue writes the convolution's result unchanged."""
        return (self.alpha == 1.0 and self.add is None and self.bias is None and self.activation is None)


def check_epilogue(ep, out_shape, dtype, xp):
    """Validate ``ep`` for an output of ``out_shape``/``dtype`` on array module ``xp`` (None passes)."""
    if ep is None:
        return None
    if not isinstance(ep, Epilogue):
        raise TypeError(f"epilogue must be a meganet.kernels.epilogue.Epilogue or None, got {type(ep).__name__}")
    if not isinstance(ep.alpha, numbers.Real) or isinstance(ep.alpha, bool) or not math.isfinite(ep.alpha):
        raise TypeError(f"epilogue.alpha must be a finite real number, got {ep.alpha!r}")
    for name, a in (("add", ep.add), ("dsigma_from", ep.dsigma_from)):
        if a is None:
            continue
        if get_array_module(a) is not xp:
            raise TypeError(f"epilogue.{name} must live on the same backend as the inputs")
        if tuple(a.shape) != tuple(out_shape) or a.dtype != dtype:
            raise ValueError(f"epilogue.{name} must have shape {tuple(out_shape)} and dtype {dtype}, "
                             f"got {tuple(a.shape)} and {a.dtype}")
    if ep.bias is not None:
        b = ep.bias
        if get_array_module(b) is not xp:
            raise TypeError("epilogue.bias must live on the same backend as the inputs")
        if b.ndim != 1 or b.shape[0] != out_shape[1] or b.dtype != dtype:
            raise ValueError(f"epilogue.bias must have shape ({out_shape[1]},) and dtype {dtype}, "
                             f"got {tuple(b.shape)} and {b.dtype}")
    if ep.activation is not None:
        from meganet.activations import get_activation

        act = get_activation(ep.activation)
        if ep.dsigma_from is not None and not act.derivative_from_value_available:
            raise ValueError(f"epilogue.dsigma_from needs an activation whose derivative is a function of its "
                             f"value (tanh, sigmoid, relu, identity), got {act!r}")
    elif ep.dsigma_from is not None:
        raise ValueError("epilogue.dsigma_from needs epilogue.activation (which σ' to take)")
    return ep


def apply_epilogue(C, ep, out=None):
    """``f(α C + add + bias)`` (reference, array-module generic); written into ``out`` when given.

    ``C`` is not modified unless it is ``out``.
    """
    if ep is None or ep.trivial:
        if out is None or out is C:
            return C
        out[...] = C
        return out
    xp = get_array_module(C)
    V = C * C.dtype.type(ep.alpha) if ep.alpha != 1.0 else C
    if ep.add is not None:
        V = V + ep.add
    if ep.bias is not None:
        V = V + ep.bias.reshape((1, ep.bias.shape[0]) + (1,) * (C.ndim - 2))
    if ep.activation is not None:
        from meganet.activations import get_activation

        act = get_activation(ep.activation)
        V = act.derivative_from_value(ep.dsigma_from) * V if ep.dsigma_from is not None else act.value(V)
    V = xp.asarray(V, dtype=C.dtype)
    if out is None:
        return V if V is not C else V.copy()
    out[...] = V
    return out
