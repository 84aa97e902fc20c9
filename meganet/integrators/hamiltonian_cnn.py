r"""Hamiltonian CNN: channels split into ``Y`` and ``Z``, symplectic Verlet steps
(Ruthotto & Haber, JMIV 2019, §3.2; Meganet.m ``integrators/DoubleHamiltonianNN.m``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..core.validation import check_int
from ._reversible import ReversibleIntegrator
from .parabolic_cnn import symmetric_conv_layer

__all__ = ["HamiltonianCNN", "HamiltonianCNNState", "HamiltonianCNNStepCache"]


@dataclass
class HamiltonianCNNState:
    """The two halves of the channels at step ``j``, each ``(n_examples, C/2, H, W)``."""

    y: object  #: Y_j, channels 0 … C/2 − 1
    z: object  #: Z_j, channels C/2 … C − 1


@dataclass
class HamiltonianCNNStepCache:
    """What step ``j`` needs for its linearization and adjoint."""

    z: object  #: Z_j, input of the first layer
    y_next: object  #: Y_{j+1}, input of the second layer
    layer1: object  #: cache of F_sym(θ_{j,1}, Z_j)
    layer2: object  #: cache of F_sym(θ_{j,2}, Y_{j+1})


class HamiltonianCNN(ReversibleIntegrator):
    r"""Hamiltonian CNN block: the channels are split into ``Y`` and ``Z`` halves,

    .. math::
        Y_{j+1} = Y_j - h\,F_\mathrm{sym}(θ_{j,1}, Z_j), \qquad
        Z_{j+1} = Z_j + h\,F_\mathrm{sym}(θ_{j,2}, Y_{j+1}),

    ``j = 0, …, N−1``, ``h = T/N``, with the symmetric convolution layer
    ``F_sym(θ, X) = −K(θ)ᵀ σ(N(K(θ)X + b))`` (:func:`symmetric_conv_layer`).
    It is the symplectic Verlet (Störmer) discretization of the Hamiltonian
    dynamics

    .. math:: ∂_t Y = -F_\mathrm{sym}(θ_1(t), Z), \qquad ∂_t Z = F_\mathrm{sym}(θ_2(t), Y)

    of Ruthotto & Haber, "Deep neural networks motivated by partial
    differential equations", JMIV 2019, §3.2 ("Hamiltonian CNNs", one of the
    two hyperbolic CNNs; also Chang et al., "Reversible architectures for
    arbitrarily deep residual neural networks", AAAI 2018).

    Sign convention.  The signs are those of the ODE above: the variable
    updated first moves with ``−F_sym`` of the other, the second with
    ``+F_sym``.  For σ = identity, no normalization and constant weights this
    is ``Y'' = −K_1ᵀK_1 K_2ᵀK_2 Y``, an oscillation (eigenvalues of the
    product of two positive semidefinite matrices are ≥ 0), hence stable;
    equal signs would be unstable.  Meganet.m ``integrators/DoubleHamiltonianNN.m``
    (used for the paper's experiments) implements the same scheme with the
    roles of the halves swapped — it updates the *second* half first,
    ``Z_{k+1} = Z_k − h F(θ_1, Y_k)``, ``Y_{k+1} = Y_k + h F(θ_2, Z_{k+1})``.
    Here the first half (``Y``) is updated first, as the paper writes the
    equations.

    The element maps the full channel stack ``[Y_0, Z_0]`` (shape
    ``(n, C, H, W)``, ``Y`` = the first ``C/2`` channels) to ``[Y_N, Z_N]``.

    Both layers have the same architecture and their own weights; one step's
    weights are ``θ(t_j) = (θ_{j,1}, θ_{j,2})`` (each laid out as in
    :class:`~meganet.layers.SymmetricLayer`), and θ is
    ``(θ_0, …, θ_{n_basis−1})`` with ``θ(t_j) = Σ_k B_jk θ_k``
    (:class:`~meganet.integrators.time_basis.TimeBasis`).

    The scheme is explicitly invertible,
    ``Z_j = Z_{j+1} − hF_sym(θ_{j,2}, Y_{j+1})``,
    ``Y_j = Y_{j+1} + hF_sym(θ_{j,1}, Z_j)``, so with ``reversible=True`` the
    forward pass stores no intermediate state and ``JTmv`` recomputes the
    states backwards during the adjoint sweep (``Jmv`` recomputes them
    forwards); see :mod:`meganet.integrators._reversible`.

    Derivatives (one step, written once from the layer's private products):

    * ``dY' = dY − h J_{F,1}[dθ_1, dZ]``, ``dZ' = dZ + h J_{F,2}[dθ_2, dY']``;
    * adjoint: ``(g_2, V) = J_{F,2}ᵀ W_{Z'}``, ``W_{Y'} ← W_{Y'} + hV``,
      ``(g_1, U) = J_{F,1}ᵀ W_{Y'}``, ``W_Z = W_{Z'} − hU``, ``W_Y = W_{Y'}``,
      ``dθ_1 = −h g_1``, ``dθ_2 = h g_2``.

    Parameters
    ----------
    channels : int
        Even; ``Y`` and ``Z`` have ``channels // 2`` channels each.
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
        Store no intermediate states (recompute them in ``Jmv``/``JTmv``).

    Shapes
    ------
    Y : (n_examples, channels, H, W) → Z : same shape.
    """

    def __init__(self, channels, image_shape, *, n_steps, final_time, activation="relu", normalization="tv",
                 affine=True, bias=None, kernel_size=3, boundary="zero", basis=None, reversible=False):
        channels = check_int("channels", channels, minimum=1)
        if channels % 2:
            raise ValueError(f"channels must be even for a HamiltonianCNN (split into Y and Z halves of "
                             f"channels // 2 each), got {channels}")
        self.channels = channels
        self.half = channels // 2
        opts = dict(activation=activation, normalization=normalization, affine=affine, bias=bias,
                    kernel_size=kernel_size, boundary=boundary)
        self.layer1 = symmetric_conv_layer(self.half, image_shape, **opts)
        self.layer2 = symmetric_conv_layer(self.half, image_shape, **opts)
        self.image_shape = self.layer1.transform.image_shape
        self.normalization = normalization
        self.shape_in = self.shape_out = (channels, *self.image_shape)
        self._n1 = self.layer1.n_theta
        self._setup_integrator(n_steps=n_steps, final_time=final_time, basis=basis, reversible=reversible,
                               n_theta_step=self.layer1.n_theta + self.layer2.n_theta)

    def _init_step(self, rng):
        return np.concatenate([np.asarray(self.layer1._init_theta(rng), dtype=np.float64).reshape(-1),
                               np.asarray(self.layer2._init_theta(rng), dtype=np.float64).reshape(-1)])

    def _unpack(self, w):
        """``(θ_{j,1}, θ_{j,2})``, views of one step's weights (also of a batch ``(n, n_θ)``)."""
        return w[..., : self._n1], w[..., self._n1 :]

    # --------------------------------------------------------- state maps
    def _initial_state(self, Y):
        return HamiltonianCNNState(y=Y[:, : self.half], z=Y[:, self.half :])

    def _initial_tangent(self, dY, Y):
        if dY is None:
            dY = get_array_module(Y).zeros_like(Y)
        return self._initial_state(dY)

    def _output(self, s):
        return get_array_module(s.y).concatenate([s.y, s.z], axis=1)

    def _output_adjoint(self, W):
        return self._initial_state(W)

    def _input_adjoint(self, Ws):
        return self._output(Ws)

    # --------------------------------------------- one step, written once
    def _step(self, w, s, need_cache=True):
        th1, th2 = self._unpack(w)
        F1, c1 = self.layer1._forward(th1, s.z)
        y_next = s.y - self.h * F1
        F2, c2 = self.layer2._forward(th2, y_next)
        z_next = s.z + self.h * F2
        c = HamiltonianCNNStepCache(z=s.z, y_next=y_next, layer1=c1, layer2=c2) if need_cache else None
        return HamiltonianCNNState(y=y_next, z=z_next), c

    def _unstep(self, w, s):
        th1, th2 = self._unpack(w)
        F2, c2 = self.layer2._forward(th2, s.y)
        z = s.z - self.h * F2
        F1, c1 = self.layer1._forward(th1, z)
        y = s.y + self.h * F1
        return HamiltonianCNNState(y=y, z=z), HamiltonianCNNStepCache(z=z, y_next=s.y, layer1=c1, layer2=c2)

    def _step_jmv(self, w, dw, c, ds):
        """``dY' = dY − h J_{F,1}[dθ_1, dZ]``, ``dZ' = dZ + h J_{F,2}[dθ_2, dY']``."""
        th1, th2 = self._unpack(w)
        dth1, dth2 = self._unpack(dw) if dw is not None else (None, None)
        dy = ds.y - self.h * self.layer1._Jmv(dth1, ds.z, th1, c.z, c.layer1)
        dz = ds.z + self.h * self.layer2._Jmv(dth2, dy, th2, c.y_next, c.layer2)
        return HamiltonianCNNState(y=dy, z=dz)

    def _step_adjoint(self, w, c, Ws, out, per_example, propagate):
        """Adjoint of :meth:`_step_jmv` from ``(W_{Y_{j+1}}, W_{Z_{j+1}})`` to
        ``(W_{Y_j}, W_{Z_j})``; ``(−h g_1, h g_2)`` go into ``out``."""
        th1, th2 = self._unpack(w)
        want_theta = out is not None
        g2, V = self.layer2._JTmv(Ws.z, th2, c.y_next, c.layer2, want_theta, True, per_example)
        Wy = Ws.y + self.h * V
        Wz = None
        if want_theta or propagate:
            g1, U = self.layer1._JTmv(Wy, th1, c.z, c.layer1, want_theta, propagate, per_example)
            if propagate:
                Wz = Ws.z - self.h * U
            if want_theta:
                o1, o2 = self._unpack(out)
                o1[...] = (-self.h) * g1
                o2[...] = self.h * g2
        return HamiltonianCNNState(y=Wy if propagate else None, z=Wz)

    # ------------------------------------------------ second-order products
    @property
    def has_second_order(self):
        return self.second_order_missing() is None

    def second_order_missing(self):
        return self.layer1.second_order_missing() or self.layer2.second_order_missing()

    def _step_jmv_inverse(self, w, dw, c, ds_next):
        """``dZ = dZ' − h J_2[dθ_2, dY']``, ``dY = dY' + h J_1[dθ_1, dZ]``."""
        th1, th2 = self._unpack(w)
        dth1, dth2 = self._unpack(dw) if dw is not None else (None, None)
        dz = ds_next.z - self.h * self.layer2._Jmv(dth2, ds_next.y, th2, c.y_next, c.layer2)
        dy = ds_next.y + self.h * self.layer1._Jmv(dth1, dz, th1, c.z, c.layer1)
        return HamiltonianCNNState(y=dy, z=dz)

    def _step_second(self, w, dw, c, ds, Ws, dWs):
        """Change of :meth:`_step_adjoint` along the step's tangents (``dY' = dY − h J_1[dθ_1, dZ]``):
        ``(δg_2, δV) = J_2ᵀ δW_{Z'} + S_2(W_{Z'}; dθ_2, dY')``, ``δW_Y = δW_{Y'} + h δV``,
        ``(δg_1, δU) = J_1ᵀ δW_Y + S_1(W_Y; dθ_1, dZ)``, ``δW_Z = δW_{Z'} − h δU``; weight part
        ``(−h δg_1, h δg_2)``."""
        th1, th2 = self._unpack(w)
        dth1, dth2 = self._unpack(dw) if dw is not None else (None, None)
        h = self.h
        dy_next = ds.y - h * self.layer1._Jmv(dth1, ds.z, th1, c.z, c.layer1)
        V = self.layer2._JTmv(Ws.z, th2, c.y_next, c.layer2, False, True, False)[1]
        Wy = Ws.y + h * V
        g2, dV = self.layer2._second_order_step(Ws.z, dWs.z if dWs is not None else None, dth2, dy_next, th2,
                                                c.y_next, c.layer2)
        xp = get_array_module(Ws.y)
        dWy = h * dV if dV is not None else xp.zeros_like(Ws.y)
        if dWs is not None:
            dWy = dWy + dWs.y
        g1, dU = self.layer1._second_order_step(Wy, dWy, dth1, ds.z, th1, c.z, c.layer1)
        dWz = -h * dU if dU is not None else xp.zeros_like(Ws.z)
        if dWs is not None:
            dWz = dWz + dWs.z
        out = xp.zeros(self._n_theta_step, dtype=Ws.y.dtype)
        o1, o2 = self._unpack(out)
        if g1 is not None:
            o1[...] = (-h) * g1
        if g2 is not None:
            o2[...] = h * g2
        return out, HamiltonianCNNState(y=dWy, z=dWz)

    # ------------------------------------------------------ analysis tools
    def reconstruct_input(self, theta, cache):
        """The input ``[Y_0, Z_0]`` recomputed backwards from ``cache.final``
        without storing states (what the reversible ``JTmv`` sees; round-off included)."""
        theta = self._validated_theta_cache(theta, cache)
        s = cache.final
        for s in self._backward_states(theta, cache.final):
            pass
        return self._output(s)

    def __repr__(self):
        return (f"HamiltonianCNN(channels={self.channels}, image_shape={self.image_shape}, n_steps={self.n_steps}, "
                f"final_time={self.final_time:g}, activation={self.layer1.activation!r}, "
                f"normalization={self.normalization!r}, basis={self.basis!r}, reversible={self.reversible})")
