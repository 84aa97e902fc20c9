"""Base class of the learnable linear maps ``Y ↦ K(θ) Y`` (Meganet.m's "KernelTypes")."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.element import Element
from ..core.validation import check_bool

__all__ = ["Transform", "TransformCache"]


@dataclass
class TransformCache:
    """A transform's forward needs no intermediates: ``K(θ)Y`` is linear in ``Y``."""


class Transform(Element):
    """A map ``Z = K(θ) Y``, linear in ``Y`` (and usually in ``θ``).

    Besides the element interface a transform offers the pieces that layers
    such as the symmetric layer ``−K(θ)ᵀσ(K(θ)Y + b)`` need:

    ``apply(θ, Y) = K(θ)Y``, ``apply_T(θ, Z) = K(θ)ᵀZ``,
    ``dK_mv(θ, dθ, Y) = (∂_θK[dθ]) Y``, ``dKT_mv(θ, dθ, Z) = (∂_θK[dθ])ᵀ Z``
    and ``dK_adj(θ, Y, W)``, the adjoint of ``dθ ↦ (∂_θK[dθ]) Y`` applied to
    ``W``.  The adjoint of ``dθ ↦ (∂_θK[dθ])ᵀZ`` needs no method of its own:
    ``<(∂K[dθ])ᵀZ, W> = <Z, ∂K[dθ]W>``, so it is ``dK_adj(θ, W, Z)``.

    Subclasses implement ``_apply``, ``_apply_T`` and ``_dK_adj``; transforms
    that are nonlinear in θ (``linear_in_theta = False``) also ``_dK_mv`` and
    ``_dKT_mv`` (for linear ones ``∂K[dθ] = K(dθ)``).
    """

    linear_in_theta = True
    #: True for transforms that are affine (not linear) in θ, e.g. a shift ``−γI``: ``∂K[dθ]`` is still
    #: independent of θ, which is all the second-order products need.
    affine_in_theta = False

    @property
    def has_second_order(self):
        """Second-order products are written for transforms whose ``∂K[dθ]`` does not depend on θ
        (linear or affine in θ: then ``⟨W, K(θ)Y⟩`` has only the mixed θ–Y second derivative) and for
        those that implement ``_dK_adj_deriv`` (the θ–θ term)."""
        own = type(self)._dK_adj_deriv is not Transform._dK_adj_deriv
        return bool(self.linear_in_theta or self.affine_in_theta or own)

    def _dK_adj_deriv(self, theta, dtheta, Y, W):
        """Change of ``dK_adj(θ, Y, W)`` along ``dθ`` (Y and W fixed), shape ``(n_theta,)``: the θ–θ block of
        ``∇²⟨W, K(θ)Y⟩``.  ``None`` (zero) for transforms linear or affine in θ; transforms nonlinear in θ
        implement it to have second-order products."""
        return None

    # ----- pieces to implement
    def _apply(self, theta, Y):  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_T(self, theta, Z):  # pragma: no cover - abstract
        raise NotImplementedError

    def _dK_adj(self, theta, Y, W, per_example):  # pragma: no cover - abstract
        raise NotImplementedError

    def _dK_mv(self, theta, dtheta, Y):
        return self._apply(dtheta, Y)

    def _dKT_mv(self, theta, dtheta, Z):
        return self._apply_T(dtheta, Z)

    # ----- with a fused epilogue (meganet.kernels.epilogue): f(α·[result] + add + bias)
    #: True when ``_apply_ep`` / ``_apply_T_ep`` run the epilogue inside the kernel (no extra pass);
    #: layers take their fused step paths only then (the defaults below are one pass more, no gain).
    fused_epilogue = False

    def _apply_ep(self, theta, Y, ep, out=None):
        """``f(α K(θ)Y + add + bias)`` for an :class:`~meganet.kernels.epilogue.Epilogue` ``ep``
        (into ``out`` when given; ``ep.add`` may be ``out``).  Default: :meth:`_apply`, then the epilogue."""
        from ..kernels.epilogue import apply_epilogue

        return apply_epilogue(self._apply(theta, Y), ep, out)

    def _apply_T_ep(self, theta, Z, ep, out=None):
        """``f(α K(θ)ᵀZ + add + bias)``; see :meth:`_apply_ep`."""
        from ..kernels.epilogue import apply_epilogue

        return apply_epilogue(self._apply_T(theta, Z), ep, out)

    def _symmetric_step(self, theta, Y, b, activation, h, store_S, out=None):
        """``(Y − h K(θ)ᵀσ(K(θ)Y + b), S or None)``, ``S = σ(K(θ)Y + b)`` kept when ``store_S``: the
        symmetric layer's forward Euler step (``out`` may be ``Y``).  Default: two products with epilogues."""
        from ..kernels.epilogue import Epilogue

        S = self._apply_ep(theta, Y, Epilogue(bias=b, activation=activation))
        Z = self._apply_T_ep(theta, S, Epilogue(alpha=-h, add=Y), out=out)
        return Z, (S if store_S else None)

    def _dK_mv_ep(self, theta, dtheta, Y, ep, out=None):
        """``f(α (∂_θK[dθ])Y + add + bias)``: :meth:`_apply_ep` with ``dθ`` when ``∂K[dθ] = K(dθ)``."""
        if type(self)._dK_mv is Transform._dK_mv:
            return self._apply_ep(dtheta, Y, ep, out)
        from ..kernels.epilogue import apply_epilogue

        return apply_epilogue(self._dK_mv(theta, dtheta, Y), ep, out)

    def _dKT_mv_ep(self, theta, dtheta, Z, ep, out=None):
        """``f(α (∂_θK[dθ])ᵀZ + add + bias)``; see :meth:`_dK_mv_ep`."""
        if type(self)._dKT_mv is Transform._dKT_mv:
            return self._apply_T_ep(dtheta, Z, ep, out)
        from ..kernels.epilogue import apply_epilogue

        return apply_epilogue(self._dKT_mv(theta, dtheta, Z), ep, out)

    # ----- public, validated versions
    def apply(self, theta, Y):
        """``K(θ) Y``; Y of shape ``(n_examples, *shape_in)``."""
        theta, _, _ = self._prepare(theta, Y)
        return self._apply(theta, Y)

    def apply_T(self, theta, Z):
        """``K(θ)ᵀ Z``; Z of shape ``(n_examples, *shape_out)``."""
        theta, _, _ = self._prepare_out(theta, Z)
        return self._apply_T(theta, Z)

    def dK_mv(self, theta, dtheta, Y):
        """``(∂_θ K(θ)[dθ]) Y``."""
        theta, xp, dtype = self._prepare(theta, Y, dtheta=dtheta)
        self._check_like("dtheta", dtheta, (self.n_theta,), xp, dtype)
        return self._dK_mv(theta, dtheta, Y)

    def dKT_mv(self, theta, dtheta, Z):
        """``(∂_θ K(θ)[dθ])ᵀ Z``."""
        theta, xp, dtype = self._prepare_out(theta, Z, dtheta=dtheta)
        self._check_like("dtheta", dtheta, (self.n_theta,), xp, dtype)
        return self._dKT_mv(theta, dtheta, Z)

    def dK_adj(self, theta, Y, W, *, per_example=False):
        """Adjoint of ``dθ ↦ (∂_θK[dθ]) Y`` applied to ``W``: shape ``(n_theta,)``
        or ``(n_examples, n_theta)``."""
        theta, xp, dtype = self._prepare(theta, Y, W=W)
        self._check_like("W", W, (Y.shape[0], *self.shape_out), xp, dtype)
        return self._dK_adj(theta, Y, W, check_bool("per_example", per_example))

    def _prepare_out(self, theta, Z, **others):
        """Validate arguments of the transposed products (``Z`` in output space)."""
        return self._prepare(theta, Z, feature_shape=self.shape_out, Y_name="Z", **others)

    # ----- element interface: Z = K(θ) Y
    def _forward(self, theta, Y):
        return self._apply(theta, Y), TransformCache()

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        dZ = None
        if dtheta is not None:
            dZ = self._dK_mv(theta, dtheta, Y)
        if dY is not None:
            KdY = self._apply(theta, dY)
            dZ = KdY if dZ is None else dZ + KdY
        return dZ

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        dtheta = self._dK_adj(theta, Y, W, per_example) if need_theta else None
        dY = self._apply_T(theta, W) if need_Y else None
        return dtheta, dY

    def _second_order(self, W, dtheta, dY, theta, Y, cache):
        """``g = ⟨W, K(θ)Y⟩``: ``∇_θ g = dK_adj(θ, Y, W)`` changes with Y (and, unless K is affine in θ, with
        θ: ``_dK_adj_deriv``), ``∇_Y g = K(θ)ᵀW`` with θ, so ``d_θ = dK_adj(θ, dY, W) + _dK_adj_deriv(θ, dθ, Y, W)``,
        ``d_Y = (∂K[dθ])ᵀ W``."""
        if not self.has_second_order:  # pragma: no cover - guarded by second_order_missing
            return super()._second_order(W, dtheta, dY, theta, Y, cache)
        d_theta = self._dK_adj(theta, dY, W, False) if dY is not None and self.n_theta else None
        d_Y = self._dKT_mv(theta, dtheta, W) if dtheta is not None else None
        if dtheta is not None:
            dd = self._dK_adj_deriv(theta, dtheta, Y, W)
            if dd is not None:
                d_theta = dd if d_theta is None else d_theta + dd
        return d_theta, d_Y
