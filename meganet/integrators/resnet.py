r"""Residual network as forward Euler: ``Y_{j+1} = Y_j + h F(θ(t_j), Y_j)`` (Meganet.m ``ResNN.m``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import get_array_module
from ..core.validation import check_option
from ..kernels import ENGINES
from ._fused import FusedSweeps
from .block import TimeSteppingBlock

__all__ = ["ResNet", "ResNetCache", "FusedResNetCache"]

_JVP_ENGINES = ("numba",)  # engines with a one-sweep jvp kernel (kernels.timestep.resnet_dense_jvp)


@dataclass
class ResNetCache:
    """States and layer caches of a forward Euler pass."""

    states: list  #: Y_0, …, Y_{N−1}: the input of the layer at each step
    layer_caches: list  #: the layer's cache at each step


@dataclass
class FusedResNetCache(ResNetCache):
    """Cache of the fused sweep (:mod:`meganet.kernels.timestep`) of a dense ResNet.

    ``states[j]`` is ``Y_j`` as in :class:`ResNetCache` (here views of one
    array (N, n_examples, n)); there are no per-step layer caches
    (``layer_caches`` is None).
    """

    #: σ'(U_j): an array (N, n_examples, n), or the numba engine's SigmaFromStates (σ' recomputed from the
    #: states; see kernels.timestep.DenseTrajectory)
    dsigma: object = None
    M: object = None  #: step matrices (N or 1, n, n), U_j = Y_j M_j + b_j
    engine: str = "numba"  #: the kernel engine that produced it


class ResNet(FusedSweeps, TimeSteppingBlock):
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
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        For a dense layer (``SingleLayer`` of ``Dense`` or ``AntisymmetricDense``
        with optional bias, no normalization, a built-in activation) the whole
        sweep (forward, ``Jmv``, ``JTmv``) runs in one compiled kernel of
        :mod:`meganet.kernels.timestep` (``'auto'``: numba for numpy arrays
        when installed, cupy for cupy arrays up to width 32).  ``'numpy'``, other layers and per-example
        gradients use the step-by-step loop below.  With numba, ``jvp`` advances
        the state and the tangent together in one kernel sweep and stores no
        states (elsewhere it is forward + ``Jmv``).

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

    def __init__(self, layer, *, n_steps, final_time, basis=None, engine="auto"):
        super().__init__(layer, n_steps=n_steps, final_time=final_time, basis=basis)
        self.engine = check_option("engine", engine, ENGINES)
        self._dense_kind = _dense_kind(layer)
        if self.engine in ("numba", "cupy") and self._dense_kind is None:
            raise ValueError(
                f"engine={self.engine!r} fuses the steps of a dense layer (SingleLayer of Dense or "
                f"AntisymmetricDense, no normalization, built-in activation), got {layer!r}; use engine='auto' "
                "(or choose the engines of the layer's own elements)"
            )

    # ------------------------------------------------------- fused sweeps
    def _fused_supported(self):
        return self._dense_kind is not None

    def _step_matrices(self, W):
        """``(M, b)`` of all steps from the step weights ``W`` (N, n_θ)."""
        n = self.layer.transform.shape_in[0]
        b = W[:, n * n : n * n + n] if self.layer.n_theta > n * n else None
        return self._matrix_map(dtheta_K(W, n)), b

    def _matrix_map(self, K, affine=True):
        """``M_j`` from ``K_j`` (or ``∂M[dK]`` with ``affine=False``): Dense ``Kᵀ``,
        antisymmetric ``s(Kᵀ − K − γI)`` (row form of ``Y A(K)ᵀ``)."""
        Kt = K.transpose(0, 2, 1)
        if self._dense_kind == "dense":
            return Kt
        T = self.layer.transform
        M = T.scale * (Kt - K)
        if affine and T.gamma:
            xp = get_array_module(K)
            M = M - (T.scale * T.gamma) * xp.eye(K.shape[1], dtype=K.dtype)
        return M

    def _matrix_map_T(self, dM):
        """Adjoint of ``dK ↦ ∂M[dK]``: Dense ``dMᵀ``, antisymmetric ``s(dMᵀ − dM)``."""
        dMt = dM.transpose(0, 2, 1)
        if self._dense_kind == "dense":
            return dMt
        return self.layer.transform.scale * (dMt - dM)

    def _fused_forward(self, theta, Y, engine):
        from ..kernels.timestep import resnet_dense_forward

        M, b = self._step_matrices(self._step_stack(theta))
        tr = resnet_dense_forward(Y, M, b, self.h, self.layer.activation, n_steps=self.n_steps, engine=engine)
        return tr.Z, FusedResNetCache(states=tr.states, layer_caches=None, dsigma=tr.dsigma, M=M, engine=engine)

    def _step_perturbations(self, dtheta):
        """``(∂M, ∂b)`` of all steps for the weight perturbation ``dtheta`` (both None for None)."""
        if dtheta is None or self.layer.n_theta == 0:
            return None, None
        dW = self._step_stack(dtheta)
        n = self.layer.transform.shape_in[0]
        dM = self._matrix_map(dtheta_K(dW, n), affine=False)
        db = dW[:, n * n : n * n + n] if self.layer.n_theta > n * n else None
        return dM, db

    def _fused_jmv(self, dtheta, dY, cache):
        from ..kernels.timestep import resnet_dense_jmv

        dM, db = self._step_perturbations(dtheta)
        return resnet_dense_jmv(cache.M, cache.states, cache.dsigma, self.h, dY0=dY, dM=dM, db=db,
                                engine=cache.engine)

    def _fused_jtmv(self, W, cache, need_theta):
        from ..kernels.timestep import resnet_dense_jtmv

        dM, db, dY0 = resnet_dense_jtmv(W, cache.M, cache.states, cache.dsigma, self.h, need_theta=need_theta,
                                        engine=cache.engine)
        dtheta = None
        if need_theta:
            xp = get_array_module(W)
            N, n = dM.shape[0], dM.shape[1]  # N = 1 for shared (constant) weights
            g = xp.empty((N, self.layer.n_theta), dtype=W.dtype)
            g[:, : n * n] = self._matrix_map_T(dM).reshape(N, n * n)
            if db is not None and self.layer.n_theta > n * n:
                g[:, n * n :] = db
            dtheta = self._step_stack_T(g)
        return dtheta, dY0

    # ---------------------------------------------------- element interface
    def _forward(self, theta, Y):
        engine = self._fused_engine(Y)
        if engine is not None:
            return self._fused_forward(theta, Y, engine)
        return self._forward_steps(theta, Y)

    def _apply(self, theta, Y):
        """Cache-free forward: the fused sweep stores no states; the step loop keeps none."""
        engine = self._fused_engine(Y)
        if engine is not None:
            from ..kernels.timestep import resnet_dense_forward

            M, b = self._step_matrices(self._step_stack(theta))
            return resnet_dense_forward(Y, M, b, self.h, self.layer.activation, n_steps=self.n_steps,
                                        engine=engine, store=False).Z
        C = self.coefficients(theta)
        for j in range(self.n_steps):  # the caller's Y is never modified; from step 1 on Y is our own array
            Y = self.layer._apply_step(self.basis.weights_at(C, j), Y, self.h, j > 0)
        return Y

    def _jvp(self, theta, Y, dtheta, dY):
        """One-off forward-mode product: with a one-sweep kernel (numba) the state
        and the tangent advance together and no state is stored; the fused cupy
        sweep uses forward + ``Jmv``; the step loop advances
        ``(Y, dY) ← (Y + h F, dY + h J_F[dθ_j, dY])`` with the layer's own
        ``_jvp``, so only one step's cache exists at a time."""
        engine = self._fused_engine(Y)
        if engine is None:
            return self._jvp_steps(theta, Y, dtheta, dY)
        if engine not in _JVP_ENGINES:
            return super()._jvp(theta, Y, dtheta, dY)
        from ..kernels.timestep import resnet_dense_jvp

        M, b = self._step_matrices(self._step_stack(theta))
        dM, db = self._step_perturbations(dtheta)
        return resnet_dense_jvp(Y, M, b, self.h, self.layer.activation, dY0=dY, dM=dM, db=db,
                                n_steps=self.n_steps, engine=engine)

    def _jvp_steps(self, theta, Y, dtheta, dY):
        C = self.coefficients(theta)
        dC = self.coefficients(dtheta) if dtheta is not None and self.layer.n_theta > 0 else None
        h, F = self.h, self.layer
        for j in range(self.n_steps):
            w = self.basis.weights_at(C, j)
            dw = self.basis.weights_at(dC, j) if dC is not None else None
            Y, dY = F._jvp_step(w, Y, dw, dY, h)
        if dY is None:
            xp = get_array_module(Y)
            dY = xp.zeros_like(Y)
        return Y, dY

    def _forward_steps(self, theta, Y):
        C = self.coefficients(theta)
        h, F = self.h, self.layer
        states, caches = [], []
        for j in range(self.n_steps):
            states.append(Y)
            Y, c = F._forward_step(self.basis.weights_at(C, j), Y, h)
            caches.append(c)
        return Y, ResNetCache(states=states, layer_caches=caches)

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        """``dZ = J_θ dθ + J_Y dY`` by the forward-mode recursion above."""
        if isinstance(cache, FusedResNetCache):
            if self.layer.n_theta == 0:
                dtheta = None
            return self._fused_jmv(dtheta, dY, cache)
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
        if isinstance(cache, FusedResNetCache):
            if not per_example:
                dtheta, dY = self._fused_jtmv(W, cache, need_theta and self.layer.n_theta > 0)
                return dtheta, (dY if need_Y else None)
            _, cache = self._forward_steps(theta, Y)  # per-example gradients: step-by-step caches
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
            dth, Wj = F._JTmv_step(W, self.basis.weights_at(C, j), cache.states[j], cache.layer_caches[j], h,
                                   want_theta, want_Y, per_example)
            if want_theta and dth is not None:
                self.basis.add_adjoint(G, j, dth, scale=h)
            if want_Y:
                W = Wj
        dtheta = None
        if G is not None:
            dtheta = G.reshape(Y.shape[0], -1) if per_example else G.reshape(-1)
        return dtheta, (W if need_Y else None)

    # ------------------------------------------------ second-order products
    # (has_second_order, second_order_missing: TimeSteppingBlock; _second_order: Element, from the step)
    def _second_order_step(self, W, dW, dtheta, dY, theta, Y, cache):
        r"""Second-order adjoint of forward Euler (the change of ``JTmv(W)`` along ``(dθ, dY)``).

        Forward tangent sweep ``dY_{j+1} = dY_j + h J_F_j (dθ(t_j), dY_j)``; then the adjoint sweep of
        :meth:`_JTmv` backwards (``W_N = W``, ``W_j = W_{j+1} + h J_{Y,F_j}ᵀ W_{j+1}``) carrying its change
        (``δW_N = 0``)

        .. math:: δW_j = δW_{j+1} + h\,[J_{Y,F_j}ᵀ δW_{j+1} + S_{Y,j}],\qquad
                  d_{θ_k} \mathrel{+}= h B_{jk} [J_{θ,F_j}ᵀ δW_{j+1} + S_{θ,j}],

        where ``(S_θ, S_Y)_j`` is the layer's second-order adjoint with cotangent ``W_{j+1}`` along
        ``(dθ(t_j), dY_j)``; ``d_Y = δW_0``.  The fused (compiled) cache has no per-step layer caches, so
        the step-by-step forward pass is recomputed here.
        """
        if isinstance(cache, FusedResNetCache):
            _, cache = self._forward_steps(theta, Y)
        xp = get_array_module(Y)
        h, F = self.h, self.layer
        C = self.coefficients(theta)
        dC = self.coefficients(dtheta) if dtheta is not None and F.n_theta > 0 else None
        weights = [self.basis.weights_at(C, j) for j in range(self.n_steps)]
        dweights = [self.basis.weights_at(dC, j) if dC is not None else None for j in range(self.n_steps)]
        tangents, d = [], dY
        for j in range(self.n_steps):
            tangents.append(d)
            if dweights[j] is None and d is None:
                continue
            dK = F._Jmv(dweights[j], d, weights[j], cache.states[j], cache.layer_caches[j])
            d = h * dK if d is None else d + h * dK
        want_theta = F.n_theta > 0
        G = xp.zeros((self.basis.n_basis, F.n_theta), dtype=Y.dtype) if want_theta else None
        for j in range(self.n_steps - 1, -1, -1):
            w, Yj, c = weights[j], cache.states[j], cache.layer_caches[j]
            g, step = F._second_order_step(W, dW, dweights[j], tangents[j], w, Yj, c)
            if want_theta and g is not None:
                self.basis.add_adjoint(G, j, g, scale=h)
            if step is not None:
                dW = h * step if dW is None else dW + h * step
            if j > 0:
                W = W + h * F._JTmv(W, w, Yj, c, False, True, False)[1]
        return (G.reshape(-1) if G is not None else None), dW



def dtheta_K(W, n):
    """The ``K`` block ``(N, n, n)`` of step weights ``W`` (N, n_θ)."""
    return W[:, : n * n].reshape(-1, n, n)


def _dense_kind(layer):
    """``'dense'`` or ``'antisymmetric'`` if the fused kernels cover ``layer``, else None."""
    from ..kernels.activation import supports
    from ..layers.single import SingleLayer
    from ..transforms.antisymmetric import AntisymmetricDense
    from ..transforms.dense import Dense

    if type(layer) is not SingleLayer or layer.normalization is not None or not supports(layer.activation):
        return None
    T = layer.transform
    if type(T) is Dense and T.n_in_ == T.n_out_:
        return "dense"
    if type(T) is AntisymmetricDense:
        return "antisymmetric"
    return None
