"""Plots of training runs (optional: needs matplotlib, ``pip install 'meganet[plot]'``).

matplotlib is imported inside the functions, so ``import meganet.plotting``
works without it; calling a function without matplotlib raises ``ImportError``
with the install hint.

* :func:`decision_regions` — predicted classes over the plane with the data (Haber & Ruthotto 2017, Fig. 3).
* :func:`convergence` — loss and validation metric vs. iteration and work units.
* :func:`compare_runs` — several solvers: loss and metric vs. work units and wall time (benchmark B5).
* :func:`predicted_vs_true` — observables of a few samples, true and predicted (PDE surrogates).
* :func:`miou_vs_alpha`, :func:`segmentation_maps` — few-label segmentation (Peters 2020): mIoU against α, maps.
"""

from ._mpl import INSTALL_HINT, require_matplotlib
from .convergence import compare_runs, convergence
from .decision import class_colors, decision_regions
from .observables import predicted_vs_true, relative_errors
from .segmentation import miou_vs_alpha, segmentation_maps

__all__ = ["decision_regions", "class_colors", "convergence", "compare_runs", "predicted_vs_true", "relative_errors", "require_matplotlib", "INSTALL_HINT",
           "miou_vs_alpha", "segmentation_maps"]
