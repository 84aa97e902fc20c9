"""Weakly supervised segmentation with constrained latent distributions
(Pathak, Krähenbühl & Darrell 2015, "Constrained CNNs for weakly supervised
segmentation"; presented by Rabinovich 2020): the P-step, a KL projection of the
network's per-pixel distributions onto linear constraints, and constraint builders."""

from .constraints import LinearConstraints, background, foreground, stack, suppression
from .kl_projection import KLProjectionResult, kl_projection
from .alternating import (ConstrainedTrainingResult, PStepResult, kl_divergence, p_step, tag_constraints,
                          train_constrained)

__all__ = ["kl_projection", "KLProjectionResult", "LinearConstraints", "suppression", "foreground",
           "background", "stack", "tag_constraints", "p_step", "PStepResult", "train_constrained",
           "ConstrainedTrainingResult", "kl_divergence"]
