"""Base class of pointwise activation functions σ."""

from __future__ import annotations

__all__ = ["Activation"]


class Activation:
    """A scalar function applied elementwise, with its first and second derivatives.

    Subclasses implement ``value(x)``, ``derivative(x)`` and
    ``second_derivative(x)`` for arrays of any shape and backend; results have
    the dtype of ``x``.  ``value_and_derivative`` may be overridden to share
    work (e.g. ``tanh``: σ' = 1 − σ²).
    """

    name = "activation"

    def value(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def second_derivative(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def value_and_derivative(self, x):
        """``(σ(x), σ'(x))``."""
        return self.value(x), self.derivative(x)

    #: True when σ' is a function of σ alone (:meth:`derivative_from_value`), so
    #: a layer that keeps ``σ(x)`` need not also keep ``σ'(x)``.
    derivative_from_value_available = False

    def derivative_from_value(self, s):
        """``σ'(x)`` from ``s = σ(x)`` (tanh: ``1 − s²``, sigmoid: ``s(1 − s)``, relu: ``[s > 0]``,
        identity: 1) — the same arithmetic as :meth:`value_and_derivative`."""
        raise NotImplementedError(f"{type(self).__name__} cannot compute σ' from σ")

    def __call__(self, x):
        return self.value(x)

    def __repr__(self):
        return f"{type(self).__name__}()"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self), tuple(sorted(vars(self).items()))))
