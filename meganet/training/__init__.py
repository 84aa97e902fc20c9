"""Training drivers built on the objectives and the optimizers.

=====================================  ====================================================
:func:`block_coordinate_descent`       alternate a Newton-PCG step on the classifier and a
                                       Gauss-Newton-PCG step on θ (Haber & Ruthotto 2017 §2)
:func:`train_multilevel`               train with N steps, prolongate to 2N, warm-start
                                       (Haber & Ruthotto 2017 §5.3)
:class:`KeepBest`                      solver callback keeping the best validation iterate;
:func:`train_keep_best`                runs a solver with it
:func:`train_image_classifier`         SGD with momentum on images, the JMIV 2019 §5 recipe:
                                       piecewise-constant rate, augmentation, keep-best,
                                       checkpoint/resume, chunked evaluation
:func:`alpha_sweep`                    few labels: Peters 2020 output regularization, one
                                       network per α from one initial point, α by val mIoU
=====================================  ====================================================

All but :func:`train_image_classifier` (an :class:`ImageTrainResult`) return the result objects of
:mod:`meganet.optimizers` (``OptimizeResult``;
:class:`MultilevelResult` holds one per level).
"""

from ._common import SOLVERS
from .block_coordinate import ClassifierSubproblem, ThetaSubproblem, block_coordinate_descent
from .image_classification import ImageTrainResult, evaluate_classifier, jmiv_learning_rate, train_image_classifier
from .keep_best import KeepBest, train_keep_best
from .multilevel import LevelResult, MultilevelResult, time_stepping_blocks, train_multilevel
from .segmentation import AlphaSweepResult, alpha_sweep, best_alpha, sweep_markdown, sweep_summary

__all__ = ["block_coordinate_descent", "ClassifierSubproblem", "ThetaSubproblem", "train_multilevel",
           "MultilevelResult", "LevelResult", "time_stepping_blocks", "KeepBest", "train_keep_best", "SOLVERS",
           "train_image_classifier", "ImageTrainResult", "evaluate_classifier", "jmiv_learning_rate",
           "alpha_sweep", "AlphaSweepResult", "best_alpha", "sweep_summary", "sweep_markdown"]
