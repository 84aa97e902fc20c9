"""Constructor checks shared by the layers."""

from __future__ import annotations

from ..core.element import Element

__all__ = ["check_layer_normalization"]


def check_layer_normalization(normalization, shape, what):
    """Validate an optional normalization element that must map ``shape`` to itself.

    ``what`` names the shape in the message (e.g. ``"transform.shape_out"``).
    """
    if normalization is None:
        return None
    if not isinstance(normalization, Element):
        raise TypeError(f"normalization must be an Element or None, got {type(normalization).__name__}")
    if tuple(normalization.shape_in) != tuple(shape) or tuple(normalization.shape_out) != tuple(shape):
        raise ValueError(
            f"normalization must map {what} {tuple(shape)} to itself, "
            f"got {tuple(normalization.shape_in)} -> {tuple(normalization.shape_out)}"
        )
    return normalization
