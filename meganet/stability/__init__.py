"""Stability tools: what Haber & Ruthotto, "Stable architectures for deep neural
networks" (2017), §3 analyze, as functions users can call.

* :func:`jacobian_spectrum` — eigenvalues of ``J_Y F(θ, Y)`` of a layer (dense
  for small problems, ``scipy.sparse.linalg.eigs`` on the matrix-free Jacobian
  for large ones), per example or for the whole batch.
* :func:`forward_euler_stable` — Lemma 1, ``max_i |1 + h λ_i| ≤ 1``.
* :func:`perturbation_growth` — ``‖Y_N − Ỹ_N‖ / ‖Y_0 − Ỹ_0‖``, after every
  step of a time-stepping block.
"""

from .perturbation import PerturbationGrowth, block_states, perturbation_growth
from .spectrum import ForwardEulerStability, forward_euler_stable, jacobian_spectrum

__all__ = [
    "jacobian_spectrum",
    "forward_euler_stable",
    "ForwardEulerStability",
    "perturbation_growth",
    "PerturbationGrowth",
    "block_states",
]
