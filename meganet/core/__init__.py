"""Core: the element interface, parameter layout, Jacobian operators, validation."""

from .element import Element
from .layout import Layout, Parts
from .operator import JacobianOperator
from .chain import Chain

__all__ = ["Element", "Layout", "Parts", "JacobianOperator", "Chain"]
