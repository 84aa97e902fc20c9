"""Shared driver of the exactly invertible time steppers (Verlet, leapfrog).

A block of this kind advances a *state* (a small dataclass of arrays) by
``N`` steps ``s_{j+1} = Φ_h(θ_j, s_j)`` whose inverse ``s_j = Φ_h^{-1}(θ_j,
s_{j+1})`` is explicit.  The subclass writes the step once, as four methods
on a single step with the step's flat weight vector ``w = θ(t_j)``:

``_step(w, s, need_cache=True) -> (s_next, c)``
    forward step; ``c`` is the step cache (the state the step's linearization
    needs and the activation derivatives), ``None`` with ``need_cache=False``
    (the reversible forward pass, which skips the derivatives);
``_unstep(w, s_next) -> (s, c)``
    inverse step, returning the *same* step cache as ``_step``;
``_step_jmv(w, dw, c, ds) -> ds_next``
    linearized step (``dw`` may be ``None``);
``_step_adjoint(w, c, Ws_next, out, per_example, propagate) -> Ws``
    adjoint of the linearized step; writes the step's weight gradient into
    ``out`` (shape ``(n_θ,)`` or ``(n_examples, n_θ)``; ``None`` when not
    wanted) and returns the state adjoint (``propagate=False``: the input
    adjoint of the step is not needed and may be skipped),

plus the maps between the element's ``Y``/``Z`` and the state
(``_initial_state(Y)``, ``_initial_tangent(dY or None, Y)``, ``_output(s)``,
``_output_adjoint(W)``, ``_input_adjoint(Ws)``) and ``_init_step(rng)``, the
float64 initial weights of one step.  This module runs the step in the two memory modes:

stored (``reversible=False``)
    the forward pass keeps every step cache; ``Jmv`` and ``JTmv`` read them.
    Memory ``O(N)`` states.
reversible (``reversible=True``)
    the forward pass keeps only the final state.  ``JTmv`` recomputes the
    states backwards with ``_unstep`` while it accumulates the adjoint in the
    same sweep (Gomez et al. 2017, "The reversible residual network";
    Chang et al. 2018, "Reversible architectures for arbitrarily deep residual
    neural networks"); ``Jmv`` recomputes them forwards with ``_step`` on the
    fly.  Memory ``O(1)`` states; cost one extra step evaluation per step in
    ``JTmv`` (none in ``Jmv``).  In floating point the recomputed states
    differ from the forward ones by the round-off amplified by the backward
    dynamics (see ``benchmarks/reversible_memory.py``).

Weights in time follow :class:`~meganet.integrators.block.TimeSteppingBlock`:
θ is ``(θ_0, …, θ_{n_basis−1})`` with ``θ(t_j) = Σ_k B_jk θ_k`` given by a
:class:`~meganet.integrators.time_basis.TimeBasis`; each ``θ_k`` is one step's
weight vector (for Verlet/leapfrog ``(vec K, b)``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..backend import get_array_module
from ..core.element import Element
from ..core.layout import Layout
from ..core.validation import check_bool, check_int, check_positive
from ._fused import FusedSweeps
from .time_basis import as_time_basis

__all__ = ["ReversibleIntegrator", "IntegratorCache", "FusedIntegratorCache"]


@dataclass
class IntegratorCache:
    """Forward cache of a reversible block.

    Attributes
    ----------
    final : state dataclass
        The state after the last step (both modes; where the backward
        recomputation starts).
    steps : list of step caches, or None
        One per step in stored mode; ``None`` in reversible mode.
    """

    final: Any
    steps: Optional[list]


@dataclass
class FusedIntegratorCache:
    """Forward cache of a stored-mode sweep run by a fused kernel of
    :mod:`meganet.kernels.timestep`.

    Attributes
    ----------
    final : state dataclass
        The state after the last step.
    trajectory : kernel trajectory dataclass
        All stored states and activation derivatives (arrays with a step axis).
    engine : str
        The kernel engine that produced it (used again by ``Jmv``/``JTmv``).
    make_step : callable (j) -> step cache
        Builds the generic step cache of step ``j`` (views of ``trajectory``).
    n_steps : int

    ``steps`` is the list of generic step caches, built on first access, so the
    step-by-step code (per-example gradients, analysis tools) reads the same
    cache.
    """

    final: Any
    trajectory: Any
    engine: str
    make_step: Any
    n_steps: int
    _steps: Optional[list] = None

    @property
    def steps(self):
        if self._steps is None:
            self._steps = [self.make_step(j) for j in range(self.n_steps)]
        return self._steps


class ReversibleIntegrator(FusedSweeps, Element):
    """Base class: stored/reversible loops, weights in time, θ layout.

    Subclasses call :meth:`_setup_integrator` in their constructor and
    implement the step methods listed in the module docstring.

    The attributes and methods shared with
    :class:`~meganet.integrators.block.TimeSteppingBlock` (``n_steps``,
    ``final_time``, ``h``, ``basis``, ``n_theta_layer``, ``coefficients``,
    ``step_weights``; layout parts ``"0"``, ``"1"``, …) have the same meaning
    here, so tools written for those blocks (prolongation in time) apply.
    """

    # ---------------------------------------------------------------- setup
    def _setup_integrator(self, *, n_steps, final_time, basis, reversible, n_theta_step):
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.final_time = check_positive("final_time", final_time)
        self.h = self.final_time / self.n_steps
        if not self.h > 0.0:
            raise ValueError(f"step size h = final_time / n_steps = {final_time!r} / {n_steps} underflows to "
                             f"{self.h}; h must be positive")
        self.reversible = check_bool("reversible", reversible)
        self.basis = as_time_basis(basis, self.n_steps)
        self._n_theta_step = int(n_theta_step)
        self.layout = Layout([(str(k), self._n_theta_step) for k in range(self.basis.n_basis)])

    def with_steps(self, n_steps, basis=None):
        """The same block (widths, activation, options, final time) with ``n_steps`` steps and ``basis``."""
        new = copy.copy(self)
        new._setup_integrator(n_steps=n_steps, final_time=self.final_time, basis=basis, reversible=self.reversible,
                              n_theta_step=self._n_theta_step)
        return new

    @property
    def mode(self):
        """``'reversible'`` (no stored states) or ``'stored'``."""
        return "reversible" if self.reversible else "stored"

    @property
    def n_theta_layer(self) -> int:
        """Length of one step's weight vector θ_k."""
        return self._n_theta_step

    def coefficients(self, theta):
        """``θ`` as ``(..., n_basis, n_θ)``; row ``k`` is ``θ_k`` (a view)."""
        return theta.reshape(*theta.shape[:-1], self.basis.n_basis, self._n_theta_step)

    def step_weights(self, theta):
        """``θ(t_j)`` for all steps, shape ``(n_steps, n_θ)`` (for inspection/plots)."""
        return self.basis.apply(self.coefficients(theta))

    def _init_theta(self, rng):
        return np.concatenate([self._init_step(rng) for _ in range(self.basis.n_basis)])

    # ---------------------------------------------------------- fused sweeps
    #: Subclasses with kernels in :mod:`meganet.kernels.timestep` set this to
    #: True and implement ``_fused_forward(theta, Y, engine, store)`` (with
    #: ``store=False`` for the reversible mode: only the final state),
    #: ``_fused_jmv(dtheta, dY, cache)`` and ``_fused_jtmv(W, cache, need_theta, need_Y)``.
    _has_fused = False
    #: Engines for which the subclass implements ``_fused_jvp(theta, Y, dtheta,
    #: dY, engine) -> (Z, dZ)``: state and tangent in one kernel sweep, no
    #: stored states (see :meth:`_jvp`).
    _fused_jvp_engines = ()
    engine = "numpy"

    def _fused_supported(self):
        from ..kernels.activation import supports

        return self._has_fused and supports(self.activation)

    def _check_engine(self):
        """Constructor check: an explicit compiled engine needs a fused kernel."""
        from ..kernels.activation import supports

        if self.engine in ("numba", "cupy") and not supports(self.activation):
            raise ValueError(f"engine={self.engine!r} needs a built-in activation with a compiled kernel, "
                             f"got {self.activation!r}; use engine='auto'")

    # ---------------------------------------------------------------- loops
    def _forward(self, theta, Y):
        return self._sweep(theta, Y, store=not self.reversible)

    def _apply(self, theta, Y):
        """Cache-free forward: no states are stored, in either mode."""
        return self._sweep(theta, Y, store=False)[0]

    def _jvp(self, theta, Y, dtheta, dY):
        """One-off forward-mode product: the subclass's one-sweep kernel when it
        has one for the engine (no stored states, in either mode); otherwise
        forward + ``Jmv`` (the default; in reversible mode that keeps no
        states either: ``Jmv`` recomputes them)."""
        engine = self._fused_engine(Y)
        if engine is not None and engine in self._fused_jvp_engines:
            return self._fused_jvp(theta, Y, dtheta, dY, engine)
        return super()._jvp(theta, Y, dtheta, dY)

    def _sweep(self, theta, Y, store):
        engine = self._fused_engine(Y)
        if engine is not None:
            return self._fused_forward(theta, Y, engine, store)
        C = self.coefficients(theta)
        s = self._initial_state(Y)
        steps = [] if store else None
        for j in range(self.n_steps):
            s, c = self._step(self.basis.weights_at(C, j), s, steps is not None)
            if steps is not None:
                steps.append(c)
        return self._output(s), IntegratorCache(final=s, steps=steps)

    def _Jmv(self, dtheta, dY, theta, Y, cache):
        if isinstance(cache, FusedIntegratorCache):
            return self._fused_jmv(dtheta, dY, cache)
        C = self.coefficients(theta)
        dC = self.coefficients(dtheta) if dtheta is not None else None
        ds = self._initial_tangent(dY, Y)
        s = self._initial_state(Y) if cache.steps is None else None
        for j in range(self.n_steps):
            w = self.basis.weights_at(C, j)
            if cache.steps is not None:
                c = cache.steps[j]
            else:  # reversible: recompute the states forwards on the fly
                s, c = self._step(w, s)
            dw = self.basis.weights_at(dC, j) if dC is not None else None
            ds = self._step_jmv(w, dw, c, ds)
        return self._output(ds)

    def _JTmv(self, W, theta, Y, cache, need_theta, need_Y, per_example):
        if isinstance(cache, FusedIntegratorCache) and not per_example:
            return self._fused_jtmv(W, cache, need_theta, need_Y)
        xp = get_array_module(W)
        C = self.coefficients(theta)
        lead = (W.shape[0],) if per_example else ()
        G = scratch = None
        direct = self.basis.kind == "identity"  # step j's gradient is row j of G: write it in place
        if need_theta:
            G = xp.zeros((*lead, self.basis.n_basis, self._n_theta_step), dtype=W.dtype)
            if not direct:
                scratch = xp.empty((*lead, self._n_theta_step), dtype=W.dtype)
        Ws = self._output_adjoint(W)
        s = cache.final
        for j in range(self.n_steps - 1, -1, -1):
            w = self.basis.weights_at(C, j)
            if cache.steps is not None:
                c = cache.steps[j]
            else:  # reversible: recompute s_j from s_{j+1} within the adjoint sweep
                s, c = self._unstep(w, s)
            out = None
            if need_theta:
                out = G[..., j, :] if direct else scratch
            Ws = self._step_adjoint(w, c, Ws, out, per_example, j > 0 or need_Y)
            if need_theta and not direct:
                self.basis.add_adjoint(G, j, scratch)
        dtheta = G.reshape(*lead, -1) if need_theta else None
        dY = self._input_adjoint(Ws) if need_Y else None
        return dtheta, dY

    # ------------------------------------------------ second-order products
    def _step_second(self, w, dw, c, ds, Ws, dWs):
        """Second-order adjoint of one step: ``(δg, δW_s)``, the change of the step's adjoint (weight gradient
        ``g`` and input adjoint ``W_s``) when its output cotangent ``Ws`` changes by ``dWs`` (None: zero)
        and its weights and input state along ``(dw, ds)`` (``dw`` None: zero).  Subclasses that implement it
        have second-order products."""
        raise NotImplementedError(f"{type(self).__name__} has no second-order step")

    @property
    def has_second_order(self):
        return type(self)._step_second is not ReversibleIntegrator._step_second

    def _step_jmv_inverse(self, w, dw, c, ds_next):
        """Inverse of the linearized step: the input tangent ``ds_j`` from ``ds_{j+1}`` (``c``: the step's
        cache).  Subclasses that implement it get a reversible-mode second-order sweep that stores no states."""
        raise NotImplementedError

    def _second_order_step(self, W, dW, dtheta, dY, theta, Y, cache):
        """Second-order adjoint sweep: forward tangents ``ds_j`` by ``_step_jmv``, then backwards the
        first-order adjoint ``W_s`` (``_step_adjoint``) and its change ``δW_s`` (``_step_second``),
        accumulating the weight part through the time basis.  Reads the step caches of a stored-mode
        cache.  In reversible mode the forward tangent sweep recomputes the states on the fly and the
        backward sweep recomputes the states (``_unstep``) and the tangents (``_step_jmv_inverse``) from
        the final ones, storing none (O(1) memory, as the first-order reversible adjoint); a block without
        ``_step_jmv_inverse`` recomputes and stores the states instead."""
        steps = cache.steps
        reversible = steps is None
        if reversible and type(self)._step_jmv_inverse is ReversibleIntegrator._step_jmv_inverse:
            steps, reversible = self._sweep(theta, Y, store=True)[1].steps, False
        if reversible:
            return self._second_order_reversible(W, dW, dtheta, dY, theta, Y, cache)
        xp = get_array_module(Y)
        C = self.coefficients(theta)
        dC = self.coefficients(dtheta) if dtheta is not None else None
        ws = [self.basis.weights_at(C, j) for j in range(self.n_steps)]
        dws = [self.basis.weights_at(dC, j) if dC is not None else None for j in range(self.n_steps)]
        ds = self._initial_tangent(dY, Y)
        tangents = []
        for j in range(self.n_steps):
            tangents.append(ds)
            ds = self._step_jmv(ws[j], dws[j], steps[j], ds)
        Ws = self._output_adjoint(W)
        dWs = self._output_adjoint(dW) if dW is not None else None
        G = xp.zeros((self.basis.n_basis, self._n_theta_step), dtype=Y.dtype)
        for j in range(self.n_steps - 1, -1, -1):
            g, dWs = self._step_second(ws[j], dws[j], steps[j], tangents[j], Ws, dWs)
            if g is not None:
                self.basis.add_adjoint(G, j, g)
            if j > 0:
                Ws = self._step_adjoint(ws[j], steps[j], Ws, None, False, True)
        return G.reshape(-1), self._input_adjoint(dWs)

    def _second_order_reversible(self, W, dW, dtheta, dY, theta, Y, cache):
        """:meth:`_second_order_step` without stored states (see there)."""
        xp = get_array_module(Y)
        C = self.coefficients(theta)
        dC = self.coefficients(dtheta) if dtheta is not None else None

        def dweights(j):
            return self.basis.weights_at(dC, j) if dC is not None else None

        s, ds = self._initial_state(Y), self._initial_tangent(dY, Y)
        for j in range(self.n_steps):  # tangent sweep, states on the fly
            w = self.basis.weights_at(C, j)
            s_next, c = self._step(w, s)
            ds = self._step_jmv(w, dweights(j), c, ds)
            s = s_next
        Ws = self._output_adjoint(W)
        dWs = self._output_adjoint(dW) if dW is not None else None
        G = xp.zeros((self.basis.n_basis, self._n_theta_step), dtype=Y.dtype)
        s = cache.final
        for j in range(self.n_steps - 1, -1, -1):
            w, dw = self.basis.weights_at(C, j), dweights(j)
            s, c = self._unstep(w, s)
            ds = self._step_jmv_inverse(w, dw, c, ds)
            g, dWs = self._step_second(w, dw, c, ds, Ws, dWs)
            if g is not None:
                self.basis.add_adjoint(G, j, g)
            if j > 0:
                Ws = self._step_adjoint(w, c, Ws, None, False, True)
        return G.reshape(-1), self._input_adjoint(dWs)

    # ----------------------------------------------------- state utilities
    def _backward_states(self, theta, final):
        """Yield ``s_{N−1}, …, s_0`` recomputed from the final state."""
        C = self.coefficients(theta)
        s = final
        for j in range(self.n_steps - 1, -1, -1):
            s, _ = self._unstep(self.basis.weights_at(C, j), s)
            yield s

    def _validated_theta_cache(self, theta, cache):
        """Checks for the public reconstruction helpers."""
        if not isinstance(cache, (IntegratorCache, FusedIntegratorCache)):
            raise TypeError(f"cache must be the IntegratorCache (or FusedIntegratorCache) returned by "
                            f"{type(self).__name__}.forward, got {type(cache).__name__}")
        self._check_cache_origin(cache)
        Z = self._output(cache.final)
        theta, _, _ = self._prepare(theta, Z, feature_shape=self.shape_out, Y_name="cache.final")
        return theta
