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
