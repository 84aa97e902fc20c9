"""Evaluation metrics: :func:`segmentation_scores` (confusion matrix, per-class IoU, mean IoU, pixel accuracy on
labelled pixels), :func:`confusion_matrix` and :func:`boundary_length` (label-boundary length of maps)."""

from .segmentation import SegmentationScores, boundary_length, confusion_matrix, segmentation_scores

__all__ = ["confusion_matrix", "segmentation_scores", "SegmentationScores", "boundary_length"]
