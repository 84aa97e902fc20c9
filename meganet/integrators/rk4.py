r"""Residual network with the classical Runge–Kutta 4 scheme (Meganet.m ``ResNNrk4.m``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import get_array_module
from .block import TimeSteppingBlock

__all__ = ["RK4ResNet", "RK4StepCache", "RK4Cache"]

# Butcher tableau of classical RK4: stage s reads Y_j + h·A[s]·K_{s−1} at time t_j + C[s]·h
_A = (0.0, 0.5, 0.5, 1.0)
_B = (1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0)
_C = (0.0, 0.5, 0.5, 1.0)


@dataclass
class RK4StepCache:
    """One RK4 step: the input of the layer at each of the four stages and its cache."""

    stage_inputs: list  #: Y_j, Y_j + h/2 K_1, Y_j + h/2 K_2, Y_j + h K_3
    stage_caches: list  #: the layer's cache at each stage


@dataclass
class RK4Cache:
    steps: list  #: one RK4StepCache per step


class RK4ResNet(TimeSteppingBlock):
    r"""Residual network block integrated with classical Runge–Kutta 4.

    For ``j = 0, …, N−1`` and ``h = T/N``:

    .. math::
        K_1 &= F(θ(t_j),\ Y_j), &
        K_2 &= F(θ(t_j + h/2),\ Y_j + \tfrac h2 K_1), \\
        K_3 &= F(θ(t_j + h/2),\ Y_j + \tfrac h2 K_2), &
        K_4 &= F(θ(t_j + h),\ Y_j + h K_3), \\
        Y_{j+1} &= Y_j + \tfrac h6 (K_1 + 2K_2 + 2K_3 + K_4), & Z &= Y_N.

    Fourth order in h for smooth θ(t) (the RK4 ResNets of the GNvpro
    experiments, Newman, Ruthotto, Hart & van Bloemen Waanders, "Train like a
    (Var)Pro", 2020; Meganet.m ``integrators/ResNNrk4.m``).

    Weights at the stage times (see :mod:`meganet.integrators.time_basis`):

    * hat and constant bases are functions of time and are evaluated at
      ``t_j``, ``t_j + h/2`` and ``t_j + h``;
    * the identity basis (default) and user matrices define one weight set per
      step, used for all four stages of step ``j`` (θ piecewise constant on
      ``[t_j, t_{j+1}]``).  Then the scheme is the exact RK4 step of an ODE
      with piecewise constant weights.
    * ``basis=TimeBasis.hat(N, 2N + 1)`` puts a node at every stage time — the
      parameterization of Meganet.m ``ResNNrk4.m`` (``A = eye(2nt − 1)``).

    Derivatives are hand-coded through the stages:
    ``dK_s = J_θF·dθ(t_j + c_s h) + J_YF·(dY_j + h a_s dK_{s−1})``,
    ``dY_{j+1} = dY_j + h Σ b_s dK_s``; the adjoint runs the stages in reverse,
    ``V_4 = b_4 W``, ``V_s = b_s W + h a_{s+1} U_{s+1}`` with
    ``U_s = J_YF_sᵀ V_s``, ``W ← W + h Σ U_s`` and ``dθ(t_j + c_s h) += h J_θF_sᵀ V_s``.

    Parameters
    ----------
    layer : Element
        The right-hand side ``F``; ``shape_in`` must equal ``shape_out``.
    n_steps : int
        N ≥ 1.
    final_time : float
        T > 0.
    basis : None, 'identity', 'constant', TimeBasis or array (n_steps, n_basis)

    Shapes
    ------
    theta : (n_basis · layer.n_theta,);  Y : (n_examples, *layer.shape_in) → Z : same shape.
    """

    def _stage_weights(self, C, j):
        """``θ(t_j + c_s h)`` for the four stages (stages 2 and 3 share one array)."""
        w0 = self.basis.weights_at(C, j, 0.0)
        wh = self.basis.weights_at(C, j, 0.5)
        w1 = self.basis.weights_at(C, j, 1.0)
        return (w0, wh, wh, w1)

    def _forward(self, theta, Y):
        C = self.coefficients(theta)
        h, F = self.h, self.layer
        steps = []
        for j in range(self.n_steps):
            th = self._stage_weights(C, j)
            inputs, caches = [], []
            K, acc = None, None
            for s in range(4):
                Ys = Y if s == 0 else Y + (_A[s] * h) * K
                K, c = F._forward(th[s], Ys)
                inputs.append(Ys)
                caches.append(c)
                if acc is None:
                    acc = _B[s] * K
                else:
                    acc += _B[s] * K
            steps.append(RK4StepCache(stage_inputs=inputs, stage_caches=caches))
            Y = Y + h * acc
        return Y, RK4Cache(steps=steps)

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        C = self.coefficients(theta)
        dC = self.coefficients(dtheta) if dtheta is not None and self.layer.n_theta > 0 else None
        h, F = self.h, self.layer
        for j in range(self.n_steps):
            if dC is None and dY is None:
                continue
            st = cache.steps[j]
            th = self._stage_weights(C, j)
            dth = self._stage_weights(dC, j) if dC is not None else (None,) * 4
            dK, acc = None, None
            for s in range(4):
                dYs = dY if s == 0 else _axpy(_A[s] * h, dK, dY)
                dK = F._Jmv(dth[s], dYs, th[s], st.stage_inputs[s], st.stage_caches[s])
                if acc is None:
                    acc = _B[s] * dK
                else:
                    acc += _B[s] * dK
            dY = h * acc if dY is None else dY + h * acc
        if dY is None:
            xp = get_array_module(Y)
            dY = xp.zeros((Y.shape[0], *self.shape_out), dtype=Y.dtype)
        return dY

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
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
            st = cache.steps[j]
            th = self._stage_weights(C, j)
            U_next, U_sum = None, None
            for s in range(3, -1, -1):
                V = _B[s] * W if U_next is None else _axpy(_A[s + 1] * h, U_next, _B[s] * W)
                # U_s feeds stage s−1 (needed whenever stage s−1 is visited) and W
                want_U = want_Y or (s > 0 and want_theta)
                g, U = F._JTmv(V, th[s], st.stage_inputs[s], st.stage_caches[s], want_theta, want_U, per_example)
                if want_theta and g is not None:
                    self.basis.add_adjoint(G, j, g, offset=_C[s], scale=h)
                U_next = U if want_U else None
                if want_Y and U is not None:
                    U_sum = U if U_sum is None else U_sum + U
            if want_Y and U_sum is not None:
                W = W + h * U_sum
        dtheta = None
        if G is not None:
            dtheta = G.reshape(Y.shape[0], -1) if per_example else G.reshape(-1)
        return dtheta, (W if need_Y else None)

    # ------------------------------------------------ second-order products
    # (has_second_order, second_order_missing: TimeSteppingBlock; _second_order: Element, from the step)
    def _second_order_step(self, W, dW, dtheta, dY, theta, Y, cache):
        r"""Second-order adjoint of RK4 (the change of ``JTmv(W)`` along ``(dθ, dY)``, cotangent change ``dW``).

        Forward tangent sweep through the stages as in :meth:`_Jmv`, keeping every stage's input tangent
        ``dY_{j,s}``; then the adjoint sweep of :meth:`_JTmv` backwards, carrying the changes of its
        variables: ``δV_s = b_s δW + h a_{s+1} δU_{s+1}``,
        ``(δg_s, δU_s) = J_{F_s}ᵀ δV_s + S_{F_s}(V_s; dθ(t_j + c_s h), dY_{j,s})``,
        ``δW ← δW + h Σ_s δU_s`` and ``d_θ(t_j + c_s h) += h δg_s``.
        """
        xp = get_array_module(Y)
        C = self.coefficients(theta)
        dC = self.coefficients(dtheta) if dtheta is not None and self.layer.n_theta > 0 else None
        h, F = self.h, self.layer
        tangents = []
        for j in range(self.n_steps):
            st = cache.steps[j]
            th = self._stage_weights(C, j)
            dth = self._stage_weights(dC, j) if dC is not None else (None,) * 4
            dK, acc, ts = None, None, []
            for s in range(4):
                dYs = dY if s == 0 else _axpy(_A[s] * h, dK, dY)
                ts.append(dYs)
                if dth[s] is None and dYs is None:
                    dK = None
                    continue
                dK = F._Jmv(dth[s], dYs, th[s], st.stage_inputs[s], st.stage_caches[s])
                acc = _B[s] * dK if acc is None else acc + _B[s] * dK
            tangents.append((dth, ts))
            if acc is not None:
                dY = h * acc if dY is None else dY + h * acc
        want_theta = F.n_theta > 0
        G = xp.zeros((self.basis.n_basis, F.n_theta), dtype=Y.dtype) if want_theta else None
        for j in range(self.n_steps - 1, -1, -1):
            st = cache.steps[j]
            th = self._stage_weights(C, j)
            dth, ts = tangents[j]
            U_next = dU_next = U_sum = dU_sum = None
            for s in range(3, -1, -1):
                V = _B[s] * W if U_next is None else _axpy(_A[s + 1] * h, U_next, _B[s] * W)
                dV = None if dW is None else _B[s] * dW
                if s < 3:
                    dV = _axpy(_A[s + 1] * h, dU_next, dV)
                Ys, cs = st.stage_inputs[s], st.stage_caches[s]
                g, dU = F._second_order_step(V, dV, dth[s], ts[s], th[s], Ys, cs)
                if want_theta and g is not None:
                    self.basis.add_adjoint(G, j, g, offset=_C[s], scale=h)
                U = F._JTmv(V, th[s], Ys, cs, False, True, False)[1] if (s > 0 or j > 0) else None
                U_next, dU_next = U, dU
                if U is not None and j > 0:
                    U_sum = U if U_sum is None else U_sum + U
                if dU is not None:
                    dU_sum = dU if dU_sum is None else dU_sum + dU
            if j > 0 and U_sum is not None:
                W = W + h * U_sum
            if dU_sum is not None:
                dW = h * dU_sum if dW is None else dW + h * dU_sum
        return (G.reshape(-1) if G is not None else None), dW


def _axpy(a, x, y):
    """``y + a·x`` where ``None`` stands for zero (``a`` a Python float)."""
    if x is None:
        return y
    if y is None:
        return a * x
    return y + a * x
