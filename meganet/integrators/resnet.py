r"""Residual network as forward Euler: ``Y_{j+1} = Y_j + h F(θ(t_j), Y_j)`` (Meganet.m ``ResNN.m``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import get_array_module
from .block import TimeSteppingBlock

__all__ = ["ResNet", "ResNetCache"]


@dataclass
class ResNetCache:
    """States and layer caches of a forward Euler pass."""

    states: list  #: Y_0, …, Y_{N−1}: the input of the layer at each step
    layer_caches: list  #: the layer's cache at each step


class ResNet(TimeSteppingBlock):
    r"""Residual network block: forward Euler for ``Y'(t) = F(θ(t), Y(t))``.

    .. math:: Y_{j+1} = Y_j + h\,F(θ(t_j), Y_j),\qquad j = 0, …, N−1,
              \qquad h = T/N,\quad Z = Y_N,

    with ``θ(t_j) = Σ_k B_jk θ_k`` given by a
    :class:`~meganet.integrators.time_basis.TimeBasis` (He et al., "Deep
    residual learning for image recognition", CVPR 2016; read as an ODE
    discretization in Haber & Ruthotto, "Stable architectures for deep neural
    networks", Inverse Problems 2017, §2; Meganet.m
    ``integrators/ResNN.m``).

    Derivatives (each written once):

    * ``Jmv``: ``dY_{j+1} = dY_j + h (J_θ F_j · dθ(t_j) + J_Y F_j · dY_j)``,
      ``dθ(t_j) = Σ_k B_jk dθ_k``.
    * ``JTmv``: the forward loop in reverse, ``W_j = W_{j+1} + h J_Y F_jᵀ W_{j+1}``
      and ``dθ_k += h B_jk J_θ F_jᵀ W_{j+1}`` (per example when asked).

    Parameters
    ----------
    layer : Element
        The right-hand side ``F``; ``shape_in`` must equal ``shape_out``.
    n_steps : int
        Number of steps N ≥ 1.
    final_time : float
        T > 0.
    basis : None, 'identity', 'constant', TimeBasis or array (n_steps, n_basis)
        Weights in time (default identity: one weight set per step).

    Shapes
    ------
    theta : (n_basis · layer.n_theta,);  Y : (n_examples, *layer.shape_in) → Z : same shape.

    Examples
    --------
    >>> from meganet.layers import SingleLayer
    >>> from meganet.transforms import Dense
    >>> net = ResNet(SingleLayer(Dense(4, 4)), n_steps=16, final_time=1.0)
    >>> net.n_theta == 16 * 20, net.h
    (True, 0.0625)
    """

    def _forward(self, theta, Y):
        C = self.coefficients(theta)
        h, F = self.h, self.layer
        states, caches = [], []
        for j in range(self.n_steps):
            states.append(Y)
            K, c = F._forward(self.basis.weights_at(C, j), Y)
            caches.append(c)
            Y = Y + h * K
        return Y, ResNetCache(states=states, layer_caches=caches)

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        """``dZ = J_θ dθ + J_Y dY`` by the forward-mode recursion above."""
        C = self.coefficients(theta)
        dC = self.coefficients(dtheta) if dtheta is not None and self.layer.n_theta > 0 else None
        h, F = self.h, self.layer
        for j in range(self.n_steps):
            dth = self.basis.weights_at(dC, j) if dC is not None else None
            if dth is None and dY is None:
                continue
            dK = F._Jmv(dth, dY, self.basis.weights_at(C, j), cache.states[j], cache.layer_caches[j])
            dY = h * dK if dY is None else dY + h * dK
        if dY is None:
            xp = get_array_module(Y)
            dY = xp.zeros((Y.shape[0], *self.shape_out), dtype=Y.dtype)
        return dY

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        """``(J_θᵀ W, J_Yᵀ W)``: the forward loop run backwards (Meganet.m ``ResNN.JTmv``)."""
        xp = get_array_module(Y)
        C = self.coefficients(theta)
        h, F = self.h, self.layer
        want_theta = need_theta and F.n_theta > 0
        G = None
        if want_theta:
            shape = (Y.shape[0], self.basis.n_basis, F.n_theta) if per_example else (self.basis.n_basis, F.n_theta)
            G = xp.zeros(shape, dtype=Y.dtype)
        for j in range(self.n_steps - 1, -1, -1):
            want_Y = need_Y or j > 0
            if not (want_theta or want_Y):
                break
            dth, dYj = F._JTmv(W, self.basis.weights_at(C, j), cache.states[j], cache.layer_caches[j],
                               want_theta, want_Y, per_example)
            if want_theta and dth is not None:
                self.basis.add_adjoint(G, j, dth, scale=h)
            if want_Y and dYj is not None:
                W = W + h * dYj
        dtheta = None
        if G is not None:
            dtheta = G.reshape(Y.shape[0], -1) if per_example else G.reshape(-1)
        return dtheta, (W if need_Y else None)
