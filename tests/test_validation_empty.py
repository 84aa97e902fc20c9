"""Empty data (issue 9, defect 10): every loss method and the objectives' metrics raise a clear
ValueError for 0 examples (and for a mask that selects nothing) instead of ZeroDivisionError."""

import numpy as np
import pytest

from meganet.layers import SingleLayer
from meganet.losses import LeastSquares, LogisticRegression, SoftmaxCrossEntropy
from meganet.objectives import NetworkObjective, VarProObjective
from meganet.regularizers import Tikhonov
from meganet.transforms import Dense

LOSSES = [
    pytest.param(lambda: SoftmaxCrossEntropy(4, 3), lambda n: np.zeros(n, int), id="softmax"),
    pytest.param(lambda: LogisticRegression(4, 1), lambda n: np.zeros((n, 1)), id="logistic"),
    pytest.param(lambda: LeastSquares(4, 2), lambda n: np.zeros((n, 2)), id="least_squares"),
]


@pytest.mark.parametrize("make, labels", LOSSES)
@pytest.mark.parametrize("method", ["value", "evaluate", "accuracy"])
def test_zero_examples(make, labels, method):
    loss = make()
    with pytest.raises(ValueError, match="Y has 0 examples"):
        getattr(loss, method)(np.zeros((0, 4)), loss.init_w(rng=0), labels(0))


def test_zero_examples_relative_error():
    loss = LeastSquares(4, 2)
    with pytest.raises(ValueError, match="Y has 0 examples"):
        loss.relative_error(np.zeros((0, 4)), loss.init_w(rng=0), np.zeros((0, 2)))


@pytest.mark.parametrize("make, labels", LOSSES)
@pytest.mark.parametrize("method", ["value", "evaluate", "accuracy"])
def test_mask_selecting_nothing(make, labels, method):
    loss = make()
    with pytest.raises(ValueError, match="mask selects no labelled sample"):
        getattr(loss, method)(np.ones((3, 4)), loss.init_w(rng=0), labels(3), mask=np.zeros(3, bool))


@pytest.mark.parametrize("cls", [NetworkObjective, VarProObjective])
def test_objective_metrics_on_empty_validation_set(cls):
    net = SingleLayer(Dense(2, 4), activation="tanh")
    rng = np.random.default_rng(0)
    kw = dict(classifier_regularizer=Tikhonov(SoftmaxCrossEntropy(4, 3).n_w, alpha=1e-3))
    obj = cls(net, SoftmaxCrossEntropy(4, 3), rng.standard_normal((6, 2)), np.arange(6) % 3, **kw)
    x = obj.init_x(rng=0)
    with pytest.raises(ValueError, match="Y has 0 examples: the metrics"):
        obj.metrics(x, np.zeros((0, 2)), np.zeros(0, int))
    with pytest.raises(ValueError, match="at least one example"):
        cls(net, SoftmaxCrossEntropy(4, 3), np.zeros((0, 2)), np.zeros(0, int), **kw)
