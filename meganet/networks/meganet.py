"""A network of blocks with θ split across them (Meganet.m ``Meganet.m``)."""

from __future__ import annotations

from ..core.chain import Chain

__all__ = ["Meganet"]


class Meganet(Chain):
    r"""A deep network as a sequence of blocks,

    .. math:: Z = \mathcal{B}_{L−1}(θ_{L−1}, … \mathcal{B}_1(θ_1, \mathcal{B}_0(θ_0, Y))),

    where each block is a time-stepping block (ResNet, RK4 ResNet, Hamiltonian,
    leapfrog …) or a single layer connecting blocks of different widths
    (e.g. a dense layer or a 1×1 convolution with pooling).  The parameter
    vector is the concatenation ``θ = (θ_0, …, θ_{L−1})``; :meth:`block_thetas`
    returns zero-copy views of the parts (Meganet.m ``Meganet.m``, whose
    ``split`` does the same; the "units" of blocks joined by connecting layers
    of Ruthotto & Haber, "Deep neural networks motivated by partial
    differential equations", JMIV 2019).

    Forward, ``Jmv`` and ``JTmv`` are the chain rule over the blocks (the
    adjoint loop is the forward loop in reverse), inherited from
    :class:`~meganet.core.chain.Chain`.

    Parameters
    ----------
    blocks : sequence of Element
        ``blocks[i].shape_out == blocks[i+1].shape_in``.
    names : sequence of str, optional
        Names of the blocks' parameter parts (default ``"0"``, ``"1"``, …).

    Shapes
    ------
    Y : (n_examples, *blocks[0].shape_in) → Z : (n_examples, *blocks[-1].shape_out)
    """

    def __init__(self, blocks, *, names=None):
        super().__init__(blocks, names=names)

    @property
    def blocks(self):
        """The blocks, in order."""
        return self.elements

    def block_thetas(self, theta):
        """Views of ``θ`` (or of a batch ``(..., n_theta)``) for each block; no copies.

        Returns
        -------
        Parts
            ``parts[i]`` (or ``parts.<name>``) has shape ``(..., blocks[i].n_theta)``.
        """
        if theta.shape[-1] != self.n_theta:
            raise ValueError(f"theta must have length {self.n_theta} along its last axis, got {theta.shape[-1]}")
        return self.split(theta)

    def __repr__(self):
        inner = "\n".join(f"  ({n}): {b!r}" for n, b in zip(self.layout.names, self.elements))
        return f"Meganet(n_theta={self.n_theta},\n{inner}\n)"
