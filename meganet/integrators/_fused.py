"""Shared plumbing of the blocks whose whole sweep runs in one kernel of :mod:`meganet.kernels.timestep`."""

from __future__ import annotations

from ..backend import get_array_module

__all__ = ["FusedSweeps", "CUPY_MAX_WIDTH"]

#: Widest state the cupy time-step kernels keep in registers (= ``kernels._timestep_cupy.MAX_WIDTH``,
#: not imported from there because that module needs cupy).
CUPY_MAX_WIDTH = 32


class FusedSweeps:
    """Mixin: engine choice and the step-weight stacks of the fused sweeps.

    The class defines ``engine``, ``basis`` and ``coefficients(theta)`` and
    implements ``_fused_supported()`` (whether its configuration has kernels).
    """

    #: ``engine='auto'`` on the CPU runs the fused numba sweep from this many steps on and the step-by-step
    #: loop (the numpy engine) below.  The numba sweep has a fixed cost per product (≈ 0.7 ms: Python
    #: around two kernel launches) and none per step; the loop pays ≈ 35–90 µs per step (size sweep of
    #: 2026-12-05, ``benchmarks/results/size_sweep/README.md``): numba won at every size of the dense
    #: ResNet (1 here) and from 8 steps on for Verlet (its class sets 8).  Explicit ``engine='numba'``
    #: always takes the sweep.
    auto_min_steps = 1
    #: ... unless examples × steps reaches this: then the loop's per-step cost (it grows with the examples)
    #: outweighs the sweep's fixed cost (Verlet, 4 steps: numba/numpy 1.09–1.36 up to 512 examples, 0.80–0.82
    #: at 4096).
    auto_min_example_steps = 2**14

    def _fused_supported(self):  # pragma: no cover - overridden
        return False

    def _fused_engine(self, Y):
        """The kernel engine of the fused sweep for arrays like ``Y``, or None (step-by-step loop)."""
        from ..kernels import resolve_engine

        if self.engine == "numpy" or not self._fused_supported():
            return None
        engine = resolve_engine(self.engine, get_array_module(Y))
        if engine == "cupy" and Y.shape[1] > CUPY_MAX_WIDTH:  # register-resident kernels: small widths only
            return None
        if (engine == "numba" and self.engine == "auto" and self.n_steps < self.auto_min_steps
                and Y.shape[0] * self.n_steps < self.auto_min_example_steps):
            return None
        return engine if engine in ("numba", "cupy") else None

    def _step_stack(self, theta):
        """Step weights for the fused kernels: ``θ(t_j)`` (N, n_θ); a view of θ
        for the identity basis and one shared row (1, n_θ) for the constant one."""
        C = self.coefficients(theta)
        return C if self.basis.kind in ("identity", "constant") else self.basis.apply(C)

    def _step_stack_T(self, g):
        """Adjoint of :meth:`_step_stack` applied to per-row gradients ``g``, flat."""
        return (g if self.basis.kind in ("identity", "constant") else self.basis.apply_T(g)).reshape(-1)
