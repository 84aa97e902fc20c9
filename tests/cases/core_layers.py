"""Registry: dense transform, bias, single layer with dense transform."""

from meganet.layers import Bias, SingleLayer
from meganet.transforms import Dense
from tests.registry import Case, register

register(Case("dense-4-6", lambda: Dense(4, 6), kind="transform"))
register(Case("dense-5-5", lambda: Dense(5, 5), kind="transform", n_examples=1))
register(Case("bias-6", lambda: Bias(6), kind="layer"))
register(Case("bias-3x4x4", lambda: Bias((3, 4, 4)), kind="layer"))
for act in ("tanh", "sigmoid", "identity"):
    register(Case(f"single-dense-4-6-{act}", lambda a=act: SingleLayer(Dense(4, 6), activation=a), kind="layer"))
register(Case("single-dense-3-3-nobias", lambda: SingleLayer(Dense(3, 3), bias=False), kind="layer", n_examples=5))
