"""Registry: the exactly invertible blocks — Hamiltonian/Verlet and leapfrog —
in stored and reversible mode.

Every configuration is registered twice, ``reversible=False`` (states stored)
and ``reversible=True`` (states recomputed in ``Jmv``/``JTmv``), so the generic
Taylor and dot tests check both code paths; in reversible float32 the dot test
also measures the round-off of the backward recomputation (the adjoint is
taken at the recomputed states), which stays far inside the default tolerance
at these depths.  Depths 16–32; Verlet with ``n_y ≠ n_z`` (both orientations),
the three bias options, tanh / sigmoid / smooth ReLU / identity activations, and
the identity, constant, hat and user-matrix time bases.
"""

import numpy as np

from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.time_basis import TimeBasis
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.integrators.verlet_cnn import HamiltonianVerletCNN
from tests.registry import Case, register


def _user_basis(n_steps, n_basis, seed=7):
    return TimeBasis.from_matrix(np.random.default_rng(seed).uniform(0.2, 1.0, (n_steps, n_basis)))


_VERLET = [
    # name, n_y, n_z, kwargs, case options
    ("3x5-tanh-scalar-N16", 3, 5, dict(n_steps=16, final_time=1.0), {}),
    ("4x2-sigmoid-vector-N24", 4, 2, dict(n_steps=24, final_time=2.0, activation="sigmoid", bias="vector"), {}),
    ("2x3-tanh-none-N32-constant", 2, 3, dict(n_steps=32, final_time=3.0, bias="none", basis="constant"),
     dict(n_examples=4)),
    ("3x2-identity-scalar-N16-hat4", 3, 2,
     dict(n_steps=16, final_time=1.0, activation="identity", basis=TimeBasis.hat(16, 4)), {}),
    ("2x4-smooth_relu-vector-N16-matrix3", 2, 4,
     dict(n_steps=16, final_time=1.0, activation="smooth_relu", bias="vector", basis=_user_basis(16, 3)),
     dict(second_order_float32=False)),  # σ'' jumps at ±η: the second-order Taylor test needs float64
]

_LEAPFROG = [
    ("4-tanh-vector-N16", 4, dict(n_steps=16, final_time=1.0), {}),
    ("3-sigmoid-scalar-N24-hat5", 3, dict(n_steps=24, final_time=2.0, activation="sigmoid", bias="scalar",
                                           basis=TimeBasis.hat(24, 5)), {}),
    ("5-tanh-none-N32-constant", 5, dict(n_steps=32, final_time=2.0, bias="none", basis="constant"),
     dict(n_examples=2)),
]

for _mode in ("stored", "reversible"):
    _rev = _mode == "reversible"
    for _name, _ny, _nz, _kw, _opts in _VERLET:
        register(Case(f"verlet-{_name}-{_mode}",
                      (lambda ny=_ny, nz=_nz, kw=_kw, r=_rev: HamiltonianVerlet(ny, nz, reversible=r, **kw)),
                      kind="block", **_opts))
    for _name, _n, _kw, _opts in _LEAPFROG:
        register(Case(f"leapfrog-{_name}-{_mode}",
                      (lambda n=_n, kw=_kw, r=_rev: Leapfrog(n, reversible=r, **kw)),
                      kind="block", **_opts))


# the convolutional Verlet network (H&R 2017 eq. 4.17 with 3×3 convolutions, §6.4): C_y ≠ C_z both ways
_VERLET_CNN = [
    ("2x3-4x5-tanh-scalar-N8", 2, 3, (4, 5), dict(n_steps=8, final_time=1.0)),
    ("3x1-4x4-sigmoid-none-N6-hat3", 3, 1, (4, 4), dict(n_steps=6, final_time=1.5, activation="sigmoid",
                                                        bias="none", basis=TimeBasis.hat(6, 3))),
]
for _mode in ("stored", "reversible"):
    for _name, _cy, _cz, _img, _kw in _VERLET_CNN:
        register(Case(f"verletcnn-{_name}-{_mode}",
                      (lambda cy=_cy, cz=_cz, im=_img, kw=_kw, r=_mode == "reversible":
                       HamiltonianVerletCNN(cy, cz, im, reversible=r, **kw)),
                      kind="block", n_examples=2))
