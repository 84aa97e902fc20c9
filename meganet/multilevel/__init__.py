"""Multilevel in depth and multiscale in space (Haber & Ruthotto 2017, §5.3;
Haber, Ruthotto, Holtham & Jun, AAAI 2018; Meganet.m ``prolongateWeights``,
``avgRestrictionGalerkin``).

In depth (:mod:`meganet.multilevel.time`): a block with N steps ↔ 2N steps at
the same final time, weights interpolated piecewise linearly in time.

In space (:mod:`meganet.multilevel.space`): convolution stencils between image
resolutions by Galerkin coarsening ``R A_h P`` with 2×2 average restriction.

The multilevel training driver lives with the optimizers.
"""

from .space import (galerkin_matrix, prolongate_conv_theta, prolongate_image, prolongate_stencil,
                    restrict_conv_theta, restrict_image, restrict_stencil)
from .time import (is_time_stepping_block, prolongate_block, prolongate_network, prolongate_weights,
                   prolongation_matrix, restrict_block, restrict_network, restrict_weights, restriction_matrix)

__all__ = [
    "prolongation_matrix", "restriction_matrix", "prolongate_weights", "restrict_weights",
    "prolongate_block", "restrict_block", "prolongate_network", "restrict_network", "is_time_stepping_block",
    "galerkin_matrix", "restrict_stencil", "prolongate_stencil", "restrict_image", "prolongate_image",
    "restrict_conv_theta", "prolongate_conv_theta",
]
