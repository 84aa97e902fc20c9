"""The uniform element interface (Meganet.m's ``abstractMeganetElement``).

Every transform, activation, normalization, layer, time-stepping block and
network is an :class:`Element`: a map ``Z = F(θ, Y)`` with hand-coded
Jacobian-vector products and their adjoints.

Batch convention (stated once for all of meganet): **examples first**.
Vectors have shape ``(n_examples, n_features)``, images
``(n_examples, channels, height, width)``.  ``shape_in``/``shape_out`` are the
feature shapes, i.e. without the example axis.

Subclasses implement four private methods on already validated inputs:

``_forward(theta, Y) -> (Z, cache)``
    ``cache`` is a small dataclass with named fields.
``_Jmv(dtheta, dY, theta, Y, cache) -> dZ``
    ``dZ = J_θ dθ + J_Y dY``; either perturbation may be ``None`` (zero).
``_JTmv(W, theta, Y, cache, need_theta, need_Y, per_example) -> (dtheta, dY)``
    ``dθ = J_θᵀ W`` (shape ``(n_theta,)`` or ``(n_examples, n_theta)`` when
    ``per_example``) and ``dY = J_Yᵀ W``; parts not needed may be ``None``.
``_init_theta(rng) -> numpy float64 vector``

Optionally (issue 15, exact Hessians), with ``has_second_order = True``:

``_second_order(W, dtheta, dY, theta, Y, cache) -> (d_theta, d_Y)``
    the change of ``JTmv(W)`` along ``(dθ, dY)`` with ``W`` fixed, i.e. the Hessian product of
    ``⟨W, F(θ, Y)⟩`` (:meth:`Element.second_order_adjoint`).  Composites (chains, time-stepping blocks)
    instead override ``_second_order_step(W, dW, ...)``, one sweep that also carries a change ``dW`` of the
    cotangent, built from their children's steps.

The public methods validate (shapes, θ length, dtype/backend agreement,
NaN/Inf) once and dispatch; composites call the private methods of their
children so validation is not repeated in inner loops.  The one-sided products
``Jthetamv``, ``JYmv``, ``JthetaTmv``, ``JYTmv`` and the Jacobian linear
operators are derived here, so each element writes each chain once.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ..backend import check_dtype, get_array_module, is_cupy_array, resolve_xp, to_backend
from .layout import Layout
from .validation import check_array, check_bool, check_option

__all__ = ["Element"]

_WRT = ("both", "theta", "Y")


def _input_key(Y):
    """What a cache must match of its input: shape, dtype and backend (``'numpy'``/``'cupy'``)."""
    return tuple(Y.shape), Y.dtype, type(Y).__module__.split(".")[0]


class Element:
    """Base class of every meganet element.

    Attributes
    ----------
    shape_in : tuple of int
        Feature shape of the input ``Y`` (without the example axis).
    shape_out : tuple of int
        Feature shape of the output ``Z``.
    layout : Layout
        Named slices of the flat parameter vector θ.
    """

    shape_in: tuple = ()
    shape_out: tuple = ()
    layout: Layout = Layout([])

    # ------------------------------------------------------------------ sizes
    @property
    def n_theta(self) -> int:
        """Number of parameters (length of the flat θ)."""
        return self.layout.size

    @property
    def n_in(self) -> int:
        return int(np.prod(self.shape_in))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.shape_out))

    # --------------------------------------------------------------- theta
    def init_theta(self, *, rng=None, dtype=np.float64, xp=None):
        """Draw an initial θ.

        Parameters are drawn with ``numpy.random.default_rng(rng)`` in float64
        on the host, then cast to ``dtype`` and moved to ``xp`` (so the same
        seed gives the same θ on every backend).

        Parameters
        ----------
        rng : None, int or numpy.random.Generator
        dtype : float64 (default) or float32
        xp : numpy (default), cupy, 'numpy' or 'cupy'

        Returns
        -------
        theta : array, shape (n_theta,)
        """
        dtype = check_dtype(dtype)
        xp = resolve_xp(xp)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        theta = np.asarray(self._init_theta(rng), dtype=np.float64).reshape(-1)
        if theta.shape != (self.n_theta,):
            raise RuntimeError(f"{type(self).__name__}._init_theta returned {theta.shape}, expected ({self.n_theta},)")
        return to_backend(theta.astype(dtype), xp)

    def _init_theta(self, rng):
        return 0.1 * rng.standard_normal(self.n_theta)

    def split(self, theta):
        """Named zero-copy views of θ (see :class:`~meganet.core.layout.Parts`)."""
        return self.layout.split(theta)

    def to(self, xp):
        """Return a copy whose array constants live on backend ``xp``.

        Elements hold no parameters (θ is always passed in), only constants
        such as basis matrices; those are moved, sub-elements recursively.
        """
        xp = resolve_xp(xp)
        new = copy.copy(self)
        for key, val in vars(self).items():
            setattr(new, key, _move(val, xp))
        return new

    # --------------------------------------------------------- validation
    def _prepare(self, theta, Y, *, feature_shape=None, Y_name="Y", **others):
        """Validate the arguments of a public call; returns ``(theta, xp, dtype)``.

        ``Y`` must have shape ``(n_examples, *feature_shape)`` (default
        ``shape_in``); ``others`` are further arrays that must share the backend.
        """
        feature_shape = tuple(self.shape_in if feature_shape is None else feature_shape)
        names = [Y_name, "theta", *others.keys()]
        arrays = [Y, theta, *others.values()]
        xp = get_array_module(*arrays, names=names)
        check_array(Y_name, Y, xp=xp)
        if Y.ndim != 1 + len(feature_shape) or tuple(Y.shape[1:]) != feature_shape:
            exp = "(n_examples, " + ", ".join(str(s) for s in feature_shape) + ")"
            raise ValueError(f"{Y_name} must have shape {exp} for {type(self).__name__}, got {tuple(Y.shape)}")
        dtype = Y.dtype
        if theta is None:
            if self.n_theta != 0:
                raise ValueError(f"theta must be an array of shape ({self.n_theta},), got None")
            theta = xp.zeros(0, dtype=dtype)
        check_array("theta", theta, dtype=dtype, xp=xp)
        if theta.shape != (self.n_theta,):
            raise ValueError(
                f"theta must have shape ({self.n_theta},) for {type(self).__name__}, got {tuple(theta.shape)}"
            )
        return theta, xp, dtype

    def _check_like(self, name, a, shape, xp, dtype):
        if a is not None:
            check_array(name, a, shape=shape, dtype=dtype, xp=xp)

    def _check_cache(self, cache, theta, Y):
        """The cache for ``(θ, Y)``: recomputed when ``None``; a cache from :meth:`forward` must come
        from this element and an input of ``Y``'s shape, dtype and backend (a cheap check of the
        stamp :meth:`forward` puts on it; the values of θ and Y are not compared)."""
        if cache is None:
            _, cache = self._forward(theta, Y)
            return cache
        origin = self._check_cache_origin(cache)
        if origin is None:
            return cache
        made, here = origin[1], _input_key(Y)
        if made != here:
            raise ValueError(f"cache was made by forward on Y of shape {made[0]}, dtype {made[1]} ({made[2]}), but Y "
                             f"has shape {here[0]}, dtype {here[1]} ({here[2]}); pass the cache of this Y or cache=None")
        return cache

    def _check_cache_origin(self, cache):
        """The stamp of ``cache`` (``None`` for a cache made by a private ``_forward``, e.g. a child's part of a
        network's cache); ``TypeError`` unless it is a cache dataclass, ``ValueError`` if another element made it."""
        if not dataclasses.is_dataclass(cache) or isinstance(cache, type):
            raise TypeError(f"cache must be the cache returned by {type(self).__name__}.forward (the second item of "
                            f"Z, cache = forward(theta, Y)) or None, got {type(cache).__name__}")
        origin = getattr(cache, "_meganet_origin", None)
        if origin is not None and origin[0] is not self:
            element = origin[0]
            raise ValueError(f"cache was made by the forward pass of another element ({type(element).__name__} at "
                             f"{id(element):#x}), not by this {type(self).__name__}; pass the cache that this "
                             "element's forward returned, or cache=None to recompute it")
        return origin

    def _stamp(self, cache, Y):
        """Record on ``cache`` which element and which input shape it belongs to (see :meth:`_check_cache`)."""
        try:
            object.__setattr__(cache, "_meganet_origin", (self, _input_key(Y)))
        except (AttributeError, TypeError):  # a cache without an instance dict: not checked
            pass
        return cache

    # ------------------------------------------------------- public products
    def forward(self, theta, Y):
        """Evaluate ``Z = F(θ, Y)``.

        Parameters
        ----------
        theta : array, shape (n_theta,)
        Y : array, shape (n_examples, *shape_in)

        Returns
        -------
        Z : array, shape (n_examples, *shape_out)
        cache : dataclass
            Intermediates (named fields) reused by ``Jmv``/``JTmv``.
        """
        theta, _, _ = self._prepare(theta, Y)
        Z, cache = self._forward(theta, Y)
        return Z, self._stamp(cache, Y)

    def apply(self, theta, Y):
        """``Z = F(θ, Y)`` without a cache (inference, objective values).

        Same value as ``forward(theta, Y)[0]``; elements with a cheaper
        cache-free path (the fused time-stepping sweeps store no states here)
        override ``_apply``.

        Parameters
        ----------
        theta : array, shape (n_theta,)
        Y : array, shape (n_examples, *shape_in)

        Returns
        -------
        Z : array, shape (n_examples, *shape_out)
        """
        theta, _, _ = self._prepare(theta, Y)
        return self._apply(theta, Y)

    def __call__(self, theta, Y):
        return self.apply(theta, Y)

    def jvp(self, theta, Y, dtheta=None, dY=None):
        """``(Z, dZ) = (F(θ, Y), J_θ dθ + J_Y dY)`` without keeping a cache.

        The forward-mode product of a one-off direction (PyTorch's
        ``torch.func.jvp``): same values as ``forward`` followed by ``Jmv``;
        elements with a one-sweep path (the fused time-stepping blocks
        propagate state and tangent together and store no states) override
        ``_jvp``.  ``None`` means a zero perturbation.

        Parameters
        ----------
        theta : array, shape (n_theta,)
        Y : array, shape (n_examples, *shape_in)
        dtheta : array, shape (n_theta,) or None
        dY : array, shape (n_examples, *shape_in) or None

        Returns
        -------
        Z, dZ : arrays, shape (n_examples, *shape_out)
        """
        theta, xp, dtype = self._prepare(theta, Y, dtheta=dtheta, dY=dY)
        self._check_like("dtheta", dtheta, (self.n_theta,), xp, dtype)
        self._check_like("dY", dY, tuple(Y.shape), xp, dtype)
        if dtheta is not None and dtheta.size == 0:
            dtheta = None
        if dtheta is None and dY is None:
            return self._apply(theta, Y), xp.zeros((Y.shape[0], *self.shape_out), dtype=dtype)
        return self._jvp(theta, Y, dtheta, dY)

    def Jmv(self, dtheta, dY, theta, Y, cache=None):
        """``dZ = J_θ dθ + J_Y dY``; ``None`` means a zero perturbation.

        Parameters
        ----------
        dtheta : array, shape (n_theta,) or None
        dY : array, shape (n_examples, *shape_in) or None
        theta, Y : as in :meth:`forward`
        cache : from :meth:`forward`; recomputed when ``None``

        Returns
        -------
        dZ : array, shape (n_examples, *shape_out)
        """
        theta, xp, dtype = self._prepare(theta, Y, dtheta=dtheta, dY=dY)
        self._check_like("dtheta", dtheta, (self.n_theta,), xp, dtype)
        self._check_like("dY", dY, tuple(Y.shape), xp, dtype)
        cache = self._check_cache(cache, theta, Y)
        if dtheta is not None and dtheta.size == 0:
            dtheta = None
        if dtheta is None and dY is None:
            return xp.zeros((Y.shape[0], *self.shape_out), dtype=dtype)
        return self._Jmv(dtheta, dY, theta, Y, cache)

    def JTmv(self, W, theta, Y, cache=None, *, wrt="both", per_example=False):
        """Adjoint product ``(J_θᵀ W, J_Yᵀ W)``.

        Parameters
        ----------
        W : array, shape (n_examples, *shape_out)
        theta, Y, cache : as in :meth:`Jmv`
        wrt : {'both', 'theta', 'Y'}
            Which adjoint(s) to compute; the other entry is returned as ``None``.
        per_example : bool
            Return the θ-gradient of every example, shape
            ``(n_examples, n_theta)``, instead of their sum.

        Returns
        -------
        dtheta : array, shape (n_theta,) or (n_examples, n_theta), or None
        dY : array, shape (n_examples, *shape_in), or None
        """
        check_option("wrt", wrt, _WRT)
        theta, xp, dtype = self._prepare(theta, Y, W=W)
        self._check_like("W", W, (Y.shape[0], *self.shape_out), xp, dtype)
        cache = self._check_cache(cache, theta, Y)
        need_theta = wrt in ("both", "theta")
        need_Y = wrt in ("both", "Y")
        dtheta, dY = self._JTmv(W, theta, Y, cache, need_theta, need_Y, check_bool("per_example", per_example))
        if need_theta and dtheta is None:
            shape = (Y.shape[0], self.n_theta) if per_example else (self.n_theta,)
            dtheta = xp.zeros(shape, dtype=dtype)
        if need_Y and dY is None:
            dY = xp.zeros(Y.shape, dtype=dtype)
        return (dtheta if need_theta else None, dY if need_Y else None)

    # derived one-sided products (Meganet.m: Jthetamv, JYmv, JthetaTmv, JYTmv)
    def Jthetamv(self, dtheta, theta, Y, cache=None):
        """``J_θ dθ``."""
        return self.Jmv(dtheta, None, theta, Y, cache)

    def JYmv(self, dY, theta, Y, cache=None):
        """``J_Y dY``."""
        return self.Jmv(None, dY, theta, Y, cache)

    def JthetaTmv(self, W, theta, Y, cache=None, *, per_example=False):
        """``J_θᵀ W``."""
        return self.JTmv(W, theta, Y, cache, wrt="theta", per_example=per_example)[0]

    def JYTmv(self, W, theta, Y, cache=None):
        """``J_Yᵀ W``."""
        return self.JTmv(W, theta, Y, cache, wrt="Y")[1]

    # ------------------------------------------------ second-order products
    #: True when the element implements :meth:`_second_order` (composites derive it from their children).
    has_second_order = False

    def second_order_missing(self):
        """Name of the (first) element inside this one without second-order products, or ``None``."""
        return None if self.has_second_order else type(self).__name__

    def second_order_adjoint(self, W, dtheta, dY, theta, Y, cache=None):
        r"""Second-order adjoint product: the change of the adjoint ``JTmv(W)`` along ``(dθ, dY)`` with ``W`` fixed.

        For the scalar ``g(θ, Y) = ⟨W, F(θ, Y)⟩`` (whose gradient is ``JTmv(W)``) this is the Hessian
        product ``∇²g · (dθ, dY) = Σ_i W_i ∇²F_i · (dθ, dY)``, split into its θ and Y parts:

        .. math:: d_θ = ∂_θθ g\,dθ + ∂_θY g\,dY,\qquad d_Y = ∂_Yθ g\,dθ + ∂_YY g\,dY.

        With the tangent ``J (dθ, dY)`` and ``JTmv`` it gives the second-order adjoint of a composition
        (the chain rule for Hessians): ``∇²(L∘F)·v = Jᵀ ∇²L (J v) + second_order_adjoint(∇L, v)``.

        Parameters
        ----------
        W : array, shape (n_examples, *shape_out)
            The cotangent (fixed).
        dtheta : array, shape (n_theta,) or None (zero)
        dY : array, shape (n_examples, *shape_in) or None (zero)
        theta, Y, cache : as in :meth:`JTmv`

        Returns
        -------
        d_theta : array, shape (n_theta,)
        d_Y : array, shape (n_examples, *shape_in)

        Raises
        ------
        NotImplementedError
            If this element (or one inside it, named in the message) has no second-order products
            (``has_second_order`` is False).
        """
        missing = self.second_order_missing()
        if missing is not None:
            raise NotImplementedError(_no_second_order(self, missing))
        theta, xp, dtype = self._prepare(theta, Y, W=W, dtheta=dtheta, dY=dY)
        self._check_like("W", W, (Y.shape[0], *self.shape_out), xp, dtype)
        self._check_like("dtheta", dtheta, (self.n_theta,), xp, dtype)
        self._check_like("dY", dY, tuple(Y.shape), xp, dtype)
        cache = self._check_cache(cache, theta, Y)
        if dtheta is not None and dtheta.size == 0:
            dtheta = None
        d_theta = d_Y = None
        if dtheta is not None or dY is not None:
            d_theta, d_Y = self._second_order(W, dtheta, dY, theta, Y, cache)
        if d_theta is None:
            d_theta = xp.zeros(self.n_theta, dtype=dtype)
        if d_Y is None:
            d_Y = xp.zeros(Y.shape, dtype=dtype)
        return d_theta, d_Y

    def _second_order(self, W, dtheta, dY, theta, Y, cache):
        """``(d_θ, d_Y)`` of :meth:`second_order_adjoint` on validated input; either perturbation may be
        ``None`` (not both) and either result may be ``None`` (zero).  Composites that override
        :meth:`_second_order_step` get it from there (cotangent change ``dW`` = 0)."""
        if type(self)._second_order_step is not Element._second_order_step:
            return self._second_order_step(W, None, dtheta, dY, theta, Y, cache)
        raise NotImplementedError(_no_second_order(self, type(self).__name__))

    def _second_order_step(self, W, dW, dtheta, dY, theta, Y, cache):
        """One step of a second-order adjoint sweep: ``Jᵀ δW + S(W; dθ, dY)`` — the change of ``JTmv(W)``
        when the cotangent changes by ``δW`` and the point along ``(dθ, dY)``.  ``dW``, ``dtheta`` and ``dY``
        may be ``None`` (zero); so may either result.  Composites override it with one sweep."""
        a_th = a_Y = s_th = s_Y = None
        if dW is not None:
            a_th, a_Y = self._JTmv(dW, theta, Y, cache, self.n_theta > 0, True, False)
        if dtheta is not None or dY is not None:
            s_th, s_Y = self._second_order(W, dtheta, dY, theta, Y, cache)
        return _add(a_th, s_th), _add(a_Y, s_Y)

    def jacobian(self, theta, Y, cache=None, *, wrt="both"):
        """The Jacobian at ``(θ, Y)`` as a linear operator on flat vectors.

        ``wrt='theta'`` gives ``J_θ`` (n_out_total × n_theta), ``'Y'`` gives
        ``J_Y``, ``'both'`` gives ``[J_θ, J_Y]`` acting on ``concat(dθ, vec(dY))``.
        See :class:`~meganet.core.operator.JacobianOperator`.
        """
        from .operator import JacobianOperator

        check_option("wrt", wrt, _WRT)
        theta, _, _ = self._prepare(theta, Y)
        cache = self._check_cache(cache, theta, Y)
        return JacobianOperator(self, theta, Y, cache, wrt)

    # --------------------------------------------------------- to implement
    def _forward(self, theta, Y):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _forward")

    def _apply(self, theta, Y):
        """Cache-free forward; default: :meth:`_forward` with the cache dropped."""
        return self._forward(theta, Y)[0]

    def _jvp(self, theta, Y, dtheta, dY):
        """One-off forward-mode product; default: :meth:`_forward` then :meth:`_Jmv`."""
        Z, cache = self._forward(theta, Y)
        return Z, self._Jmv(dtheta, dY, theta, Y, cache)

    def _Jmv(self, dtheta, dY, theta, Y, cache):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _Jmv")

    # ------------------------------------------------ forward Euler steps
    # ``Y + h F(θ, Y)`` and its derivatives, for the residual blocks
    # (:class:`~meganet.integrators.ResNet`).  The defaults compose the element
    # methods; a layer with fused kernels (the symmetric conv layer) overrides
    # them to fold ``Y + h·`` into its last kernel (one pass over the data less).
    def _apply_step(self, theta, Y, h, inplace):
        """``Y + h F(θ, Y)`` without a cache; ``inplace``: ``Y`` is the caller's own array and is overwritten."""
        F = self._apply(theta, Y)
        if inplace:
            Y += h * F
            return Y
        return Y + h * F

    def _forward_step(self, theta, Y, h):
        """``(Y + h F(θ, Y), cache of F)``."""
        F, cache = self._forward(theta, Y)
        return Y + h * F, cache

    def _jvp_step(self, theta, Y, dtheta, dY, h):
        """``(Y + h F, dY + h J_F[dθ, dY])``, no cache kept; ``dY`` None is zero, and the tangent stays None
        when ``dθ`` and ``dY`` are both None."""
        if dtheta is None and dY is None:
            return self._apply_step(theta, Y, h, False), None
        F, dF = self._jvp(theta, Y, dtheta, dY)
        return Y + h * F, (h * dF if dY is None else dY + h * dF)

    def _JTmv_step(self, W, theta, Y, cache, h, need_theta, need_Y, per_example):
        """``(J_θᵀ W, W + h J_Yᵀ W)`` of the step ``Y + h F`` without the factor h on the θ-part (the block
        weighs it); the second entry is ``W`` itself when F gives no Y-part, and None when not ``need_Y``."""
        dth, dY = self._JTmv(W, theta, Y, cache, need_theta, need_Y, per_example)
        if not need_Y:
            return dth, None
        return dth, (W if dY is None else W + h * dY)

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement _JTmv")

    def __repr__(self):
        return f"{type(self).__name__}(shape_in={self.shape_in}, shape_out={self.shape_out}, n_theta={self.n_theta})"


def _add(a, b):
    if a is None:
        return b
    return a if b is None else a + b


def _no_second_order(element, missing):
    where = "" if missing == type(element).__name__ else f" (it contains a {missing})"
    return (f"{type(element).__name__}{where} has no second-order products (second_order_adjoint, needed for exact "
            f"Hessian products); {missing} would need _second_order and has_second_order = True")


def _move(val, xp):
    if isinstance(val, np.ndarray) or is_cupy_array(val):
        return to_backend(val, xp)
    if isinstance(val, Element):
        return val.to(xp)
    if isinstance(val, (list, tuple)) and any(isinstance(v, Element) or isinstance(v, np.ndarray) or is_cupy_array(v) for v in val):
        return type(val)(_move(v, xp) for v in val)
    return val
