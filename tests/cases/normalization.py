"""Registry: batch, instance and TV normalization (with and without affine
scale/bias) and per-channel affine scaling, on vector and image shapes."""

import numpy as np

from meganet.layers import SingleLayer
from meganet.normalization import AffineScaling, BatchNorm, InstanceNorm, TVNorm
from meganet.transforms import Dense
from tests.registry import Case, register


def _random_scale_bias(element, rng):
    """θ = (s, β) away from the initial (1, 0), so that a wrong scale or bias
    term in a derivative cannot hide behind s = 1, β = 0."""
    C = element.n_channels
    return np.concatenate([1.0 + 0.3 * rng.standard_normal(C), 0.3 * rng.standard_normal(C)])


_SHAPES = [(5,), (2, 3, 4), (3, 4, 4)]
_CLASSES = {"batchnorm": BatchNorm, "instancenorm": InstanceNorm, "tvnorm": TVNorm}

for _name, _cls in _CLASSES.items():
    for _shape in _SHAPES:
        _sid = "x".join(map(str, _shape))
        for _affine in (False, True):
            register(Case(
                f"{_name}-{_sid}{'-affine' if _affine else ''}",
                (lambda c=_cls, s=_shape, a=_affine: c(s, affine=a)),
                kind="normalization",
                # batch statistics need several examples (vectors: over the examples only)
                n_examples=4 if _name == "batchnorm" and len(_shape) == 1 else 2,
                make_theta=_random_scale_bias if _affine else None,
            ))

for _shape in _SHAPES:
    register(Case(
        f"affinescaling-{'x'.join(map(str, _shape))}",
        (lambda s=_shape: AffineScaling(s)),
        kind="normalization",
        make_theta=_random_scale_bias,
    ))

# a normalization inside a layer: K, bias, BatchNorm with scale/bias, tanh (chain through all parts)
register(Case(
    "single-dense-4-6-batchnorm-affine",
    lambda: SingleLayer(Dense(4, 6), normalization=BatchNorm(6, affine=True)),
    kind="layer",
    n_examples=5,
))


# BatchNorm in evaluation mode: the running statistics (set to non-trivial values, so that a
# wrong mean or scale cannot hide behind 0 and 1) replace the batch statistics
def _eval_batchnorm(shape, affine, seed):
    el = BatchNorm(shape, affine=affine)
    rng = np.random.default_rng(seed)
    C = el.n_channels
    el.running_mean = rng.standard_normal(C)
    el.running_var = 0.5 + rng.random(C)
    el.training = False
    return el


for _k, _shape in enumerate(_SHAPES):
    for _affine in (False, True):
        register(Case(
            f"batchnorm-eval-{'x'.join(map(str, _shape))}{'-affine' if _affine else ''}",
            (lambda s=_shape, a=_affine, k=_k: _eval_batchnorm(s, a, 100 + k)),
            kind="normalization",
            n_examples=3,
            make_theta=_random_scale_bias if _affine else None,
        ))

# an evaluation-mode BatchNorm inside a layer
register(Case(
    "single-dense-4-6-batchnorm-eval-affine",
    lambda: SingleLayer(Dense(4, 6), normalization=_eval_batchnorm((6,), True, 7)),
    kind="layer",
    n_examples=3,
))
