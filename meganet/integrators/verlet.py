"""Hamiltonian network integrated with the symplectic Verlet scheme
(Haber & Ruthotto 2017, eq. 4.15/4.17; Meganet.m ``integrators/HamiltonianNN.m``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import get_activation
from ..backend import get_array_module
from ..core.validation import check_int, check_option
from ..kernels import ENGINES
from ._reversible import FusedIntegratorCache, IntegratorCache, ReversibleIntegrator

__all__ = ["HamiltonianVerlet", "VerletState", "VerletStepCache"]

_BIAS = ("scalar", "vector", "none")


@dataclass
class VerletState:
    """``y`` = ``y_j`` (n_examples, n_y), ``z`` = ``z_{j−½}`` (n_examples, n_z)."""

    y: object
    z: object


@dataclass
class VerletStepCache:
    """What step ``j`` needs for its linearization and adjoint."""

    y: object  #: y_j, (n_examples, n_y)
    z_half: object  #: z_{j+½}, (n_examples, n_z)
    dsigma_z: object  #: σ'(y_j K_j + b_z), (n_examples, n_z)
    dsigma_y: object  #: σ'(z_{j+½} K_jᵀ + b_y), (n_examples, n_y)


class HamiltonianVerlet(ReversibleIntegrator):
    r"""Hamiltonian block with Verlet (leapfrog/Störmer) time stepping.

    With ``K_j`` of shape ``(n_y, n_z)`` and ``h = T/N``, for ``j = 0, …, N−1``

    .. math::
        z_{j+½} = z_{j−½} − h\,σ(K_jᵀ y_j + b_{z,j}), \qquad
        y_{j+1} = y_j + h\,σ(K_j z_{j+½} + b_{y,j})

    (Haber & Ruthotto 2017, "Stable architectures for deep neural networks",
    eq. 4.15/4.17; Chang et al. 2018; Meganet.m ``integrators/HamiltonianNN.m``).
    ``K_j`` need not be square: ``K_jᵀ`` maps the ``n_y`` features of ``y`` to
    the ``n_z`` features of ``z``.  With examples in rows the code computes
    ``y K_j`` and ``z K_jᵀ``, matching workload B3 of the benchmarks.

    The element maps the concatenated state ``Y = [y_0, z_{−½}]`` (shape
    ``(n_examples, n_y + n_z)``, ``y`` first) to ``Z = [y_N, z_{N−½}]``; the
    initial auxiliary state is part of the input (usually ``z_{−½} = 0``:
    pass ``np.hstack([y0, np.zeros((n, n_z))])``).

    Bias (``bias=``):

    ``'scalar'`` (default, as in the paper and Meganet.m)
        one scalar ``b_j`` per step, added in both half steps
        (``b_{z,j} = b_{y,j} = b_j``) — the only choice that is defined for
        non-square ``K``;
    ``'vector'``
        ``b_j = [b_{y,j}, b_{z,j}]`` of length ``n_y + n_z``;
    ``'none'``
        no bias.

    Weights in time as in :class:`~meganet.integrators.block.TimeSteppingBlock`:
    θ is ``(θ_0, …, θ_{n_basis−1})``, each ``θ_k = (vec K_k, b_k)`` with
    ``K_k`` row-major ``(n_y, n_z)``, and the step weights are
    ``θ(t_j) = Σ_k B_jk θ_k`` (:class:`~meganet.integrators.time_basis.TimeBasis`;
    ``basis=None`` gives one weight set per step, ``'constant'`` one shared).

    The scheme is explicitly invertible,
    ``y_j = y_{j+1} − hσ(K_j z_{j+½} + b_{y,j})``,
    ``z_{j−½} = z_{j+½} + hσ(K_jᵀ y_j + b_{z,j})``, so with ``reversible=True``
    the forward pass stores no intermediate state and ``JTmv`` recomputes the
    states backwards during the adjoint sweep (``Jmv`` recomputes them
    forwards).  In floating point the recomputed states carry round-off that
    the backward dynamics amplifies; see ``benchmarks/reversible_memory.py``.
    Per-example θ-gradients are available in both modes.

    For σ = identity, ``b = 0`` and constant ``K`` the scheme conserves the
    modified energy ``½|y_j|² + ½ z_{j−½}ᵀ z_{j+½}`` exactly; the energy
    ``½(|y|² + |z|²)`` of the ODE, evaluated at ``y_j`` and the centered
    ``z̄_j = ½(z_{j−½} + z_{j+½})``, equals it plus ``(h²/8)|K y_j|²``-type terms,
    so it stays within ``O(h²)`` of its initial value without drift
    (tests/test_reversible.py checks both).

    Parameters
    ----------
    n_y, n_z : int
        Features of ``y`` and of the auxiliary ``z``.
    n_steps : int ≥ 1
        Number of steps ``N``.
    final_time : float > 0
        ``T``; the step size is ``h = T/N``.
    activation : str or Activation
        Any of :mod:`meganet.activations`.
    bias : {'scalar', 'vector', 'none'}
    basis : None, 'identity', 'constant', TimeBasis or array (n_steps, n_basis)
        Weights in time (default: one weight set per step).
    reversible : bool
        Store no intermediate states (recompute them in ``Jmv``/``JTmv``).
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        In stored mode with a built-in activation, the whole sweep (forward,
        ``Jmv``, ``JTmv``) runs in one compiled kernel of
        :mod:`meganet.kernels.timestep` (``'auto'``: numba for numpy arrays
        when installed and ``n_steps ≥ 8`` or ``examples × n_steps ≥ 2¹⁴`` — below,
        the step loop is faster —,
        cupy for cupy arrays); the reversible mode uses the
        kernel for its forward pass (no states kept); ``'numpy'``, the
        reversible adjoint and per-example gradients use the step-by-step
        loops.  With numba, ``jvp`` advances the state and the tangent
        together in one kernel sweep and stores no states (either mode).

    Shapes
    ------
    Y : (n_examples, n_y + n_z) → Z : (n_examples, n_y + n_z)
    """

    _has_fused = True
    _fused_jvp_engines = ("numba",)  # kernels.timestep.verlet_jvp

    #: engine='auto' takes the fused numba sweep from 8 steps on (see FusedSweeps.auto_min_steps)
    auto_min_steps = 8

    def __init__(self, n_y, n_z, *, n_steps, final_time, activation="tanh", bias="scalar", basis=None,
                 reversible=False, engine="auto"):
        self.n_y = check_int("n_y", n_y, minimum=1)
        self.n_z = check_int("n_z", n_z, minimum=1)
        self.activation = get_activation(activation)
        self.bias = check_option("bias", bias, _BIAS)
        self.n_b = {"scalar": 1, "vector": self.n_y + self.n_z, "none": 0}[self.bias]
        self.engine = check_option("engine", engine, ENGINES)
        self._check_engine()
        self._n_K = self.n_y * self.n_z
        self.shape_in = self.shape_out = (self.n_y + self.n_z,)
        self._setup_integrator(n_steps=n_steps, final_time=final_time, basis=basis, reversible=reversible,
                               n_theta_step=self._n_K + self.n_b)

    def _init_step(self, rng):
        K = rng.standard_normal(self._n_K) / np.sqrt(max(self.n_y, self.n_z))
        return np.concatenate([K, 0.1 * rng.standard_normal(self.n_b)])

    # --------------------------------------------------------- state maps
    def _split(self, Y):
        return Y[:, : self.n_y], Y[:, self.n_y :]

    def _initial_state(self, Y):
        y, z = self._split(Y)
        return VerletState(y=y, z=z)

    def _initial_tangent(self, dY, Y):
        if dY is None:
            xp = get_array_module(Y)
            return VerletState(y=xp.zeros_like(Y[:, : self.n_y]), z=xp.zeros_like(Y[:, self.n_y :]))
        return self._initial_state(dY)

    def _output(self, s):
        xp = get_array_module(s.y)
        return xp.concatenate([s.y, s.z], axis=1)

    def _output_adjoint(self, W):
        return self._initial_state(W)

    def _input_adjoint(self, Ws):
        return self._output(Ws)

    def _biases(self, b):
        """``(b_y, b_z)`` broadcastable against ``(n, n_y)``/``(n, n_z)``, or ``(0, 0)``."""
        if b is None:
            return 0.0, 0.0
        if self.bias == "scalar":
            return b, b
        return b[: self.n_y], b[self.n_y :]

    def _unpack(self, w):
        """``(K, b)`` from one step's flat weights ``(vec K, b)`` (views); ``b`` is None without bias."""
        K = w[: self._n_K].reshape(self.n_y, self.n_z)
        return K, (w[self._n_K :] if self.n_b else None)

    # --------------------------------------------- one step, written once
    def _half_z(self, K, b_z, y, z, sign, need_dsigma=True):
        """``z ± h σ(y K + b_z)`` and ``σ'`` (or None); ``sign=-1`` forward, ``+1`` inverse."""
        A = y @ K + b_z
        s, ds = self.activation.value_and_derivative(A) if need_dsigma else (self.activation.value(A), None)
        return z + (sign * self.h) * s, ds

    def _half_y(self, K, b_y, z_half, y, sign, need_dsigma=True):
        """``y ± h σ(z K_jᵀ + b_y)`` and ``σ'`` (or None); ``sign=+1`` forward, ``-1`` inverse."""
        B = z_half @ K.T + b_y
        s, ds = self.activation.value_and_derivative(B) if need_dsigma else (self.activation.value(B), None)
        return y + (sign * self.h) * s, ds

    def _step(self, w, s, need_cache=True):
        K, b = self._unpack(w)
        b_y, b_z = self._biases(b)
        z_half, ds_z = self._half_z(K, b_z, s.y, s.z, -1.0, need_cache)
        y_next, ds_y = self._half_y(K, b_y, z_half, s.y, +1.0, need_cache)
        c = VerletStepCache(y=s.y, z_half=z_half, dsigma_z=ds_z, dsigma_y=ds_y) if need_cache else None
        return VerletState(y=y_next, z=z_half), c

    def _unstep(self, w, s):
        K, b = self._unpack(w)
        b_y, b_z = self._biases(b)
        y, ds_y = self._half_y(K, b_y, s.z, s.y, -1.0)
        z_prev, ds_z = self._half_z(K, b_z, y, s.z, +1.0)
        return VerletState(y=y, z=z_prev), VerletStepCache(y=y, z_half=s.z, dsigma_z=ds_z, dsigma_y=ds_y)

    def _step_jmv(self, w, dw, c, ds):
        """``dz' = dz − hσ'_z⊙(dy K + y dK + db_z)``, ``dy' = dy + hσ'_y⊙(dz' Kᵀ + z' dKᵀ + db_y)``."""
        K, _ = self._unpack(w)
        dA = ds.y @ K
        dB_extra = None
        if dw is not None:
            dK, db = self._unpack(dw)
            db_y, db_z = self._biases(db)
            dA = dA + c.y @ dK + db_z
            dB_extra = c.z_half @ dK.T + db_y
        dz = ds.z - self.h * (c.dsigma_z * dA)
        dB = dz @ K.T
        if dB_extra is not None:
            dB = dB + dB_extra
        dy = ds.y + self.h * (c.dsigma_y * dB)
        return VerletState(y=dy, z=dz)

    def _step_adjoint(self, w, c, Ws, out, per_example, propagate):
        """Adjoint of :meth:`_step_jmv`: from ``(W_{y_{j+1}}, W_{z_{j+½}})`` to
        ``(W_{y_j}, W_{z_{j−½}})``; the step's ``(dK, db)`` go into ``out``.

        ``g_B = hσ'_y⊙W_{y'}``, ``W_z = W_{z'} + g_B K``, ``g_A = −hσ'_z⊙W_z``,
        ``W_y = W_{y'} + g_A Kᵀ``, ``dK = g_Bᵀ z' + yᵀ g_A``, ``db = Σ (g_B, g_A)``.
        """
        K, _ = self._unpack(w)
        gB = self.h * (c.dsigma_y * Ws.y)  # adjoint of the pre-activation of the y-update
        Wz = Ws.z + gB @ K
        gA = -self.h * (c.dsigma_z * Wz)  # adjoint of the pre-activation of the z-update
        Wy = Ws.y + gA @ K.T if propagate else None
        if out is not None:
            nK = self._n_K
            if per_example:
                xp = get_array_module(gA)
                dK = xp.einsum("ni,nj->nij", gB, c.z_half) + xp.einsum("ni,nj->nij", c.y, gA)
                out[:, :nK] = dK.reshape(dK.shape[0], nK)
            else:
                out[:nK] = (gB.T @ c.z_half + c.y.T @ gA).reshape(nK)
            if self.bias == "scalar":
                db = gB.sum(axis=1) + gA.sum(axis=1)
                out[..., nK] = db if per_example else db.sum()
            elif self.bias == "vector":
                if per_example:
                    out[:, nK : nK + self.n_y] = gB
                    out[:, nK + self.n_y :] = gA
                else:
                    out[nK : nK + self.n_y] = gB.sum(axis=0)
                    out[nK + self.n_y :] = gA.sum(axis=0)
        return VerletState(y=Wy, z=Wz)

    # ------------------------------------- second-order step (written once, maps overridden by the CNN)
    def _map_A(self, K, y):
        """``y ↦ y K`` (pre-activation of the z-update without bias)."""
        return y @ K

    def _map_B(self, K, z):
        """``z ↦ z Kᵀ`` (pre-activation of the y-update without bias)."""
        return z @ K.T

    def _map_A_T(self, K, g):
        """Adjoint of :meth:`_map_A` in y."""
        return g @ K.T

    def _map_B_T(self, K, g):
        """Adjoint of :meth:`_map_B` in z."""
        return g @ K

    def _map_K_adj(self, K, y, z, gA, gB):
        """Adjoint in K of ``K ↦ (_map_A(K, y), _map_B(K, z))`` applied to ``(gA, gB)``, flat."""
        return (gB.T @ z + y.T @ gA).reshape(-1)

    def _step_jmv_inverse(self, w, dw, c, ds_next):
        """``dy = dy' − hσ'_y⊙(dz' Kᵀ + z' dKᵀ + db_y)``, ``dz = dz' + hσ'_z⊙(dy K + y dK + db_z)``."""
        K, _ = self._unpack(w)
        dB = self._map_B(K, ds_next.z)
        dA_extra = None
        if dw is not None:
            dK, db = self._unpack(dw)
            db_y, db_z = self._biases(db)
            dB = dB + self._map_B(dK, c.z_half) + db_y
            dA_extra = self._map_A(dK, c.y) + db_z
        dy = ds_next.y - self.h * (c.dsigma_y * dB)
        dA = self._map_A(K, dy)
        if dA_extra is not None:
            dA = dA + dA_extra
        return VerletState(y=dy, z=ds_next.z + self.h * (c.dsigma_z * dA))

    def _step_second(self, w, dw, c, ds, Ws, dWs):
        r"""Second-order adjoint of a Verlet step: differentiate the adjoint of :meth:`_step_adjoint`
        (``g_B = hσ'_B⊙W_{y'}``, ``W_z = W_{z'} + ∂B*g_B``, ``g_A = −hσ'_A⊙W_z``, ``W_y = W_{y'} + ∂A*g_A``,
        ``g_K = K-adjoint(g_A, g_B)``) along the tangents ``dA``, ``dz'``, ``dB`` of :meth:`_step_jmv`, the
        weight change ``dK`` and the cotangent change: ``δg_B = hσ''_B dB W_{y'} + hσ'_B δW_{y'}``,
        ``δW_z = δW_{z'} + B*(K)δg_B + B*(dK)g_B``, ``δg_A = −hσ''_A dA W_z − hσ'_A δW_z``,
        ``δW_y = δW_{y'} + A*(K)δg_A + A*(dK)g_A``,
        ``δg_K = K-adjoint(δg_A, δg_B; y, z') + K-adjoint(g_A, g_B; dy, dz')``, bias parts the sums of δg."""
        K, b = self._unpack(w)
        b_y, b_z = self._biases(b)
        h, act = self.h, self.activation
        dK = None
        dA = self._map_A(K, ds.y)
        dB_extra = None
        if dw is not None:
            dK, db = self._unpack(dw)
            db_y, db_z = self._biases(db)
            dA = dA + self._map_A(dK, c.y) + db_z
            dB_extra = self._map_B(dK, c.z_half) + db_y
        dz = ds.z - h * (c.dsigma_z * dA)
        dB = self._map_B(K, dz)
        if dB_extra is not None:
            dB = dB + dB_extra
        A = self._map_A(K, c.y) + b_z
        B = self._map_B(K, c.z_half) + b_y
        gB = h * (c.dsigma_y * Ws.y)
        Wz = Ws.z + self._map_B_T(K, gB)
        gA = -h * (c.dsigma_z * Wz)
        dgB = h * (act.second_derivative(B) * dB * Ws.y)
        if dWs is not None:
            dgB = dgB + h * (c.dsigma_y * dWs.y)
        dWz = self._map_B_T(K, dgB)
        if dWs is not None:
            dWz = dWz + dWs.z
        if dK is not None:
            dWz = dWz + self._map_B_T(dK, gB)
        dgA = -h * (act.second_derivative(A) * dA * Wz) - h * (c.dsigma_z * dWz)
        dWy = self._map_A_T(K, dgA)
        if dWs is not None:
            dWy = dWy + dWs.y
        if dK is not None:
            dWy = dWy + self._map_A_T(dK, gA)
        xp = get_array_module(gA)
        g = xp.zeros(self._n_theta_step, dtype=gA.dtype)
        nK = self._n_K
        g[:nK] = self._map_K_adj(K, c.y, c.z_half, dgA, dgB) + self._map_K_adj(K, ds.y, dz, gA, gB)
        if self.bias == "scalar":
            g[nK] = dgB.sum() + dgA.sum()
        elif self.bias == "vector":
            g[nK : nK + self.n_y] = dgB.sum(axis=0)
            g[nK + self.n_y :] = dgA.sum(axis=0)
        return g, VerletState(y=dWy, z=dWz)

    # ------------------------------------------ fused sweeps (kernels.timestep)
    def _stacked(self, W):
        """``(K, b_y, b_z)`` of all steps from step weights ``W`` (N, n_θ); biases None without bias."""
        N, nK = W.shape[0], self._n_K
        K = W[:, :nK].reshape(N, self.n_y, self.n_z)
        if self.bias == "none":
            return K, None, None
        if self.bias == "scalar":
            b = W[:, nK : nK + 1]  # width 1: one scalar per step
            return K, b, b
        return K, W[:, nK : nK + self.n_y], W[:, nK + self.n_y :]

    def _fused_forward(self, theta, Y, engine, store=True):
        from ..kernels.timestep import verlet_forward

        K, b_y, b_z = self._stacked(self._step_stack(theta))
        y, z = self._split(Y)
        tr = verlet_forward(y, z, K, b_y, b_z, self.h, self.activation, n_steps=self.n_steps, store=store,
                            engine=engine)
        final = VerletState(y=tr.y, z=tr.z)
        if not store:  # reversible mode: the same arithmetic, no states kept
            return self._output(final), IntegratorCache(final=final, steps=None)
        tr.K = K

        def make_step(j, tr=tr):
            return VerletStepCache(y=tr.ys[j], z_half=tr.z_half[j], dsigma_z=tr.dsigma_z[j], dsigma_y=tr.dsigma_y[j])

        return self._output(final), FusedIntegratorCache(final=final, trajectory=tr, engine=engine,
                                                         make_step=make_step, n_steps=self.n_steps)

    def _fused_jmv(self, dtheta, dY, cache):
        from ..kernels.timestep import verlet_jmv

        dK = dby = dbz = None
        if dtheta is not None:
            dK, dby, dbz = self._stacked(self._step_stack(dtheta))
        dy0, dz0 = self._split(dY) if dY is not None else (None, None)
        tr = cache.trajectory
        dy, dz = verlet_jmv(tr.K, tr, self.h, dy0=dy0, dz0=dz0, dK=dK, dby=dby, dbz=dbz, engine=cache.engine)
        return self._output(VerletState(y=dy, z=dz))

    def _fused_jvp(self, theta, Y, dtheta, dY, engine):
        """``(Z, dZ)`` in one kernel sweep (:func:`~meganet.kernels.timestep.verlet_jvp`), no stored states."""
        from ..kernels.timestep import verlet_jvp

        K, b_y, b_z = self._stacked(self._step_stack(theta))
        dK = dby = dbz = None
        if dtheta is not None:
            dK, dby, dbz = self._stacked(self._step_stack(dtheta))
        y, z = self._split(Y)
        dy0, dz0 = self._split(dY) if dY is not None else (None, None)
        yN, zN, dyN, dzN = verlet_jvp(y, z, K, b_y, b_z, self.h, self.activation, dy0=dy0, dz0=dz0, dK=dK, dby=dby,
                                      dbz=dbz, n_steps=self.n_steps, engine=engine)
        return self._output(VerletState(y=yN, z=zN)), self._output(VerletState(y=dyN, z=dzN))

    def _fused_jtmv(self, W, cache, need_theta, need_Y):
        from ..kernels.timestep import verlet_jtmv

        tr = cache.trajectory
        Wy, Wz = self._split(W)
        dK, dby, dbz, dy0, dz0 = verlet_jtmv(Wy, Wz, tr.K, tr, self.h, need_theta=need_theta, engine=cache.engine)
        dtheta = None
        if need_theta:
            xp = get_array_module(W)
            N, nK = dK.shape[0], self._n_K
            g = xp.empty((N, self._n_theta_step), dtype=W.dtype)
            g[:, :nK] = dK.reshape(N, nK)
            if self.bias == "scalar":
                g[:, nK] = dby.sum(axis=1) + dbz.sum(axis=1)
            elif self.bias == "vector":
                g[:, nK : nK + self.n_y] = dby
                g[:, nK + self.n_y :] = dbz
            dtheta = self._step_stack_T(g)
        dY = self._output(VerletState(y=dy0, z=dz0)) if need_Y else None
        return dtheta, dY

    # ------------------------------------------------------ analysis tools
    def trajectory(self, theta, Y):
        """All states of the forward pass (for plots and energy checks).

        Returns
        -------
        y : array, shape (n_steps + 1, n_examples, n_y)
            ``y_0, …, y_N``.
        z : array, shape (n_steps + 1, n_examples, n_z)
            ``z_{−½}, z_{½}, …, z_{N−½}``.
        """
        theta, xp, _ = self._prepare(theta, Y)
        engine = self._fused_engine(Y)
        if engine is not None:  # the forward pass's own arithmetic
            _, cache = self._fused_forward(theta, Y, engine, store=True)
            tr = cache.trajectory
            y0, z0 = self._split(Y)
            return xp.concatenate([tr.ys, tr.y[None]]), xp.concatenate([z0[None], tr.z_half])
        C = self.coefficients(theta)
        s = self._initial_state(Y)
        ys, zs = [s.y], [s.z]
        for j in range(self.n_steps):
            s, _ = self._step(self.basis.weights_at(C, j), s, False)
            ys.append(s.y)
            zs.append(s.z)
        return xp.stack(ys), xp.stack(zs)

    def reconstruct_trajectory(self, theta, cache):
        """The states recomputed backwards from ``cache.final`` (what the
        reversible ``JTmv`` sees), in the layout of :meth:`trajectory`."""
        theta = self._validated_theta_cache(theta, cache)
        xp = get_array_module(cache.final.y)
        ys, zs = [cache.final.y], [cache.final.z]
        for s in self._backward_states(theta, cache.final):
            ys.append(s.y)
            zs.append(s.z)
        return xp.stack(ys[::-1]), xp.stack(zs[::-1])

    def reconstruct_input(self, theta, cache):
        """The input ``[y_0, z_{−½}]`` recomputed backwards from ``cache.final``
        without storing states (round-off included)."""
        theta = self._validated_theta_cache(theta, cache)
        s = cache.final
        for s in self._backward_states(theta, cache.final):
            pass
        return self._output(s)

    def __repr__(self):
        return (f"HamiltonianVerlet(n_y={self.n_y}, n_z={self.n_z}, n_steps={self.n_steps}, "
                f"final_time={self.final_time}, activation={self.activation!r}, bias={self.bias!r}, "
                f"basis={self.basis!r}, reversible={self.reversible}, engine={self.engine!r})")
