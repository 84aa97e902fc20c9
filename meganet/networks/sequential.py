"""Plain sequential network ``Z = F_L(θ_L, … F_1(θ_1, Y))`` (Meganet.m ``integrators/NN.m``)."""

from __future__ import annotations

from ..core.chain import Chain

__all__ = ["Sequential"]


class Sequential(Chain):
    r"""A plain feed-forward network: layers applied one after the other,

    .. math:: Y_0 = Y,\qquad Y_{i+1} = F_i(θ_i, Y_i),\qquad Z = Y_L,

    with ``θ = (θ_0, …, θ_{L−1})`` split across the layers (zero-copy views,
    parts named ``"0"``, ``"1"``, … unless ``names`` are given).  Unlike a
    time-stepping block the layers may change the feature shape; consecutive
    shapes must match.  The Jacobian is the chain rule ``J = J_{L−1} ⋯ J_0`` and
    the adjoint loop mirrors the forward loop in reverse (Meganet.m
    ``integrators/NN.m``).

    Parameters
    ----------
    elements : sequence of Element
        ``elements[i].shape_out == elements[i+1].shape_in``.
    names : sequence of str, optional
        Names of the parameter parts.

    Shapes
    ------
    Y : (n_examples, *elements[0].shape_in) → Z : (n_examples, *elements[-1].shape_out)
    """

    def __repr__(self):
        names = self.layout.names
        inner = "\n".join(f"  ({n}): {e!r}" for n, e in zip(names, self.elements))
        return f"{type(self).__name__}(\n{inner}\n)"
