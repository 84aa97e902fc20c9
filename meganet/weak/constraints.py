"""Builders of the linear constraints of constrained CNNs (Pathak, Krähenbühl &
Darrell 2015, as presented by Rabinovich 2020) in the format of
:func:`~meganet.weak.kl_projection`.

Format
------
A pair ``(A, b)`` (a :class:`LinearConstraints` named tuple) with ``A`` of shape
``(n_constraints, n_labels)`` and ``b`` of shape ``(n_constraints,)``, both float64.
Row ``k`` is the constraint on the *pixel fractions* ``p̄(l) = (1/n) Σ_i P_i(l)``

    Σ_l A[k, l] · p̄(l) ≥ b[k]

i.e. the paper's ``A vec(P) ≥ b`` (eq. 2) with the per-pixel weight matrix
``a_k[i, l] = A[k, l] / n`` (the same for every pixel).  Upper bounds are written
as ``−p̄(l) ≥ −u``.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

__all__ = ["LinearConstraints", "suppression", "foreground", "background", "stack"]


class LinearConstraints(NamedTuple):
    """``A p̄ ≥ b`` on the label fractions ``p̄``; unpacks as ``A, b = ...``."""

    A: np.ndarray
    b: np.ndarray


def _check_n_labels(n_labels):
    if not isinstance(n_labels, numbers.Integral) or isinstance(n_labels, bool) or n_labels < 1:
        raise ValueError(f"n_labels must be a positive integer, got {n_labels!r}")
    return int(n_labels)


def _check_label(name, label, n_labels):
    if not isinstance(label, numbers.Integral) or isinstance(label, bool):
        raise TypeError(f"{name} must be an integer label, got {label!r}")
    if not 0 <= label < n_labels:
        raise ValueError(f"{name} must be in [0, {n_labels}), got {label}")
    return int(label)


def _check_tags(tags, n_labels):
    tags = [_check_label("tags entry", t, n_labels) for t in tags]
    if len(set(tags)) != len(tags):
        raise ValueError(f"tags must not repeat a label, got {tags}")
    return tags


def _check_fraction(name, v):
    if not isinstance(v, numbers.Real) or isinstance(v, bool) or not np.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be a pixel fraction in [0, 1], got {v!r}")
    return float(v)


def suppression(tags, n_labels):
    """Suppression constraints: every label *not* among the image ``tags`` gets no mass,
    ``p̄(l) ≤ 0``, written as ``−p̄(l) ≥ 0`` (one row per absent label).

    With hard constraints these force ``P_i(l) = 0`` for all pixels; :func:`kl_projection`
    handles such labels by removing them (their multipliers are +∞ in the limit).
    """
    n_labels = _check_n_labels(n_labels)
    tags = set(_check_tags(tags, n_labels))
    absent = [l for l in range(n_labels) if l not in tags]
    A = np.zeros((len(absent), n_labels))
    A[np.arange(len(absent)), absent] = -1.0
    return LinearConstraints(A, np.zeros(len(absent)))


def foreground(tags, fractions, n_labels):
    """Foreground constraints (eq. 6, divided by the number of pixels): each present label
    ``l`` in ``tags`` covers at least the fraction ``a_l`` of the pixels, ``p̄(l) ≥ a_l``.

    ``fractions`` is one number for all tags or a sequence aligned with ``tags``.
    """
    n_labels = _check_n_labels(n_labels)
    tags = _check_tags(tags, n_labels)
    if isinstance(fractions, numbers.Real) and not isinstance(fractions, bool):
        fractions = [fractions] * len(tags)
    fractions = list(fractions)
    if len(fractions) != len(tags):
        raise ValueError(f"fractions must be one number or one per tag ({len(tags)}), got {len(fractions)}")
    b = np.array([_check_fraction("fractions entry", a) for a in fractions], dtype=np.float64)
    A = np.zeros((len(tags), n_labels))
    A[np.arange(len(tags)), tags] = 1.0
    return LinearConstraints(A, b)


def background(label, lower, upper, n_labels):
    """Background constraint: ``lower ≤ p̄(label) ≤ upper`` as the two rows
    ``p̄(label) ≥ lower`` and ``−p̄(label) ≥ −upper``."""
    n_labels = _check_n_labels(n_labels)
    label = _check_label("label", label, n_labels)
    lower, upper = _check_fraction("lower", lower), _check_fraction("upper", upper)
    if lower > upper:
        raise ValueError(f"lower must be <= upper, got lower={lower}, upper={upper}")
    A = np.zeros((2, n_labels))
    A[0, label], A[1, label] = 1.0, -1.0
    return LinearConstraints(A, np.array([lower, -upper]))


def stack(*constraints):
    """Concatenate constraint sets ``(A, b)`` (all with the same number of labels)."""
    if not constraints:
        raise ValueError("stack needs at least one (A, b) pair")
    As, bs = [], []
    for j, c in enumerate(constraints):
        try:
            A, b = c
        except (TypeError, ValueError):
            raise TypeError(f"constraint set {j} must be an (A, b) pair, got {type(c).__name__}") from None
        A = np.asarray(A, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if A.ndim != 2 or b.shape != (A.shape[0],):
            raise ValueError(f"constraint set {j}: A must be (m, n_labels) and b (m,), got {A.shape} and {b.shape}")
        if As and A.shape[1] != As[0].shape[1]:
            raise ValueError(f"constraint set {j} has {A.shape[1]} labels, the first has {As[0].shape[1]}")
        As.append(A)
        bs.append(b)
    return LinearConstraints(np.concatenate(As, axis=0), np.concatenate(bs))
