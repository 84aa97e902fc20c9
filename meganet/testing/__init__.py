"""Derivative checks for users and tests: Taylor tests, adjoint (dot) tests,
and :func:`check_element` running both w.r.t. θ, Y and both together."""

from .adjoint import DotReport, assert_adjoint, default_dot_tol, dot_test
from .check import ElementReport, assert_element, check_element, random_direction
from .taylor import TaylorReport, assert_taylor, taylor_test, taylor_test_line

__all__ = [
    "TaylorReport", "taylor_test", "taylor_test_line", "assert_taylor",
    "DotReport", "dot_test", "assert_adjoint", "default_dot_tol",
    "ElementReport", "check_element", "assert_element", "random_direction",
]
