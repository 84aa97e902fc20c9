"""Symmetric layer ``Z = −K(θ)ᵀ σ(N(K(θ)Y + b))`` (Ruthotto & Haber 2019, eq. 7; Meganet.m ``doubleSymLayer.m``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..activations import get_activation
from ..core.element import Element
from ..core.layout import Layout
from ..core.validation import check_bool
from ..kernels.activation import derivative_from_value_mul, supports
from ..transforms.base import Transform
from ._checks import check_layer_normalization
from .bias import channel_broadcast, channel_sum
from .pointwise import Pointwise

__all__ = ["SymmetricLayer", "SymmetricLayerCache"]


@dataclass
class SymmetricLayerCache:
    """Intermediates of :class:`SymmetricLayer` (``U → V → S``)."""

    U: object  #: K(θ_K) Y + b, the input of the normalization (None without normalization)
    norm: object  #: the normalization's cache (None without normalization)
    V: object  #: N(U), the input of σ (None without normalization: σ(K Y + b) is one fused pass)
    sigma: object  #: the Pointwise cache, holding σ'(V); None when σ' is recomputed from S (see SymmetricLayer)
    S: object  #: σ(V)


class SymmetricLayer(Element):
    r"""Symmetric layer, the residual function of the parabolic ResNet,

    .. math:: Z = -K(θ_K)^\top\, σ\big(N(K(θ_K) Y + b,\ θ_N)\big),

    (Ruthotto & Haber, "Deep neural networks motivated by partial differential
    equations", JMIV 2019, eq. 7; Meganet.m ``layers/doubleSymLayer.m``, whose
    normalization comes before the bias and which has an optional outer bias
    and normalization — here the bias comes first, as in
    :class:`~meganet.layers.SingleLayer`, and the outer terms are left out so
    that the symmetry below holds).  θ = (θ_K, b, θ_N), parts ``K, b, N``.

    Without normalization and with a monotone σ, the Jacobian w.r.t. ``Y``
    of one example, ``J_Y = −Kᵀ diag(σ'(KY + b)) K``, is symmetric negative
    semidefinite, so the forward Euler step ``Y + h F(θ, Y)`` is a stable
    discretization of a parabolic (diffusion-like) equation for small h.

    ``θ_K`` enters twice, which is why this is not a :class:`Chain`; the
    products are written out here once, from the transform's pieces:

    * ``dZ = −Kᵀ σ' ⊙ J_N[∂K[dθ_K]Y + K dY + db, dθ_N] − (∂K[dθ_K])ᵀ S``,
    * with ``dU = J_Nᵀ(σ' ⊙ (−K W))``:
      ``J_Yᵀ W = Kᵀ dU``, ``J_bᵀ W = Σ dU``, and
      ``J_{θ_K}ᵀ W = dK_adj(θ, Y, dU) − dK_adj(θ, W, S)``, the last term from
      ``⟨(∂K[dθ])ᵀ S, W⟩ = ⟨S, ∂K[dθ] W⟩``.

    Parameters
    ----------
    transform : Transform
        K, mapping ``shape_in`` to ``shape_out``; the layer maps ``shape_in``
        to itself.  Must implement ``K(θ)ᵀ`` (``_apply_T``) and the θ-adjoint
        (``_dK_adj``).
    activation : str or Activation, default 'tanh'
    normalization : Element or None
        Maps ``transform.shape_out`` to itself (e.g. BatchNorm, TVNorm).
    bias : bool, default True
        Per-channel bias after K (``transform.shape_out[0]`` entries).

    Shapes
    ------
    Y : (n_examples, *transform.shape_in) → Z : (n_examples, *transform.shape_in)
    """

    def __init__(self, transform, *, activation="tanh", normalization=None, bias=True):
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be a Transform, got {type(transform).__name__}")
        missing = [m for m in ("_apply_T", "_dK_adj") if getattr(type(transform), m) is getattr(Transform, m)]
        if missing:
            raise TypeError(
                f"transform {type(transform).__name__} must implement K(θ)ᵀ and its θ-adjoint for a "
                f"SymmetricLayer, but does not define {', '.join(missing)}"
            )
        mid = tuple(transform.shape_out)
        check_layer_normalization(normalization, mid, "transform.shape_out")
        self.transform = transform
        self.normalization = normalization
        self.bias = check_bool("bias", bias)
        # σ runs on the transform's kernel engine when it has one (Conv2d) and σ has a kernel, else 'auto'
        act = get_activation(activation)
        self.sigma = Pointwise(act, mid, engine=getattr(transform, "engine", "auto") if supports(act) else "auto")
        # built-in σ whose σ' is a function of σ (tanh, sigmoid, relu, identity): without normalization the
        # cache keeps S = σ(V) only (it is needed for the θ-adjoint anyway) and the products recompute σ'
        # from it — one state-sized array less per step, one elementwise pass more per product
        self._sigma_from_S = normalization is None and supports(act) and act.derivative_from_value_available
        self.activation = self.sigma.activation
        self.shape_in = self.shape_out = tuple(transform.shape_in)
        parts = [("K", transform.n_theta)]
        if self.bias:
            parts.append(("b", mid[0]))
        if normalization is not None:
            parts.append(("N", normalization.n_theta))
        self.layout = Layout(parts)

    def _init_theta(self, rng):
        """θ_K and θ_N from the transform and normalization; bias zero."""
        parts = [np.asarray(self.transform._init_theta(rng), dtype=np.float64).reshape(-1)]
        if self.bias:
            parts.append(np.zeros(self.transform.shape_out[0]))
        if self.normalization is not None:
            parts.append(np.asarray(self.normalization._init_theta(rng), dtype=np.float64).reshape(-1))
        return np.concatenate(parts)

    # ----------------------------------------------------------- forward
    def _forward(self, theta, Y):
        p = self.split(theta)
        T = self.transform
        U = T._apply(p.K, Y)
        if self.normalization is None:  # bias and σ in one pass; K Y + b is not kept
            if self._sigma_from_S:  # σ' = g(S) in the products: S is kept anyway, σ' is not
                S, sigma_cache = self.sigma._value_biased(U, p.b if self.bias else None), None
            else:
                S, sigma_cache = self.sigma._forward_biased(U, p.b if self.bias else None)
            Z = -T._apply_T(p.K, S)
            return Z, SymmetricLayerCache(U=None, norm=None, V=None, sigma=sigma_cache, S=S)
        if self.bias:
            U = U + channel_broadcast(p.b, U.ndim)
        if self.normalization is not None:
            V, norm_cache = self.normalization._forward(p.N, U)
        else:
            V, norm_cache = U, None
        S, sigma_cache = self.sigma._forward(theta[:0], V)
        Z = -T._apply_T(p.K, S)
        return Z, SymmetricLayerCache(U=U, norm=norm_cache, V=V, sigma=sigma_cache, S=S)

    def _dsigma(self, cache):
        """``σ'(V)``: kept by the forward pass, or recomputed from ``S = σ(V)``."""
        return cache.sigma.dsigma if cache.sigma is not None else self.activation.derivative_from_value(cache.S)

    def _dsigma_mul(self, cache, X):
        """``σ'(V) ⊙ X`` (one fused pass when ``σ'`` is recomputed from ``S``)."""
        if cache.sigma is not None:
            return cache.sigma.dsigma * X
        return derivative_from_value_mul(cache.S, X, self.activation, engine=self.sigma.engine)

    def _apply(self, theta, Y):
        """Cache-free forward; without normalization ``σ(K Y + b)`` in one pass, no ``σ'``."""
        if self.normalization is not None:
            return self._forward(theta, Y)[0]
        p = self.split(theta)
        T = self.transform
        # not in place: a kernel writing over its own input cannot vectorize (aliasing; 5× slower measured)
        S = self.sigma._value_biased(T._apply(p.K, Y), p.b if self.bias else None)
        Z = T._apply_T(p.K, S)
        Z *= -1  # a new array (every transform's _apply_T returns one)
        return Z

    # ------------------------------------------- fused forward Euler steps
    # Y + h F(Y) = Y − h Kᵀσ(KY + b) (JMIV 2019, eq. 7 in the forward Euler step eq. 2) with the element-wise
    # work in the convolutions' epilogues (meganet.kernels.epilogue): bias + σ on the way out of K Y,
    # "Y − h·" on the way out of Kᵀ S, σ'(S) ⊙ on the way out of K W; B2 measured in benchmarks/README.md.
    @property
    def _fused_steps(self):
        return self._sigma_from_S and self.transform.fused_epilogue

    def _value_ep(self, p):
        from ..kernels.epilogue import Epilogue

        return Epilogue(bias=p.b if self.bias else None, activation=self.activation)

    def _apply_step(self, theta, Y, h, inplace):
        if not self._fused_steps:
            return super()._apply_step(theta, Y, h, inplace)
        p = self.split(theta)
        return self.transform._symmetric_step(p.K, Y, p.b if self.bias else None, self.activation, h, False,
                                              out=Y if inplace else None)[0]

    def _forward_step(self, theta, Y, h):
        if not self._fused_steps:
            return super()._forward_step(theta, Y, h)
        p = self.split(theta)
        Z, S = self.transform._symmetric_step(p.K, Y, p.b if self.bias else None, self.activation, h, True)
        return Z, SymmetricLayerCache(U=None, norm=None, V=None, sigma=None, S=S)

    def _jvp_step(self, theta, Y, dtheta, dY, h):
        """``dY + h dF`` with ``dF = −Kᵀ(σ' ⊙ dU) − (∂K[dθ_K])ᵀ S``, ``dU = K dY + ∂K[dθ_K] Y + db``:
        ``σ' ⊙`` in the epilogue of the last product that builds dU, both transposed products accumulated
        into the new tangent."""
        if not self._fused_steps or (dtheta is None and dY is None):
            return super()._jvp_step(theta, Y, dtheta, dY, h)
        from ..kernels.epilogue import Epilogue

        p, T, act = self.split(theta), self.transform, self.activation
        S = T._apply_ep(p.K, Y, self._value_ep(p))
        dp = self.split(dtheta) if dtheta is not None else None
        db = dp.b if dp is not None and self.bias else None
        if dp is None:
            dS = T._apply_ep(p.K, dY, Epilogue(activation=act, dsigma_from=S))
        elif dY is None:
            dS = T._dK_mv_ep(p.K, dp.K, Y, Epilogue(bias=db, activation=act, dsigma_from=S))
        else:
            dS = T._apply_ep(p.K, dY, Epilogue(bias=db))
            dS = T._dK_mv_ep(p.K, dp.K, Y, Epilogue(add=dS, activation=act, dsigma_from=S), out=dS)
        Z = T._apply_T_ep(p.K, S, Epilogue(alpha=-h, add=Y))
        dZ = T._apply_T_ep(p.K, dS, Epilogue(alpha=-h, add=dY))
        if dp is not None:
            dZ = T._dKT_mv_ep(p.K, dp.K, S, Epilogue(alpha=-h, add=dZ), out=dZ)
        return Z, dZ

    def _JTmv_step(self, W, theta, Y, cache, h, need_theta, need_Y, per_example):
        """``dU = σ' ⊙ (−K W)`` in one product (σ' from the kept S) and ``W + h Kᵀ dU`` in another; the
        θ-part as in :meth:`_JTmv`."""
        if not (self._fused_steps and cache.sigma is None):
            return super()._JTmv_step(W, theta, Y, cache, h, need_theta, need_Y, per_example)
        from ..kernels.epilogue import Epilogue

        p, T = self.split(theta), self.transform
        dU = T._apply_ep(p.K, W, Epilogue(alpha=-1.0, activation=self.activation, dsigma_from=cache.S))
        dtheta = self._theta_adjoint(p, Y, W, cache, dU, None, per_example) if need_theta else None
        Wn = T._apply_T_ep(p.K, dU, Epilogue(alpha=h, add=W)) if need_Y else None
        return dtheta, Wn

    def _theta_adjoint(self, p, Y, W, cache, dU, dthN, per_example):
        """``J_θᵀ W`` from ``dU``: ``dK_adj(θ, Y, dU) − dK_adj(θ, W, S)``, ``Σ dU``, and ``θ_N``'s part."""
        T = self.transform
        xp = get_array_module(Y)
        shape = (Y.shape[0], self.n_theta) if per_example else (self.n_theta,)
        dtheta = xp.zeros(shape, dtype=Y.dtype)
        dp = self.split(dtheta)
        # θ_K inside (K Y) and outside (−Kᵀ S): <(∂K[dθ])ᵀ S, W> = <dθ, dK_adj(θ, W, S)>
        dp.K[...] = T._dK_adj(p.K, Y, dU, per_example) - T._dK_adj(p.K, W, cache.S, per_example)
        if self.bias:
            dp.b[...] = channel_sum(dU, per_example)
        if dthN is not None:
            dp.N[...] = dthN
        return dtheta

    # ------------------------------------------------------- derivatives
    def _Jmv(self, dtheta, dY, theta, Y, cache):
        """``dZ = −Kᵀ σ' ⊙ J_N[∂K[dθ_K]Y + K dY + db, dθ_N] − (∂K[dθ_K])ᵀ S``."""
        p = self.split(theta)
        T, N = self.transform, self.normalization
        dU, dthN, dp = None, None, None
        if dtheta is not None:
            dp = self.split(dtheta)
            dU = T._dK_mv(p.K, dp.K, Y)
            if self.bias:
                dU = dU + channel_broadcast(dp.b, dU.ndim)
            if N is not None and N.n_theta > 0:
                dthN = dp.N
        if dY is not None:
            KdY = T._apply(p.K, dY)
            dU = KdY if dU is None else dU + KdY
        if dU is None:  # only a zero-length dθ was given
            xp = get_array_module(Y)
            return xp.zeros(Y.shape, dtype=Y.dtype)
        dV = N._Jmv(dthN, dU, p.N, cache.U, cache.norm) if N is not None else dU
        dS = self._dsigma_mul(cache, dV)
        dZ = -T._apply_T(p.K, dS)
        if dp is not None:
            dZ = dZ - T._dKT_mv(p.K, dp.K, cache.S)
        return dZ

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        """``dU = J_Nᵀ(σ' ⊙ (−K W))``; ``J_Yᵀ W = Kᵀ dU``, ``J_bᵀ W = Σ dU``,
        ``J_{θ_K}ᵀ W = dK_adj(θ, Y, dU) − dK_adj(θ, W, S)``."""
        p = self.split(theta)
        T, N = self.transform, self.normalization
        dS = -T._apply(p.K, W)
        dV = self._dsigma_mul(cache, dS)
        dthN = None
        if N is not None:
            want_N = need_theta and N.n_theta > 0
            dthN, dU = N._JTmv(dV, p.N, cache.U, cache.norm, want_N, True, per_example)
        else:
            dU = dV
        dtheta = self._theta_adjoint(p, Y, W, cache, dU, dthN, per_example) if need_theta else None
        dY = T._apply_T(p.K, dU) if need_Y else None
        return dtheta, dY

    # ------------------------------------------------ second-order products
    @property
    def has_second_order(self):
        """True when the transform, the normalization (if any) and σ have second-order products."""
        return self.second_order_missing() is None

    def second_order_missing(self):
        for part in (self.transform, self.normalization, self.sigma):
            if part is not None:
                missing = part.second_order_missing()
                if missing is not None:
                    return missing
        return None

    def _second_order(self, W, dtheta, dY, theta, Y, cache):
        r"""``g = ⟨W, −Kᵀσ(N(U))⟩ = ⟨P, σ(V)⟩`` with ``P = −K W``, ``U = K Y + b``, ``V = N(U, θ_N)``.

        Its gradient: ``D = σ'(V) ⊙ P``, ``(∇_{θ_N}, E) = J_Nᵀ D``, ``∇_Y = Kᵀ E``, ``∇_b = Σ E``,
        ``∇_{θ_K} = dK_adj(Y, E) − dK_adj(W, S)`` (``S = σ(V)``).  Along ``(dθ_K, db, dθ_N, dY)``, with
        ``dU = ∂K[dθ_K]Y + K dY + db``, ``dV = J_N(dθ_N, dU)``, ``dP = −∂K[dθ_K] W`` and
        ``δD = σ''(V) ⊙ dV ⊙ P + σ'(V) ⊙ dP``: ``(δ∇_{θ_N}, δE) = J_Nᵀ δD + S_N(D; dθ_N, dU)`` (the
        normalization's second-order step; without normalization ``δE = δD``),
        ``δ∇_Y = (∂K[dθ_K])ᵀ E + Kᵀ δE``, ``δ∇_b = Σ δE``,
        ``δ∇_{θ_K} = dK_adj(dY, E) + dK_adj(Y, δE) − dK_adj(W, σ'(V) ⊙ dV)`` plus, for K nonlinear in θ, the
        changes of ``dK_adj`` itself along ``dθ_K`` (the transform's ``_dK_adj_deriv``).
        """
        p = self.split(theta)
        T, N = self.transform, self.normalization
        if N is None:
            U = V = T._apply(p.K, Y)
            if self.bias:
                U = V = U + channel_broadcast(p.b, U.ndim)
        else:
            U, V = cache.U, cache.V
        dsigma = self._dsigma(cache)
        P = -T._apply(p.K, W)
        D = dsigma * P
        dp = self.split(dtheta) if dtheta is not None else None
        dU = T._apply(p.K, dY) if dY is not None else None
        dP = dthN = None
        if dp is not None:
            dKY = T._dK_mv(p.K, dp.K, Y)
            dU = dKY if dU is None else dU + dKY
            if self.bias:
                dU = dU + channel_broadcast(dp.b, dU.ndim)
            dP = -T._dK_mv(p.K, dp.K, W)
            if N is not None and N.n_theta > 0:
                dthN = dp.N
        dV = N._Jmv(dthN, dU, p.N, U, cache.norm) if N is not None else dU
        dD = self.activation.second_derivative(V) * dV * P
        if dP is not None:
            dD = dD + dsigma * dP
        xp = get_array_module(Y)
        d_theta = xp.zeros(self.n_theta, dtype=Y.dtype)
        out = self.split(d_theta)
        if N is not None:
            E = N._JTmv(D, p.N, U, cache.norm, False, True, False)[1]
            gN, dE = N._second_order_step(D, dD, dthN, dU, p.N, U, cache.norm)
            if gN is not None and N.n_theta > 0:
                out.N[...] = gN
        else:
            E, dE = D, dD
        gK = T._dK_adj(p.K, Y, dE, False) - T._dK_adj(p.K, W, dsigma * dV, False)
        if dY is not None:
            gK = gK + T._dK_adj(p.K, dY, E, False)
        if dp is not None:  # K nonlinear in θ: dK_adj itself changes with θ (None for K affine in θ)
            d1, d2 = T._dK_adj_deriv(p.K, dp.K, Y, E), T._dK_adj_deriv(p.K, dp.K, W, cache.S)
            if d1 is not None:
                gK = gK + d1
            if d2 is not None:
                gK = gK - d2
        out.K[...] = gK
        if self.bias:
            out.b[...] = channel_sum(dE, False)
        d_Y = T._apply_T(p.K, dE)
        if dp is not None:
            d_Y = d_Y + T._dKT_mv(p.K, dp.K, E)
        return d_theta, d_Y

    def __repr__(self):
        return (f"SymmetricLayer({self.transform!r}, activation={self.activation!r}, "
                f"normalization={self.normalization!r}, bias={self.bias})")
