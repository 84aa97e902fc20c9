r"""Training a network as an optimization problem over ``x = (θ, w)``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..backend import check_dtype
from ..core.validation import check_int
from ..losses.base import LossEval
from . import _classifier
from ._base import DataView, ObjectiveBase, check_rng, check_state_type, same_point

__all__ = ["NetworkObjective", "NetworkState", "CurvatureSample"]


@dataclass
class CurvatureSample:
    """What the Gauss-Newton products at one point use: the examples (all, or
    the random subsample), the network output and caches on them and the
    loss evaluated there."""

    view: DataView
    Z: Any
    net_cache: Any
    loss_eval: LossEval


@dataclass
class NetworkState:
    """Everything an evaluation at ``x`` computed; reused by the gradient, the
    Gauss-Newton products and the preconditioner at the same ``x``.

    Attributes
    ----------
    x : array
        The point (not copied).
    theta, w : arrays
        Views of ``x``.
    Z : array, shape (n_examples, *network.shape_out)
        Network output ``F(θ, Y)``.
    net_cache : dataclass
        The network's forward cache (states of every layer/step).
    loss_eval : LossEval
        Loss value, gradients w.r.t. ``Z`` and ``w``, and the loss cache.
    value : float
        ``f(x)``.
    parts : dict
        The terms of ``f``: ``loss``, ``regularizer``, ``classifier_regularizer``, ``output_regularizer``.
    grad : array or None
        ``∇f(x)`` once computed.
    curvature : CurvatureSample or None
        The Hessian subsample, drawn at the first Gauss-Newton product at ``x``.
    """

    x: Any
    theta: Any
    w: Any
    Z: Any
    net_cache: Any
    loss_eval: LossEval
    value: float
    parts: dict
    grad: Any = None
    curvature: Optional[CurvatureSample] = None


class NetworkObjective(ObjectiveBase):
    r"""The training objective of a network with a linear classifier,

    .. math::

        f(θ, w) = \mathcal{L}\bigl(W F(θ, Y) + μ,\ C\bigr) + R(θ) + S(w)
                  \;[+\; R_{out}(F(θ, Y))],\qquad x = (θ, w),\ w = (\operatorname{vec} W, μ),

    the learning problem of Haber & Ruthotto, "Stable architectures for deep
    neural networks" (Inverse Problems 2017), §2 — an optimal-control problem
    (Ruthotto & Haber, JMIV 2019, §2) — with ``F`` the network (forward
    propagation = the ODE solve), ``L`` the loss (mean over the labelled
    examples, optional mask ``Q`` of Peters et al. eq. 3.2), ``R`` and ``S``
    regularizers on the weights and the classifier and ``R_out`` an optional
    smoother of the output (Peters et al. eq. 4.8).  Meganet.m counterpart:
    ``dnnObjFctn.m`` (``eval`` returning ``Jc, dJ, H``) and, for mini-batches,
    ``dnnBatchObjFctn.m``.

    Derivatives (no autograd; every product reuses the forward caches):

    * gradient ``∇_θ f = J_θᵀ ∇_Z L + ∇R``, ``∇_w f = ∇_w L + ∇S``: one adjoint pass;
    * Gauss-Newton product: with ``J`` the Jacobian of the logits
      ``z(θ, w) = W F(θ, Y) + μ`` and ``H_z`` the loss Hessian w.r.t. the logits,

      .. math:: H_{GN} v = Jᵀ H_z J v + \operatorname{blkdiag}(∇²R, ∇²S)\, v,

      computed as ``dF = J_θ F v_θ`` (one linearized forward pass), the loss's
      Gauss-Newton Hessian product on ``(dF, v_w)`` (which drops the terms of
      the bilinear ``(W, F) ↦ W F``) and ``J_θᵀ`` (one adjoint pass).  It is
      symmetric positive semidefinite.  The ``w``-block is the exact Hessian;
      the ``θ``-block is exact for least squares and a network that is linear
      in θ.  With ``hessian_fraction < 1`` the loss part is the mean over a
      random subsample of the labelled examples, redrawn at every new ``x``
      (Haber & Ruthotto 2017 §2: "5,000 of 50,000").

    Work units (``counter``): a forward pass over the training set counts
    ``forward += 1``, an adjoint pass ``adjoint += 1``, a Gauss-Newton product
    ``forward += 1, adjoint += 1``, each scaled by the fraction of the
    examples involved (mini-batch, Hessian subsample; plus one forward pass
    over the subsample when it is drawn).  :meth:`metrics` counts nothing.

    Bad input raises at once (labels that do not match the data, non-finite
    data or ``x``, dtypes or backends that differ from the data's, unknown
    options).  A network output that overflows (huge weights along a trial
    step) is not an error: ``f`` is NaN, the derivatives are NaN vectors, and
    the solvers stop with status ``'non_finite'`` keeping the last good iterate.

    Parameters
    ----------
    network : Element
        ``F``; ``network.shape_out`` must equal ``loss.shape_in``.
    loss : Loss
        ``SoftmaxCrossEntropy``, ``LogisticRegression`` or ``LeastSquares``.
    Y : array, shape (n_examples, *network.shape_in)
        Training data (float32 or float64, numpy or cupy; defines the dtype
        and backend of ``x``).
    C : array
        Labels (class indices or target rows, see :meth:`Loss.evaluate`).
    regularizer : Regularizer, optional
        ``R`` on θ (length ``network.n_theta``).
    classifier_regularizer : Regularizer, optional
        ``S`` on ``w`` (length ``loss.n_w``).
    output_regularizer : FeatureSmoothness, optional
        ``R_out`` on the network's features ``Y_N`` (before the classifier; for Peters' regularization of the
        predicted map use :class:`~meganet.losses.OutputRegularizedLoss`).
    mask : array, optional
        Labelled examples (or pixels), see :class:`~meganet.losses.base.Loss`.
    batch_size : int, optional
        Mini-batch size for :meth:`stochastic_gradient` (default: all examples).
    hessian_fraction : float in (0, 1], optional
        Fraction of the labelled examples the Gauss-Newton products use.
    hessian_kind : {'gauss_newton', 'exact'}, default 'gauss_newton'
        What :meth:`hessian_matvec` returns when the caller (a solver) does not say: the Gauss-Newton
        product or the exact Hessian product by second-order adjoints.
    rng : None, int or numpy.random.Generator
        Draws the Hessian subsamples.
    preconditioner : {None, 'regularizer'}
        ``'regularizer'``: :meth:`preconditioner` returns the inverse of
        ``diag(∇²R) ⊕ (diag ∇²_ww L + diag ∇²S)`` (the regularizer's Hessian as
        in Haber & Ruthotto 2017 §6.4, with the exact, cheap diagonal of the
        classifier block).  Meaningful when the regularizer dominates the
        curvature in θ (strong smoothness regularization); with weak weight
        decay it scales θ-steps by ``1/α`` and slows GN-PCG down (observed on
        peaks with ``α = 1e-4``), hence the default ``None`` (no preconditioner).
    chunk_size : int, optional
        Memory-bounded passes (Meganet.m ``forwardProp`` in batches): every
        pass over more than ``chunk_size`` examples runs chunk by chunk, keeping
        only one chunk's forward cache; adjoint and linearized passes recompute
        the chunks' forward passes (counted as one more forward pass each).
        Same values as without chunks, up to rounding, unless the network has
        training-mode batch normalization.  Default: one pass over all examples.

    Examples
    --------
    >>> import numpy as np
    >>> from meganet.layers import SingleLayer
    >>> from meganet.transforms import Dense
    >>> from meganet.losses import SoftmaxCrossEntropy
    >>> net = SingleLayer(Dense(2, 4))
    >>> Y = np.random.default_rng(0).standard_normal((10, 2)); C = np.arange(10) % 3
    >>> obj = NetworkObjective(net, SoftmaxCrossEntropy(4, 3), Y, C)
    >>> x = obj.init_x(rng=0)
    >>> f, g, state = obj.value_and_gradient(x)
    >>> g.shape == (obj.n,)
    True
    """

    def __init__(self, network, loss, Y, C, *, regularizer=None, classifier_regularizer=None, mask=None,
                 batch_size=None, hessian_fraction=None, rng=None, output_regularizer=None, preconditioner=None,
                 chunk_size=None, hessian_kind="gauss_newton"):
        self.hessian_kind = hessian_kind
        super().__init__(network, loss, Y, C, regularizer=regularizer, classifier_regularizer=classifier_regularizer,
                         output_regularizer=output_regularizer, mask=mask, hessian_fraction=hessian_fraction,
                         rng=rng, preconditioner=preconditioner, chunk_size=chunk_size)
        n = self.n_examples
        self.batch_size = n if batch_size is None else min(check_int("batch_size", batch_size, minimum=1), n)
        self._perm = np.arange(n)

    # ------------------------------------------------------------ layout
    @property
    def n(self) -> int:
        """Length of ``x = (θ, w)``: ``network.n_theta + loss.n_w``."""
        return self.network.n_theta + self.loss.n_w

    @property
    def n_theta(self) -> int:
        return self.network.n_theta

    @property
    def n_w(self) -> int:
        return self.loss.n_w

    def split(self, x):
        """``(θ, w)``: zero-copy views of ``x``."""
        k = self.network.n_theta
        return x[:k], x[k:]

    def join(self, theta, w):
        """``x = concat(θ, w)`` (a new array)."""
        self._check_vec("theta", theta, self.network.n_theta)
        self._check_vec("w", w, self.loss.n_w)
        return self.xp.concatenate([theta, w])

    def init_x(self, *, rng=None, dtype=None):
        """``concat(network.init_theta, loss.init_w)`` drawn from one generator.

        Parameters
        ----------
        rng : None, int or numpy.random.Generator
        dtype : float32 or float64, optional
            Default: the dtype of the data ``Y`` (the objective rejects any other).
        """
        rng = check_rng(rng)
        dtype = self.dtype if dtype is None else check_dtype(dtype)
        theta = self.network.init_theta(rng=rng, dtype=dtype, xp=self.xp)
        w = self.loss.init_w(rng=rng, dtype=dtype, xp=self.xp)
        return self.xp.concatenate([theta, w])

    def _check_x(self, x):
        self._check_vec("x", x, self.n)
        return self.split(x)

    # ------------------------------------------------------------ protocol
    def value(self, x):
        """``(f(x), state)``: one forward pass.

        Returns
        -------
        f : float
        state : NetworkState
        """
        theta, w = self._check_x(x)
        Z, cache = self._forward(theta, self._full_view)
        return self._evaluate(x, theta, w, Z, cache, self._full_view)

    def _evaluate(self, x, theta, w, Z, cache, view):
        if not self._finite(Z):  # the network overflowed: f = NaN (solvers stop with 'non_finite')
            return math.nan, NetworkState(x=x, theta=theta, w=w, Z=Z, net_cache=cache, loss_eval=None,
                                          value=math.nan, parts=dict(loss=math.nan))
        ev = self.loss.evaluate(Z, w, view.C, mask=view.mask)
        parts = dict(loss=float(ev.value), regularizer=self._reg_value(self.regularizer, theta),
                     classifier_regularizer=self._reg_value(self.classifier_regularizer, w))
        if self.output_regularizer is not None:
            parts["output_regularizer"] = float(self.output_regularizer.value(Z))
        f = float(sum(parts.values()))
        return f, NetworkState(x=x, theta=theta, w=w, Z=Z, net_cache=cache, loss_eval=ev, value=f, parts=parts)

    def state_with_classifier(self, state, w):
        """The state at ``(θ, w)`` for the θ of ``state``, reusing its network output
        ``F(θ, Y)`` (no forward pass; the loss is re-evaluated with the new ``w``).

        Used by block coordinate descent, where the classifier changes and θ does not.
        """
        check_state_type(state, NetworkState, "NetworkObjective")
        self._check_vec("w", w, self.loss.n_w)
        if state.Z.shape[0] != self.n_examples:
            raise ValueError("state_with_classifier needs a state of the full training set (not a mini-batch)")
        x = self.xp.concatenate([state.theta, w])
        theta, w = self.split(x)
        return self._evaluate(x, theta, w, state.Z, state.net_cache, self._full_view)[1]

    def gradient(self, x, state=None):
        """``∇f(x)``: one adjoint pass (reusing the forward pass of ``state``)."""
        state = self._state_at(x, state)
        if state.grad is None:
            state.grad = self._gradient(state, self._full_view)
        return state.grad

    def _gradient(self, state, view):
        ev = state.loss_eval
        if ev is None:
            return self._nan(self.n)
        gZ = ev.grad_Y
        if self.output_regularizer is not None:
            gZ = gZ + self.output_regularizer.gradient(state.Z)
        g_theta = self._add_reg_grad(self._adjoint(gZ, state.theta, view, state.net_cache), self.regularizer,
                                     state.theta)
        g_w = self._add_reg_grad(ev.grad_w, self.classifier_regularizer, state.w)
        return self.xp.concatenate([g_theta, g_w])

    def value_and_gradient(self, x):
        """``(f, ∇f, state)``: one forward and one adjoint pass."""
        f, state = self.value(x)
        return f, self.gradient(x, state), state

    def _state_at(self, x, state):
        if state is None:
            return self.value(x)[1]
        check_state_type(state, NetworkState, "NetworkObjective")
        if not same_point(state.x, x):
            raise ValueError("state was computed at another point than x; pass the state returned by value(x)")
        return state

    def curvature_sample(self, x, state):
        """The Hessian subsample at ``x`` (drawn once per state, i.e. per new ``x``)."""
        state = self._state_at(x, state)
        if state.curvature is None:
            view = self.draw_hessian_sample()
            if view.idx is None:
                state.curvature = CurvatureSample(view=view, Z=state.Z, net_cache=state.net_cache,
                                                  loss_eval=state.loss_eval)
            else:
                Z, cache = self._forward(state.theta, view)
                ev = self.loss.evaluate(Z, state.w, view.C, mask=view.mask) if self._finite(Z) else None
                state.curvature = CurvatureSample(view=view, Z=Z, net_cache=cache, loss_eval=ev)
        return state.curvature

    def hessian_matvec(self, x, v, state=None, *, kind=None):
        r"""Hessian product: Gauss-Newton (default) or exact.

        ``kind='gauss_newton'``: ``(Jᵀ H_z J + blkdiag(∇²R, ∇²S)) v`` (one linearized forward and one adjoint
        pass), symmetric positive semidefinite.

        ``kind='exact'``: the true Hessian of ``f`` by second-order adjoints (issue 15),

        .. math:: ∇²f\,v = \begin{pmatrix} J_θᵀ\,[∇²_{ZZ}L\,dZ + ∇²_{Zw}L\,v_w] + S(∇_Z L;\ v_θ) + ∇²R\,v_θ \\
                  ∇²_{wZ}L\,dZ + ∇²_{ww}L\,v_w + ∇²S\,v_w \end{pmatrix},\qquad dZ = J_θ v_θ,

        with the loss's exact Hessian (the terms of the bilinear classifier included) and ``S`` the network's
        :meth:`~meganet.core.element.Element.second_order_adjoint` with the loss gradient ``∇_Z L``
        (plus ``∇R_out``) as cotangent — the curvature of the network itself, which Gauss-Newton drops.
        Symmetric, indefinite in general.  Costs two linearized forward passes and two adjoint passes
        (counted so); every element of the network must have second-order products.  With
        ``hessian_fraction < 1`` both kinds use the same subsample.

        Parameters
        ----------
        x : array, shape (n,)
        v : array, shape (n,)
        state : NetworkState from :meth:`value` at ``x`` (recomputed when None)
        kind : {'gauss_newton', 'exact'}, optional
            Default: :attr:`hessian_kind` (``'gauss_newton'`` unless set).

        Returns
        -------
        Hv : array, shape (n,)

        Raises
        ------
        NotImplementedError
            ``kind='exact'`` for a network with an element without second-order products (named).
        """
        kind = self._hessian_kind_of_call(kind)
        self._check_vec("v", v, self.n)
        state = self._state_at(x, state)
        if state.loss_eval is None:
            return self._nan(self.n)
        cs = self.curvature_sample(x, state)
        if cs.loss_eval is None:
            return self._nan(self.n)
        v_theta, v_w = self.split(v)
        exact = kind == "exact"
        dZ = self._jmv(v_theta, state.theta, cs.view, cs.Z, cs.net_cache)
        HZ, Hw = self.loss.hess_mv(dZ, v_w, cs.loss_eval, gauss_newton=not exact)
        if self.output_regularizer is not None:
            HZ = HZ + self.output_regularizer.hess_mv(dZ, cs.Z)
        if exact:
            gZ = cs.loss_eval.grad_Y
            if self.output_regularizer is not None:
                gZ = gZ + self.output_regularizer.gradient(cs.Z)
            H_theta = self._second_order_adjoint(gZ, HZ, v_theta, state.theta, cs.view, cs.net_cache)
        else:
            H_theta = self._adjoint(HZ, state.theta, cs.view, cs.net_cache)
        H_theta = self._add_reg_hess(H_theta, self.regularizer, v_theta, state.theta)
        Hw = self._add_reg_hess(Hw, self.classifier_regularizer, v_w, state.w)
        return self.xp.concatenate([H_theta, Hw])

    def hessian_diagonal_approx(self, x, state=None):
        """``diag(∇²R) ⊕ (diag ∇²_ww L + diag ∇²S)``: the regularizer's Hessian on θ
        and the exact diagonal of the classifier block (no network pass)."""
        state = self._state_at(x, state)
        cs = self.curvature_sample(x, state)
        if cs.loss_eval is None:
            return self._nan(self.n)
        d_theta = self._reg_diag(self.regularizer, state.theta)
        d_w = _classifier.hessian_diagonal(self.loss, cs.loss_eval) + self._reg_diag(self.classifier_regularizer,
                                                                                       state.w)
        return self.xp.concatenate([d_theta, d_w])

    def preconditioner(self, x, state=None):
        """``r ↦ M⁻¹ r`` with ``M = diag(∇²R) ⊕ (diag ∇²_ww L + diag ∇²S) + δI``, or ``None``.

        Entries the regularizer does not reach get the mean of their block's
        positive entries; ``δ = 1e-8·max(diag M)`` keeps ``M`` positive
        definite.  ``None`` when ``preconditioner=None`` (the default).
        """
        if self.preconditioner_kind is None:
            return None
        d = self.hessian_diagonal_approx(x, state)
        if not self._finite(d):
            return None
        return self._diagonal_preconditioner(list(self.split(d)))

    # ------------------------------------------------------------ mini-batches
    @property
    def n_batches(self) -> int:
        """Mini-batches per epoch: ``ceil(n_examples / batch_size)``."""
        return -(-self.n_examples // self.batch_size)

    def shuffle(self, rng):
        """Draw a new partition of the examples into mini-batches."""
        self._perm = check_rng(rng).permutation(self.n_examples)

    def batch_indices(self, batch_index):
        b = check_int("batch_index", batch_index, minimum=0)
        if b >= self.n_batches:
            raise ValueError(f"batch_index must be < n_batches = {self.n_batches}, got {b}")
        return np.sort(self._perm[b * self.batch_size:(b + 1) * self.batch_size])

    def stochastic_gradient(self, x, batch_index, rng=None):
        """Mini-batch objective and gradient ``(f_B, ∇f_B)``.

        ``f_B`` is the loss averaged over the labelled examples of batch ``B``
        plus the full regularizers (an unbiased estimate of ``f`` for equal
        batches).  A batch without labelled examples contributes only the
        regularizers.  Counts ``|B|/n`` forward and adjoint passes.
        """
        theta, w = self._check_x(x)
        view = self._view(self.batch_indices(batch_index))
        xp = self.xp
        if view.mask is not None and not bool((view.mask != 0).any()):
            parts = [self._reg_value(self.regularizer, theta), self._reg_value(self.classifier_regularizer, w)]
            g = xp.concatenate([self._add_reg_grad(xp.zeros_like(theta), self.regularizer, theta),
                                self._add_reg_grad(xp.zeros_like(w), self.classifier_regularizer, w)])
            return float(sum(parts)), g
        Z, cache = self._forward(theta, view)
        f, state = self._evaluate(x, theta, w, Z, cache, view)
        return f, self._gradient(state, view)  # NaN where the network overflowed

    # ------------------------------------------------------------ reporting
    def metrics(self, x, Y, C, *, mask=None):
        """Data loss and accuracy on any data set (e.g. validation); counts no work.

        Returns
        -------
        dict
            ``loss`` (float, without regularizers), ``accuracy`` (float, or
            ``None`` where not meaningful: regression targets), ``n_examples``,
            and ``relative_error`` for least squares.
        """
        theta, w = self._check_x(x)
        return self._metrics(theta, w, Y, C, mask)

    def __repr__(self):
        return (f"NetworkObjective(n={self.n}, n_theta={self.n_theta}, n_w={self.n_w}, "
                f"n_examples={self.n_examples}, loss={self.loss!r})")
