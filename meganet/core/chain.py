"""Composition of elements: ``Z = F_L(θ_L, … F_2(θ_2, F_1(θ_1, Y)))``."""

from __future__ import annotations

from dataclasses import dataclass

from .element import Element
from .layout import Layout

__all__ = ["Chain", "ChainCache"]


@dataclass
class ChainCache:
    """Inputs and caches of each element of a :class:`Chain`, in order."""

    inputs: list
    caches: list


class Chain(Element):
    """Sequential composition of elements with θ split across them.

    ``Y_0 = Y``, ``Y_{i+1} = F_i(θ_i, Y_i)``, ``Z = Y_L``.  The Jacobian is the
    chain rule, ``J = J_L ⋯ J_1``; the adjoint loop mirrors the forward loop in
    reverse (Meganet.m ``NN.m``).  Used for layers built from pieces and for
    plain sequential networks.

    Parameters
    ----------
    elements : sequence of Element
        ``elements[i].shape_out`` must equal ``elements[i+1].shape_in``.
    names : sequence of str, optional
        Names of the parameter parts (default ``"0", "1", …``).
    """

    def __init__(self, elements, *, names=None):
        elements = list(elements)
        if not elements:
            raise ValueError("elements must be a non-empty sequence of Element, got []")
        for i, e in enumerate(elements):
            if not isinstance(e, Element):
                raise TypeError(f"elements[{i}] must be an Element, got {type(e).__name__}")
        for i in range(len(elements) - 1):
            if tuple(elements[i].shape_out) != tuple(elements[i + 1].shape_in):
                raise ValueError(
                    f"elements[{i}] ({type(elements[i]).__name__}) has shape_out {elements[i].shape_out} but "
                    f"elements[{i + 1}] ({type(elements[i + 1]).__name__}) expects shape_in {elements[i + 1].shape_in}"
                )
        names = [str(i) for i in range(len(elements))] if names is None else list(names)
        if len(names) != len(elements):
            raise ValueError(f"names must have {len(elements)} entries, got {len(names)}")
        self.elements = elements
        self.layout = Layout([(n, e.n_theta) for n, e in zip(names, elements)])
        self.shape_in = tuple(elements[0].shape_in)
        self.shape_out = tuple(elements[-1].shape_out)

    def _init_theta(self, rng):
        import numpy as np

        parts = [np.asarray(e._init_theta(rng), dtype=np.float64).reshape(-1) for e in self.elements]
        return np.concatenate(parts) if parts else np.zeros(0)

    def _forward(self, theta, Y):
        inputs, caches = [], []
        Z = Y
        for e, th in zip(self.elements, self.split(theta)):
            inputs.append(Z)
            Z, c = e._forward(th, Z)
            caches.append(c)
        return Z, ChainCache(inputs=inputs, caches=caches)

    def _apply(self, theta, Y):
        Z = Y
        for e, th in zip(self.elements, self.split(theta)):
            Z = e._apply(th, Z)
        return Z

    def _jvp(self, theta, Y, dtheta, dY):
        """Element by element, so that no element keeps a cache longer than its own product."""
        dths = self.split(dtheta) if dtheta is not None else [None] * len(self.elements)
        Z, dZ = Y, dY
        for e, th, dth in zip(self.elements, self.split(theta), dths):
            if dth is not None and dth.shape[-1] == 0:
                dth = None
            if dth is None and dZ is None:
                Z = e._apply(th, Z)
            else:
                Z, dZ = e._jvp(th, Z, dth, dZ)
        if dZ is None:
            xp = _xp(Y)
            dZ = xp.zeros((Y.shape[0], *self.shape_out), dtype=Y.dtype)
        return Z, dZ

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        dths = self.split(dtheta) if dtheta is not None else [None] * len(self.elements)
        dZ = dY
        for e, th, dth, Yi, c in zip(self.elements, self.split(theta), dths, cache.inputs, cache.caches):
            if dth is not None and dth.shape[-1] == 0:
                dth = None
            if dth is None and dZ is None:
                continue
            dZ = e._Jmv(dth, dZ, th, Yi, c)
        if dZ is None:
            xp = _xp(Y)
            dZ = xp.zeros((Y.shape[0], *self.shape_out), dtype=Y.dtype)
        return dZ

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        xp = _xp(Y)
        dtheta = None
        if need_theta:
            shape = (Y.shape[0], self.n_theta) if per_example else (self.n_theta,)
            dtheta = xp.zeros(shape, dtype=Y.dtype)
            dparts = self.split(dtheta)
        thetas = list(self.split(theta))
        for i in range(len(self.elements) - 1, -1, -1):
            e = self.elements[i]
            want_theta = need_theta and e.n_theta > 0
            want_Y = i > 0 or need_Y
            if not (want_theta or want_Y):
                break
            dth, W = e._JTmv(W, thetas[i], cache.inputs[i], cache.caches[i], want_theta, want_Y, per_example)
            if want_theta and dth is not None:
                dparts[i][...] = dth
        return dtheta, (W if need_Y else None)

    # ------------------------------------------------ second-order products
    @property
    def has_second_order(self):
        return all(e.has_second_order for e in self.elements)

    def second_order_missing(self):
        for e in self.elements:
            missing = e.second_order_missing()
            if missing is not None:
                return missing
        return None

    def _second_order_step(self, W, dW, dtheta, dY, theta, Y, cache):
        r"""Second-order adjoint of the composition (the chain rule for Hessians).

        Forward tangent sweep ``dY_{i+1} = J_i (dθ_i, dY_i)``, then the adjoint sweep backwards carrying, besides
        the adjoint ``W_i = J_{Y,i}ᵀ W_{i+1}`` (``W_L = W``), its change (``δW_L = dW``, zero for
        :meth:`second_order_adjoint`)

        .. math:: (d_{θ_i},\ δW_i) = J_iᵀ δW_{i+1} + S_i(W_{i+1};\ dθ_i, dY_i),

        with ``S_i`` the element's own :meth:`second_order_adjoint`; ``d_Y = δW_0``.
        """
        xp = _xp(Y)
        L = len(self.elements)
        thetas = list(self.split(theta))
        dths = list(self.split(dtheta)) if dtheta is not None else [None] * L
        dths = [None if (d is not None and d.shape[-1] == 0) else d for d in dths]
        tangents, d = [], dY
        for e, th, dth, Yi, c in zip(self.elements, thetas, dths, cache.inputs, cache.caches):
            tangents.append(d)
            if dth is not None or d is not None:
                d = e._Jmv(dth, d, th, Yi, c)
        d_theta = xp.zeros(self.n_theta, dtype=Y.dtype)
        dparts = self.split(d_theta)
        for i in range(L - 1, -1, -1):
            e, th, Yi, c = self.elements[i], thetas[i], cache.inputs[i], cache.caches[i]
            g, dW_in = e._second_order_step(W, dW, dths[i], tangents[i], th, Yi, c)
            if g is not None and e.n_theta > 0:
                dparts[i][...] = g
            if i > 0:
                W = e._JTmv(W, th, Yi, c, False, True, False)[1]
            dW = dW_in
        return d_theta, dW


def _add(a, b):
    if a is None:
        return b
    return a if b is None else a + b


def _xp(a):
    from ..backend import get_array_module

    return get_array_module(a)
