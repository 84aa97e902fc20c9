"""meganet: deep neural networks as discretized ODEs/PDEs, with hand-coded
derivatives, verified adjoints and second-order training."""

from . import (activations, backend, data, integrators, layers, losses, multilevel, networks, normalization,
               objectives, optimizers, regularizers, stability, testing, training, transforms)
from .core import Chain, Element, JacobianOperator, Layout

__version__ = "0.1.0"

__all__ = ["Element", "Chain", "Layout", "JacobianOperator", "activations", "backend", "data", "integrators",
           "layers", "losses", "multilevel", "networks", "normalization", "objectives", "optimizers",
           "regularizers", "stability", "testing", "training", "transforms", "__version__"]
