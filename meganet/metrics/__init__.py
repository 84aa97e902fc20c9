"""Evaluation metrics: :func:`segmentation_scores` (confusion matrix, per-class IoU, mean IoU, pixel accuracy on
labelled pixels) and :func:`confusion_matrix`."""

from .segmentation import SegmentationScores, confusion_matrix, segmentation_scores

__all__ = ["confusion_matrix", "segmentation_scores", "SegmentationScores"]
