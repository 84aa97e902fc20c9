"""Registry: every activation as a Pointwise element, on vector and image shapes."""

import numpy as np

from meganet.activations import ACTIVATIONS
from meganet.layers import Pointwise
from tests.registry import Case, register


def _away_from_kinks(margin):
    """Inputs with |y| ≥ margin, so a piecewise definition is smooth near them."""

    def make(rng, shape):
        y = rng.standard_normal(shape)
        return np.sign(y) * (margin + np.abs(y))

    return make


def _smooth_relu_inputs(rng, shape):
    """Half the entries inside the quadratic piece (|y| < 0.3η), half well outside (|y| > 4η),
    so the Taylor directions (rel_step 0.03) do not cross the kinks of σ'' at ±η."""
    y = rng.standard_normal(shape)
    inner = rng.uniform(-0.03, 0.03, shape)
    outer = np.sign(y) * (0.4 + np.abs(y))
    return np.where(rng.random(shape) < 0.5, inner, outer)


for _name in ACTIVATIONS:
    _Y = None
    if _name == "relu":
        _Y = _away_from_kinks(0.5)
    elif _name == "smooth_relu":
        _Y = _smooth_relu_inputs
    for _shape in [(7,), (2, 4, 5)]:
        register(Case(
            f"pointwise-{_name}-{'x'.join(map(str, _shape))}",
            (lambda n=_name, s=_shape: Pointwise(n, s)),
            kind="activation",
            make_Y=_Y,
            rel_step={"relu": 0.05, "smooth_relu": 0.03}.get(_name, 0.5),
        ))
