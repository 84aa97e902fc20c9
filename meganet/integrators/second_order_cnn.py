r"""Second-order CNN: leapfrog for ``∂_t² Y = F_sym(θ(t), Y)`` (Ruthotto & Haber, JMIV 2019, §3.2;
Meganet.m ``integrators/LeapFrogNN.m``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ._reversible import ReversibleIntegrator
from .leapfrog import LeapfrogState, LeapfrogStateMaps
from .parabolic_cnn import symmetric_conv_layer

__all__ = ["SecondOrderCNN", "SecondOrderCNNStepCache"]


@dataclass
class SecondOrderCNNStepCache:
    """What step ``j`` needs for its linearization and adjoint."""

    Y: object  #: Y_j, input of the layer, (n_examples, C, H, W)
    layer: object  #: cache of F_sym(θ_j, Y_j)


class SecondOrderCNN(LeapfrogStateMaps, ReversibleIntegrator):
    r"""Second-order CNN block (leapfrog),

    .. math::
        Y_{j+1} = 2Y_j − Y_{j−1} + h^2\,F_\mathrm{sym}(θ(t_j), Y_j), \qquad Y_{−1} = Y_0,

    ``j = 0, …, N−1``, ``h = T/N``, with the symmetric convolution layer
    ``F_sym(θ, Y) = −K(θ)ᵀ σ(N(K(θ)Y + b))`` (:func:`symmetric_conv_layer`):
    the leapfrog discretization of the nonlinear wave equation
    ``∂_t² Y = F_sym(θ(t), Y)`` with zero initial velocity (Ruthotto & Haber,
    "Deep neural networks motivated by partial differential equations",
    JMIV 2019, §3.2, "second-order CNN", one of the two hyperbolic CNNs;
    Meganet.m ``integrators/LeapFrogNN.m`` with a ``doubleSymLayer``, case
    ``'leapfrog'`` of ``examples/2018-jmiv/cnnDriver.m``).

    Sign convention: ``+h²F_sym`` as in the paper and ``LeapFrogNN.m``.
    Since ``J_Y F_sym = −Kᵀ diag(σ') K`` is negative semidefinite (without
    normalization), the linearization is ``Y'' = −A Y`` with ``A ⪰ 0``: an
    oscillation that neither grows nor decays (stable for ``h²‖A‖ ≤ 4``).

    Weights in time: θ is ``(θ_0, …, θ_{n_basis−1})``, each laid out as in
    :class:`~meganet.layers.SymmetricLayer`, and ``θ(t_j) = Σ_k B_jk θ_k``
    (:class:`~meganet.integrators.time_basis.TimeBasis`).

    The scheme is explicitly invertible,
    ``Y_{j−1} = 2Y_j − Y_{j+1} + h²F_sym(θ(t_j), Y_j)``, so with
    ``reversible=True`` the forward pass keeps only ``(Y_{N−1}, Y_N)`` and
    ``JTmv`` recomputes the states backwards during the adjoint sweep (``Jmv``
    recomputes them forwards); see :mod:`meganet.integrators._reversible`.

    Derivatives (one step, written once from the layer's private products):
    ``dY_{j+1} = 2dY_j − dY_{j−1} + h² J_F[dθ_j, dY_j]``; adjoint with
    ``(g, V) = J_Fᵀ W_{j+1}``: ``W_j ← W_j + 2W_{j+1} + h²V``,
    ``W_{j−1} = −W_{j+1}``, ``dθ_j = h² g``.

    Parameters
    ----------
    channels : int
    image_shape : (int, int)
    n_steps : int ≥ 1
    final_time : float > 0
        ``T``; ``h = T/N``.
    activation : str or Activation, default 'relu'
    normalization : {'tv', 'batch', 'instance', None}, default 'tv'
    affine : bool, default True
        Trainable scale and bias of the normalization.
    bias : bool or None, default None
        Bias after ``K`` (default: only without normalization).
    kernel_size : int, default 3
    boundary : {'zero', 'periodic'}, default 'zero'
    basis : None, 'identity', 'constant', TimeBasis or array (n_steps, n_basis)
    reversible : bool, default False

    Shapes
    ------
    Y : (n_examples, channels, H, W) → Z : same shape.
    """

    def __init__(self, channels, image_shape, *, n_steps, final_time, activation="relu", normalization="tv",
                 affine=True, bias=None, kernel_size=3, boundary="zero", basis=None, reversible=False):
        self.layer = symmetric_conv_layer(channels, image_shape, activation=activation, normalization=normalization,
                                          affine=affine, bias=bias, kernel_size=kernel_size, boundary=boundary)
        self.channels = self.layer.transform.in_channels
        self.image_shape = self.layer.transform.image_shape
        self.normalization = normalization
        self.shape_in = self.shape_out = tuple(self.layer.shape_in)
        self._setup_integrator(n_steps=n_steps, final_time=final_time, basis=basis, reversible=reversible,
                               n_theta_step=self.layer.n_theta)
        self.h2 = self.h * self.h

    def _init_step(self, rng):
        return np.asarray(self.layer._init_theta(rng), dtype=np.float64).reshape(-1)

    # ---------------- state maps: LeapfrogStateMaps; one step, written once
    def _step(self, w, s, need_cache=True):
        F, c = self.layer._forward(w, s.cur)
        nxt = 2.0 * s.cur - s.prev + self.h2 * F
        return LeapfrogState(prev=s.cur, cur=nxt), (SecondOrderCNNStepCache(Y=s.cur, layer=c) if need_cache else None)

    def _unstep(self, w, s):
        # s = (Y_j, Y_{j+1}) → (Y_{j−1}, Y_j)
        F, c = self.layer._forward(w, s.prev)
        prev = 2.0 * s.prev - s.cur + self.h2 * F
        return LeapfrogState(prev=prev, cur=s.prev), SecondOrderCNNStepCache(Y=s.prev, layer=c)

    def _step_jmv(self, w, dw, c, ds):
        """``dY_{j+1} = 2dY_j − dY_{j−1} + h² J_F[dθ_j, dY_j]``."""
        dF = self.layer._Jmv(dw, ds.cur, w, c.Y, c.layer)
        return LeapfrogState(prev=ds.cur, cur=2.0 * ds.cur - ds.prev + self.h2 * dF)

    def _step_adjoint(self, w, c, Ws, out, per_example, propagate):
        """Adjoint of :meth:`_step_jmv`: ``(g, V) = J_Fᵀ W_{j+1}``,
        ``W_j ← W_j + 2W_{j+1} + h²V``, ``W_{j−1} = −W_{j+1}``; ``h² g`` goes into ``out``."""
        want_theta = out is not None
        cur = None
        if want_theta or propagate:
            g, V = self.layer._JTmv(Ws.cur, w, c.Y, c.layer, want_theta, propagate, per_example)
            if want_theta:
                out[...] = self.h2 * g
            if propagate:
                cur = Ws.prev + 2.0 * Ws.cur + self.h2 * V
        return LeapfrogState(prev=-Ws.cur, cur=cur)

    # ------------------------------------------------ second-order products
    @property
    def has_second_order(self):
        return self.layer.has_second_order

    def second_order_missing(self):
        return self.layer.second_order_missing()

    def _step_jmv_inverse(self, w, dw, c, ds_next):
        """``dY_{j−1} = 2dY_j − dY_{j+1} + h² J_F[dθ_j, dY_j]``."""
        cur = ds_next.prev
        dF = self.layer._Jmv(dw, cur, w, c.Y, c.layer)
        return LeapfrogState(prev=2.0 * cur - ds_next.cur + self.h2 * dF, cur=cur)

    def _step_second(self, w, dw, c, ds, Ws, dWs):
        """Change of :meth:`_step_adjoint`: ``(δg, δV) = J_Fᵀ δW_{j+1} + S_F(W_{j+1}; dθ_j, dY_j)`` (the
        layer's second-order step), ``δW_j = δW_j' + 2δW_{j+1} + h²δV``, ``δW_{j−1} = −δW_{j+1}``,
        weight part ``h² δg``."""
        dW_cur = dWs.cur if dWs is not None else None
        g, V = self.layer._second_order_step(Ws.cur, dW_cur, dw, ds.cur, w, c.Y, c.layer)
        xp = get_array_module(Ws.cur)
        cur = self.h2 * V if V is not None else xp.zeros_like(Ws.cur)
        if dWs is not None:
            cur = cur + dWs.prev + 2.0 * dWs.cur
            prev = -dWs.cur
        else:
            prev = xp.zeros_like(Ws.cur)
        return (self.h2 * g if g is not None else None), LeapfrogState(prev=prev, cur=cur)

    # ------------------------------------------------------ analysis tools
    def reconstruct_input(self, theta, cache):
        """``Y_0`` recomputed backwards from ``cache.final`` without storing states."""
        theta = self._validated_theta_cache(theta, cache)
        s = cache.final
        for s in self._backward_states(theta, cache.final):
            pass
        return s.cur

    def __repr__(self):
        return (f"SecondOrderCNN(channels={self.channels}, image_shape={self.image_shape}, n_steps={self.n_steps}, "
                f"final_time={self.final_time:g}, activation={self.layer.activation!r}, "
                f"normalization={self.normalization!r}, basis={self.basis!r}, reversible={self.reversible})")
