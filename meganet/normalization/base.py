"""Shared base of the normalization elements: ``Z = s_c · N(Y) + β_c``.

A normalization element is a parameter-free map ``N`` (batch, instance or TV
normalization, or the identity for :class:`~meganet.normalization.AffineScaling`)
optionally followed by a trainable per-channel scale ``s`` and bias ``β``.
The base class writes the chain rule through the scale and bias once;
subclasses implement only the parameter-free map, its Jacobian-vector product
and its adjoint:

``_normalize(Y) -> (Yhat, cache)``
    ``Yhat = N(Y)``; ``cache`` is a small dataclass with named fields.
``_normalize_Jmv(dY, cache) -> dYhat``
    ``dYhat = ∇N(Y) dY``.
``_normalize_JTmv(W, cache) -> dY``
    ``dY = ∇N(Y)ᵀ W``.

This module also holds :class:`Standardization`, the parameter-free
``N(Y) = (Y − μ)/sqrt(σ² + ε)`` with mean and variance over a set of axes,
shared by :class:`~meganet.normalization.BatchNorm` (statistics over examples
and pixels) and :class:`~meganet.normalization.InstanceNorm` (statistics over
pixels, per example), so its derivative is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..core.element import Element
from ..core.layout import Layout
from ..core.validation import check_bool, check_option, check_positive, check_shape_tuple
from ..kernels import ENGINES
from ..kernels.normalization import standardize, standardize_jmv
from ..layers.bias import channel_broadcast, channel_sum

__all__ = ["Normalization", "NormalizationCache", "Standardization", "StandardizationCache"]


@dataclass
class NormalizationCache:
    """Forward intermediates of a :class:`Normalization`."""

    Yhat: object  #: N(Y), shape (n_examples, C, ...)
    norm: object  #: the cache of the parameter-free map (subclass dataclass)


class Normalization(Element):
    r"""Parameter-free normalization followed by an optional per-channel affine map,

    .. math:: Z = s_c \, N(Y) + β_c ,

    with θ = (s, β), one scale and one bias per channel (axis 1 of the data,
    i.e. ``shape[0]``; for vector features every feature is a channel).  With
    ``affine=False`` there are no parameters and ``Z = N(Y)``.

    Derivatives (written once here for every subclass):

    * ``dZ = s ⊙ ∇N dY + ds ⊙ N(Y) + dβ``
    * ``J_Yᵀ W = ∇Nᵀ (s ⊙ W)``
    * ``J_sᵀ W = Σ_{examples, pixels} W ⊙ N(Y)``, ``J_βᵀ W = Σ_{examples, pixels} W``
      (per example: the sums over that example's pixels only).

    ``_init_theta`` gives ``s = 1``, ``β = 0`` (the normalization itself, as
    Meganet.m's ``affineScalingLayer.initTheta``).

    Parameters
    ----------
    shape : int or tuple of int
        Feature shape ``(C, *spatial)``, e.g. ``(F,)`` for vectors or
        ``(C, H, W)`` for images; ``shape_in == shape_out == shape``.
    affine : bool, keyword-only
        Add the trainable per-channel scale and bias (n_theta = 2C).

    Attributes
    ----------
    training : bool
        Training (default) or evaluation mode.  Only
        :class:`~meganet.normalization.BatchNorm` maps differently in the two
        modes (batch statistics vs. running estimates); every other
        normalization uses statistics of one example only, so its evaluation
        mode *is* its training mode and the flag is only recorded (it lets
        :func:`~meganet.normalization.set_training` treat all normalizations
        alike).
    """

    def __init__(self, shape, *, affine):
        self.shape_in = self.shape_out = check_shape_tuple("shape", shape)
        self.affine = check_bool("affine", affine)
        self.training = True
        C = self.shape_in[0]
        self.layout = Layout([("s", C), ("b", C)] if self.affine else [])

    @property
    def training(self) -> bool:
        """Training (True) or evaluation (False) mode; see the class docstring."""
        return self._training

    @training.setter
    def training(self, value):
        self._training = bool(check_bool("training", value))

    @property
    def n_channels(self) -> int:
        """Number of channels ``C = shape[0]``."""
        return self.shape_in[0]

    def _init_theta(self, rng):
        C = self.n_channels
        return np.concatenate([np.ones(C), np.zeros(C)]) if self.affine else np.zeros(0)

    # ---------------------------------------------- parameter-free map N
    def _normalize(self, Y):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _normalize")

    def _normalize_Jmv(self, dY, cache):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _normalize_Jmv")

    def _normalize_JTmv(self, W, cache):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _normalize_JTmv")

    # ------------------------------------------------- element interface
    def _forward(self, theta, Y):
        Yhat, norm_cache = self._normalize(Y)
        if self.affine:
            p = self.split(theta)
            Z = channel_broadcast(p.s, Y.ndim) * Yhat + channel_broadcast(p.b, Y.ndim)
        else:
            Z = Yhat
        return Z, NormalizationCache(Yhat=Yhat, norm=norm_cache)

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        """``dZ = s ⊙ ∇N dY + ds ⊙ N(Y) + dβ``."""
        if not self.affine:
            dtheta = None
        dZ = None
        if dY is not None:
            dZ = self._normalize_Jmv(dY, cache.norm)
            if self.affine:
                dZ = channel_broadcast(self.split(theta).s, Y.ndim) * dZ
        if dtheta is not None:
            dp = self.split(dtheta)
            dZt = channel_broadcast(dp.s, Y.ndim) * cache.Yhat + channel_broadcast(dp.b, Y.ndim)
            dZ = dZt if dZ is None else dZ + dZt
        if dZ is None:
            dZ = get_array_module(Y).zeros(Y.shape, dtype=Y.dtype)
        return dZ

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        """``(Σ W ⊙ N(Y), Σ W)`` per channel and ``∇Nᵀ (s ⊙ W)``."""
        dtheta = dY = None
        if need_theta and self.affine:
            xp = get_array_module(W)
            shape = (Y.shape[0], self.n_theta) if per_example else (self.n_theta,)
            dtheta = xp.empty(shape, dtype=W.dtype)
            dp = self.split(dtheta)
            dp.s[...] = channel_sum(W * cache.Yhat, per_example)
            dp.b[...] = channel_sum(W, per_example)
        if need_Y:
            Ws = channel_broadcast(self.split(theta).s, Y.ndim) * W if self.affine else W
            dY = self._normalize_JTmv(Ws, cache.norm)
        return dtheta, dY

    # ------------------------------------------------ second-order products
    def _normalize_second(self, W, dY, cache):
        """Change of ``∇N(Y)ᵀ W`` along ``dY`` (W fixed); ``None`` for zero.  Subclasses that implement it
        have second-order products."""
        raise NotImplementedError(f"{type(self).__name__} has no second derivative of its normalization")

    @property
    def has_second_order(self):
        return type(self)._normalize_second is not Normalization._normalize_second

    def _second_order(self, W, dtheta, dY, theta, Y, cache):
        """``g = ⟨s ⊙ W, N(Y)⟩ + ⟨W, β⟩``: ``d∇_s = Σ W ⊙ ∇N dY``, ``d∇_β = 0``,
        ``d∇_Y = ∇Nᵀ(ds ⊙ W) + ∂_Y[∇N(Y)ᵀ(s ⊙ W)] dY``."""
        if not self.affine:
            dtheta = None
        d_theta = d_Y = None
        if dY is not None:
            Ws = channel_broadcast(self.split(theta).s, Y.ndim) * W if self.affine else W
            d_Y = self._normalize_second(Ws, dY, cache.norm)
            if self.affine:
                xp = get_array_module(W)
                d_theta = xp.zeros(self.n_theta, dtype=W.dtype)
                self.split(d_theta).s[...] = channel_sum(W * self._normalize_Jmv(dY, cache.norm), False)
        if dtheta is not None:
            t = self._normalize_JTmv(channel_broadcast(self.split(dtheta).s, Y.ndim) * W, cache.norm)
            d_Y = t if d_Y is None else d_Y + t
        return d_theta, d_Y

    def _extra_repr(self):
        return ""

    def __repr__(self):
        extra = self._extra_repr()
        return f"{type(self).__name__}(shape={self.shape_in}{extra}, affine={self.affine})"


@dataclass
class StandardizationCache:
    """Intermediates of ``N(Y) = (Y − μ)/sqrt(σ² + ε)``."""

    Yhat: object  #: N(Y)
    inv_std: object  #: 1/sqrt(σ² + ε), shape of Y with the statistic axes of size 1
    mean: object = None  #: μ of every statistic group, shape of ``inv_std``
    var: object = None  #: biased σ² of every statistic group, shape of ``inv_std``
    count: int = 0  #: number of values in each statistic group


class Standardization(Normalization):
    r"""``N(Y) = (Y − μ)/sqrt(σ² + ε)`` with mean μ and biased variance σ² over
    the axes of the statistic groups ``_kind`` (``'batch'`` or ``'instance'``, see
    :mod:`meganet.kernels.normalization`; the shared part of batch and
    instance normalization).

    With ``X̂ = N(Y)``, ``r = 1/sqrt(σ² + ε)`` and means over the statistic axes,
    differentiating μ and σ² as functions of Y gives

    .. math:: ∇N\,dY = r\,\big(dY − \overline{dY} − X̂\,\overline{X̂ ⊙ dY}\big),

    which is self-adjoint (``I − 11ᵀ/m − x̂x̂ᵀ/m`` per group, times ``r``).
    Statistics use the two-pass formula ``σ² = mean((Y − μ)²)``, which stays
    accurate in float32 for data with a large mean (the numpy engine sums in
    the input dtype, the numba kernels in float64).  A mean or variance that
    overflows the data's dtype (``|Y|`` beyond about ``1e154`` in float64,
    ``1e19`` in float32) raises ``FloatingPointError`` naming the element,
    the statistic and the group, on every engine, instead of returning
    ``N(Y) = 0``.
    """

    #: ``'batch'`` or ``'instance'``: the statistic groups of :mod:`meganet.kernels.normalization`
    _kind = None

    def __init__(self, shape, *, eps, affine, engine="auto"):
        super().__init__(shape, affine=affine)
        self.eps = check_positive("eps", eps)
        self.engine = check_option("engine", engine, ENGINES)

    def _normalize(self, Y):
        """Statistics and ``X̂`` by :func:`meganet.kernels.normalization.standardize`
        (one compiled pass per statistic with the numba engine)."""
        try:
            Yhat, inv_std, mean, var = standardize(Y, self._kind, self.eps, engine=self.engine,
                                                   return_statistics=True)
        except FloatingPointError as err:  # an overflowing mean or variance: say which element
            raise FloatingPointError(f"{self!r}: {err}") from None
        count = Y.size // max(inv_std.size, 1)
        return Yhat, StandardizationCache(Yhat=Yhat, inv_std=inv_std, mean=mean, var=var, count=count)

    def _normalize_Jmv(self, dY, cache):
        """``r (dY − mean(dY) − X̂ mean(X̂ ⊙ dY))`` (:func:`meganet.kernels.normalization.standardize_jmv`)."""
        return standardize_jmv(dY, cache.Yhat, cache.inv_std, self._kind, engine=self.engine)

    def _normalize_JTmv(self, W, cache):
        """Self-adjoint: the same product as :meth:`_normalize_Jmv`."""
        return self._normalize_Jmv(W, cache)

    def _normalize_second(self, W, dY, cache):
        r"""Change of ``G = ∇Nᵀ W = r (W − \bar W − X̂ \overline{X̂ W})`` along ``dY``: with ``dX = ∇N dY`` and
        ``dr = −r² \overline{X̂ dY}`` (means over each statistic group),
        ``dG = −r \overline{X̂ dY}\, G − r (dX\, \overline{X̂ W} + X̂\, \overline{dX ⊙ W})``.
        A cache other than :class:`StandardizationCache` (BatchNorm's evaluation mode, affine in Y): zero."""
        if not isinstance(cache, StandardizationCache):
            return None
        r, X = cache.inv_std, cache.Yhat
        axes = tuple(i for i in range(X.ndim) if r.shape[i] == 1)

        def mean(a):
            return a.mean(axis=axes, keepdims=True)

        dX = self._normalize_Jmv(dY, cache)
        G = self._normalize_JTmv(W, cache)
        return -r * (mean(X * dY) * G + dX * mean(X * W) + X * mean(dX * W))

    def _extra_repr(self):
        return f", eps={self.eps:g}"
