"""The shared registry of elements covered by the generic tests.

Every element of meganet (transform, activation, normalization, layer,
time-stepping block, network) is registered here, once per configuration,
from a module in ``tests/cases/``.  The generic tests in
``tests/test_generic_elements.py`` run the Taylor test (θ, Y, both), the dot
test (J_θ, J_Y, J), the per-example gradient check, cache-free recompute,
dtype preservation and the bad-input checks on every registered case, in
float64 and float32, on numpy and (when a GPU is present) cupy.

To register a new element add, in the matching ``tests/cases/*.py``::

    register(Case("dense-4-6", lambda: Dense(4, 6), kind="transform"))
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

__all__ = ["Case", "register", "all_cases", "cases_of_kind"]


@dataclass
class Case:
    """One registered configuration.

    Attributes
    ----------
    name : str
        Unique id (shown in the pytest id).
    make : callable () -> Element
    kind : str
        'transform', 'activation', 'normalization', 'layer', 'block', 'network', ...
    n_examples : int
    make_Y : callable (rng, shape) -> float64 numpy array, optional
        Input data (default standard normal).  Use it to keep inputs away from
        kinks (relu) or to give a realistic scale.
    make_theta : callable (element, rng) -> float64 numpy array, optional
        Parameters (default ``element.init_theta(rng=rng)``).
    rel_step : float
        Relative size of the Taylor directions.
    float32 : bool
        Also test in float32 (default True).
    taylor_kwargs : dict
        Extra options for the Taylor test (``n_steps``, ``h0``, ...).
    slow : bool
        Mark the case slow (deep blocks).
    second_order_float32 : bool
        Also run the second-order checks (tests/test_generic_second_order.py) in float32 (default True).
        False where float32 cannot resolve them: a C¹ activation (smooth ReLU) has a jumping σ'', so the
        gradient is only piecewise C¹ and its Taylor table reaches the float32 floor before order 2 shows.
    """

    name: str
    make: Callable
    kind: str = "element"
    n_examples: int = 3
    make_Y: Optional[Callable] = None
    make_theta: Optional[Callable] = None
    rel_step: float = 0.5
    float32: bool = True
    taylor_kwargs: dict = field(default_factory=dict)
    slow: bool = False
    second_order_float32: bool = True

    def data(self, element, dtype, xp, seed=0):
        """(θ, Y) for this case: drawn in float64 on the host, cast, moved."""
        from meganet.backend import to_backend

        rng = np.random.default_rng(seed)
        if self.make_theta is not None:
            theta = np.asarray(self.make_theta(element, rng), dtype=np.float64)
        else:
            theta = element.init_theta(rng=rng)
        shape = (self.n_examples, *element.shape_in)
        Y = self.make_Y(rng, shape) if self.make_Y is not None else rng.standard_normal(shape)
        return (to_backend(theta.astype(dtype), xp), to_backend(np.asarray(Y, dtype=np.float64).astype(dtype), xp))


_CASES: dict[str, Case] = {}
_loaded = False


def register(case: Case) -> Case:
    if case.name in _CASES:
        raise ValueError(f"duplicate registry case name {case.name!r}")
    _CASES[case.name] = case
    return case


def _load():
    """Import every module of tests/cases (or only those named, comma separated,
    in the environment variable MEGANET_TEST_CASES, for quick local runs)."""
    global _loaded
    if not _loaded:
        _loaded = True
        import os

        import tests.cases as pkg

        only = [m for m in os.environ.get("MEGANET_TEST_CASES", "").split(",") if m]
        for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
            if not only or mod in only:
                importlib.import_module(f"tests.cases.{mod}")


def all_cases():
    _load()
    return list(_CASES.values())


def cases_of_kind(*kinds):
    return [c for c in all_cases() if c.kind in kinds]
