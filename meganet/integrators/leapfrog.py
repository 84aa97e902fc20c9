"""Second-order network integrated with leapfrog
(Haber & Ruthotto 2017, eq. 4.16; Meganet.m ``integrators/LeapFrogNN.m``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import get_activation
from ..backend import get_array_module
from ..core.validation import check_int, check_option
from ..kernels import ENGINES
from ._reversible import FusedIntegratorCache, IntegratorCache, ReversibleIntegrator

__all__ = ["Leapfrog", "LeapfrogState", "LeapfrogStateMaps", "LeapfrogStepCache"]

_BIAS = ("vector", "scalar", "none")


@dataclass
class LeapfrogState:
    """``prev`` = ``Y_{j−1}``, ``cur`` = ``Y_j``, both (n_examples, n_features)."""

    prev: object
    cur: object


@dataclass
class LeapfrogStepCache:
    """What step ``j`` needs for its linearization and adjoint."""

    Y: object  #: Y_j, (n_examples, n_features)
    dsigma: object  #: σ'(Y_j K_jᵀ + b_j), (n_examples, n_features)


class LeapfrogStateMaps:
    """State maps of the two-step schemes ``Y_{j+1} = 2Y_j − Y_{j−1} + h² F_j`` with ``Y_{−1} = Y_0``
    (the state is ``(Y_{j−1}, Y_j)``), shared by :class:`Leapfrog` and
    :class:`~meganet.integrators.second_order_cnn.SecondOrderCNN`."""

    def _initial_state(self, Y):
        return LeapfrogState(prev=Y, cur=Y)

    def _initial_tangent(self, dY, Y):
        if dY is None:
            dY = get_array_module(Y).zeros_like(Y)
        return LeapfrogState(prev=dY, cur=dY)

    def _output(self, s):
        return s.cur

    def _output_adjoint(self, W):
        return LeapfrogState(prev=get_array_module(W).zeros_like(W), cur=W)

    def _input_adjoint(self, Ws):
        return Ws.prev + Ws.cur  # Y_{−1} = Y_0 = input


class Leapfrog(LeapfrogStateMaps, ReversibleIntegrator):
    r"""Second-order (leapfrog) network.

    With a dense ``K_j`` of shape ``(n, n)`` and ``h = T/N``, for
    ``j = 0, …, N−1``

    .. math::
        Y_{j+1} = 2Y_j − Y_{j−1} + h²\,σ(K_j Y_j + b_j), \qquad Y_{−1} = Y_0,

    the leapfrog discretization of ``∂_t² Y = σ(K(t) Y + b(t))`` with zero
    initial velocity (Haber & Ruthotto 2017, "Stable architectures for deep
    neural networks", eq. 4.16; Ruthotto & Haber 2019, "second-order CNN";
    Meganet.m ``integrators/LeapFrogNN.m`` with a single dense layer).  With
    examples in rows the code computes ``Y K_jᵀ``.  The element maps ``Y_0`` to
    ``Y_N``.

    Bias (``bias=``): ``'vector'`` (default, one per feature and step),
    ``'scalar'`` (one per step) or ``'none'``.  Weights in time as in
    :class:`~meganet.integrators.block.TimeSteppingBlock`: θ is
    ``(θ_0, …, θ_{n_basis−1})``, each ``θ_k = (vec K_k, b_k)`` (``K_k``
    row-major), and ``θ(t_j) = Σ_k B_jk θ_k``.

    The scheme is explicitly invertible,
    ``Y_{j−1} = 2Y_j − Y_{j+1} + h²σ(K_j Y_j + b_j)``, so with
    ``reversible=True`` the forward pass keeps only ``(Y_{N−1}, Y_N)`` and
    ``JTmv`` recomputes the states backwards during the adjoint sweep (``Jmv``
    recomputes them forwards).  The backward recursion also returns
    ``Y_{−1}``, which must equal ``Y_0``: a built-in check of the round-off.

    For σ = identity, ``b = 0`` and a constant ``K = −A`` with ``A``
    symmetric positive definite (``h²‖A‖ < 4``) the scheme conserves
    ``|(Y_{j+1} − Y_j)/h|² + Y_{j+1}ᵀ A Y_j`` exactly.

    Parameters
    ----------
    n_features : int
    n_steps : int ≥ 1
    final_time : float > 0
        ``T``; ``h = T/N``.
    activation : str or Activation
    bias : {'vector', 'scalar', 'none'}
    basis : None, 'identity', 'constant', TimeBasis or array (n_steps, n_basis)
    reversible : bool
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        Fused sweeps of :mod:`meganet.kernels.timestep` (see
        :class:`~meganet.integrators.verlet.HamiltonianVerlet`).

    Shapes
    ------
    Y : (n_examples, n_features) → Z : (n_examples, n_features)
    """

    _has_fused = True

    def __init__(self, n_features, *, n_steps, final_time, activation="tanh", bias="vector", basis=None,
                 reversible=False, engine="auto"):
        self.n_features = n = check_int("n_features", n_features, minimum=1)
        self.activation = get_activation(activation)
        self.bias = check_option("bias", bias, _BIAS)
        self.n_b = {"vector": n, "scalar": 1, "none": 0}[self.bias]
        self.engine = check_option("engine", engine, ENGINES)
        self._check_engine()
        self._n_K = n * n
        self.shape_in = self.shape_out = (n,)
        self._setup_integrator(n_steps=n_steps, final_time=final_time, basis=basis, reversible=reversible,
                               n_theta_step=self._n_K + self.n_b)

    @property
    def h2(self):
        """``h²`` (derived, so :meth:`with_steps` keeps it consistent)."""
        return self.h * self.h

    def _init_step(self, rng):
        K = rng.standard_normal(self._n_K) / np.sqrt(self.n_features)
        return np.concatenate([K, 0.1 * rng.standard_normal(self.n_b)])

    # ------------------------------- state maps: LeapfrogStateMaps; weights
    def _unpack(self, w):
        """``(K, b)`` from one step's flat weights ``(vec K, b)`` (views); ``b = 0.0`` without bias."""
        K = w[: self._n_K].reshape(self.n_features, self.n_features)
        return K, (w[self._n_K :] if self.n_b else 0.0)

    # --------------------------------------------- one step, written once
    def _force(self, w, Y, need_dsigma=True):
        """``σ(Y Kᵀ + b)`` and ``σ'`` (or None)."""
        K, b = self._unpack(w)
        A = Y @ K.T + b
        return self.activation.value_and_derivative(A) if need_dsigma else (self.activation.value(A), None)

    def _step(self, w, s, need_cache=True):
        f, ds = self._force(w, s.cur, need_cache)
        nxt = 2.0 * s.cur - s.prev + self.h2 * f
        return LeapfrogState(prev=s.cur, cur=nxt), (LeapfrogStepCache(Y=s.cur, dsigma=ds) if need_cache else None)

    def _unstep(self, w, s):
        # s = (Y_j, Y_{j+1}) → (Y_{j−1}, Y_j)
        f, ds = self._force(w, s.prev)
        prev = 2.0 * s.prev - s.cur + self.h2 * f
        return LeapfrogState(prev=prev, cur=s.prev), LeapfrogStepCache(Y=s.prev, dsigma=ds)

    def _step_jmv(self, w, dw, c, ds):
        """``dY_{j+1} = 2dY_j − dY_{j−1} + h²σ'⊙(dY_j Kᵀ + Y_j dKᵀ + db)``."""
        K, _ = self._unpack(w)
        dA = ds.cur @ K.T
        if dw is not None:
            dK, db = self._unpack(dw)
            dA = dA + c.Y @ dK.T + db
        nxt = 2.0 * ds.cur - ds.prev + self.h2 * (c.dsigma * dA)
        return LeapfrogState(prev=ds.cur, cur=nxt)

    def _step_adjoint(self, w, c, Ws, out, per_example, propagate):
        """Adjoint of :meth:`_step_jmv`: ``g = h²σ'⊙W_{j+1}``,
        ``W_j = W_j' + 2W_{j+1} + g K``, ``W_{j−1} = −W_{j+1}``; ``dK = gᵀY_j``
        and ``db = Σ g`` go into ``out``."""
        K, _ = self._unpack(w)
        g = self.h2 * (c.dsigma * Ws.cur)
        new = LeapfrogState(prev=-Ws.cur, cur=(Ws.prev + 2.0 * Ws.cur + g @ K) if propagate else None)
        if out is not None:
            nK = self._n_K
            if per_example:
                dK = get_array_module(g).einsum("ni,nj->nij", g, c.Y)
                out[:, :nK] = dK.reshape(dK.shape[0], nK)
            else:
                out[:nK] = (g.T @ c.Y).reshape(nK)
            if self.bias == "scalar":
                out[..., nK] = g.sum(axis=1) if per_example else g.sum()
            elif self.bias == "vector":
                out[..., nK:] = g if per_example else g.sum(axis=0)
        return new

    def _step_jmv_inverse(self, w, dw, c, ds_next):
        """``(dY_j, dY_{j+1}) → (dY_{j−1}, dY_j)``: ``dY_{j−1} = 2dY_j − dY_{j+1} + h²σ'⊙(dY_j Kᵀ + Y_j dKᵀ + db)``."""
        K, _ = self._unpack(w)
        cur = ds_next.prev
        dA = cur @ K.T
        if dw is not None:
            dK, db = self._unpack(dw)
            dA = dA + c.Y @ dK.T + db
        return LeapfrogState(prev=2.0 * cur - ds_next.cur + self.h2 * (c.dsigma * dA), cur=cur)

    def _step_second(self, w, dw, c, ds, Ws, dWs):
        r"""Second-order adjoint of a leapfrog step: with ``A = Y_j Kᵀ + b``, ``dA`` its tangent and
        ``g = h²σ'(A)⊙W_{j+1}``: ``δg = h²σ''(A)⊙dA⊙W_{j+1} + h²σ'(A)⊙δW_{j+1}``,
        ``δW_{j−1} = −δW_{j+1}``, ``δW_j = δW_j' + 2δW_{j+1} + δg K + g dK``,
        ``δdK = δgᵀY_j + gᵀdY_j``, ``δdb = Σ δg``."""
        K, b = self._unpack(w)
        h2, act = self.h2, self.activation
        A = c.Y @ K.T + b
        dA = ds.cur @ K.T
        dK = None
        if dw is not None:
            dK, db = self._unpack(dw)
            dA = dA + c.Y @ dK.T + db
        g = h2 * (c.dsigma * Ws.cur)
        dg = h2 * (act.second_derivative(A) * dA * Ws.cur)
        if dWs is not None:
            dg = dg + h2 * (c.dsigma * dWs.cur)
        cur = dg @ K
        if dK is not None:
            cur = cur + g @ dK
        if dWs is not None:
            cur = cur + dWs.prev + 2.0 * dWs.cur
            prev = -dWs.cur
        else:
            prev = get_array_module(cur).zeros_like(cur)
        out = get_array_module(g).zeros(self._n_theta_step, dtype=g.dtype)
        nK = self._n_K
        out[:nK] = (dg.T @ c.Y + g.T @ ds.cur).reshape(nK)
        if self.bias == "scalar":
            out[nK] = dg.sum()
        elif self.bias == "vector":
            out[nK:] = dg.sum(axis=0)
        return out, LeapfrogState(prev=prev, cur=cur)

    # ------------------------------------------ fused sweeps (kernels.timestep)
    def _stacked(self, W):
        """``(M, b)`` of all steps from step weights ``W`` (N, n_θ): ``M_j = K_jᵀ``
        (row form of ``Y K_jᵀ``), ``b`` (N, n) or None."""
        N, n, nK = W.shape[0], self.n_features, self._n_K
        M = W[:, :nK].reshape(N, n, n).transpose(0, 2, 1)
        if self.bias == "none":
            return M, None
        if self.bias == "scalar":
            return M, W[:, nK : nK + 1]  # width 1: one scalar per step
        return M, W[:, nK:]

    def _fused_forward(self, theta, Y, engine, store=True):
        from ..kernels.timestep import dense_dsigma, leapfrog_forward

        M, b = self._stacked(self._step_stack(theta))
        tr = leapfrog_forward(Y, M, b, self.h, self.activation, n_steps=self.n_steps, store=store, engine=engine)
        final = LeapfrogState(prev=tr.prev, cur=tr.Z)
        if not store:  # reversible mode: the same arithmetic, no states kept
            return tr.Z, IntegratorCache(final=final, steps=None)
        tr.M = M

        def make_step(j, tr=tr):  # the numba trajectory holds no σ' stack: recomputed here for step j
            return LeapfrogStepCache(Y=tr.states[j], dsigma=dense_dsigma(tr.dsigma, tr.M, tr.states, j))

        return tr.Z, FusedIntegratorCache(final=final, trajectory=tr, engine=engine, make_step=make_step,
                                          n_steps=self.n_steps)

    def _fused_jmv(self, dtheta, dY, cache):
        from ..kernels.timestep import leapfrog_jmv

        dM = db = None
        if dtheta is not None:
            dM, db = self._stacked(self._step_stack(dtheta))
        tr = cache.trajectory
        return leapfrog_jmv(tr.M, tr.states, tr.dsigma, self.h, dY0=dY, dM=dM, db=db, engine=cache.engine)

    def _fused_jtmv(self, W, cache, need_theta, need_Y):
        from ..kernels.timestep import leapfrog_jtmv

        tr = cache.trajectory
        dM, db, dY0 = leapfrog_jtmv(W, tr.M, tr.states, tr.dsigma, self.h, need_theta=need_theta,
                                    engine=cache.engine)
        dtheta = None
        if need_theta:
            xp = get_array_module(W)
            N, nK = dM.shape[0], self._n_K
            g = xp.empty((N, self._n_theta_step), dtype=W.dtype)
            g[:, :nK] = dM.transpose(0, 2, 1).reshape(N, nK)
            if self.bias == "scalar":
                g[:, nK] = db.sum(axis=1)
            elif self.bias == "vector":
                g[:, nK:] = db
            dtheta = self._step_stack_T(g)
        return dtheta, (dY0 if need_Y else None)

    # ------------------------------------------------------ analysis tools
    def trajectory(self, theta, Y):
        """All states ``Y_0, …, Y_N`` of the forward pass, shape
        ``(n_steps + 1, n_examples, n_features)``."""
        theta, xp, _ = self._prepare(theta, Y)
        engine = self._fused_engine(Y)
        if engine is not None:  # the forward pass's own arithmetic
            _, cache = self._fused_forward(theta, Y, engine, store=True)
            return xp.concatenate([cache.trajectory.states, cache.trajectory.Z[None]])
        C = self.coefficients(theta)
        s = self._initial_state(Y)
        out = [s.cur]
        for j in range(self.n_steps):
            s, _ = self._step(self.basis.weights_at(C, j), s, False)
            out.append(s.cur)
        return xp.stack(out)

    def reconstruct_trajectory(self, theta, cache):
        """``Y_{−1}, Y_0, …, Y_N`` recomputed backwards from the final pair in
        ``cache.final`` (what the reversible ``JTmv`` sees), shape
        ``(n_steps + 2, n_examples, n_features)``; ``Y_{−1}`` should equal ``Y_0``."""
        theta = self._validated_theta_cache(theta, cache)
        xp = get_array_module(cache.final.cur)
        out = [cache.final.cur, cache.final.prev]
        for s in self._backward_states(theta, cache.final):
            out.append(s.prev)
        return xp.stack(out[::-1])

    def reconstruct_input(self, theta, cache):
        """``Y_0`` recomputed backwards from ``cache.final`` without storing states."""
        theta = self._validated_theta_cache(theta, cache)
        s = cache.final
        for s in self._backward_states(theta, cache.final):
            pass
        return s.cur

    def __repr__(self):
        return (f"Leapfrog(n_features={self.n_features}, n_steps={self.n_steps}, final_time={self.final_time}, "
                f"activation={self.activation!r}, bias={self.bias!r}, basis={self.basis!r}, "
                f"reversible={self.reversible}, engine={self.engine!r})")
