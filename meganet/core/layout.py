"""Flat parameter vectors and their zero-copy split into named parts."""

from __future__ import annotations

from ..core.validation import check_int

__all__ = ["Layout", "Parts"]


class Parts:
    """Named views into a flat parameter vector (attribute or key access).

    Iteration yields the views in layout order.  Works on a batch of vectors
    too (views along the last axis), which is how per-example gradients are
    split.
    """

    __slots__ = ("_names", "_views")

    def __init__(self, names, views):
        self._names = tuple(names)
        self._views = tuple(views)

    def __getattr__(self, name):
        try:
            return self._views[self._names.index(name)]
        except ValueError:
            raise AttributeError(f"no parameter part named {name!r}; parts are {self._names}") from None

    def __getitem__(self, key):
        if isinstance(key, int):
            return self._views[key]
        return self.__getattr__(key)

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

    def names(self):
        return self._names

    def __repr__(self):
        return "Parts(" + ", ".join(f"{n}: {tuple(v.shape)}" for n, v in zip(self._names, self._views)) + ")"


class Layout:
    """Slices of a flat parameter vector, computed once.

    Parameters
    ----------
    parts : list of (name, size)
        Sizes are the number of scalars of each part, in order.

    Examples
    --------
    >>> import numpy as np
    >>> lay = Layout([("K", 6), ("b", 2)])
    >>> p = lay.split(np.arange(8.0))
    >>> p.b
    array([6., 7.])
    """

    def __init__(self, parts):
        names, slices, start = [], [], 0
        for name, size in parts:
            size = check_int(f"size of parameter part {name!r}", size, minimum=0)
            if name in names:
                raise ValueError(f"duplicate parameter part name {name!r}")
            names.append(name)
            slices.append(slice(start, start + size))
            start += size
        self.names = tuple(names)
        self.slices = tuple(slices)
        self.size = start

    def slice(self, name):
        return self.slices[self.names.index(name)]

    def split(self, theta):
        """Views of ``theta`` (shape ``(..., size)``) for each part; no copies."""
        return Parts(self.names, [theta[..., s] for s in self.slices])

    def __repr__(self):
        return "Layout(" + ", ".join(f"{n}={s.stop - s.start}" for n, s in zip(self.names, self.slices)) + ")"
