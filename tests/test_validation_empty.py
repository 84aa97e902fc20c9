"""Empty data (issue 9, defect 10): every average over examples — the losses' value, evaluate, accuracy
and relative error, the objectives' metrics, the output regularizer, perturbation growth, the spectrum,
the element checker — raises a clear ValueError naming the data for 0 examples (and for a mask that
selects nothing) instead of ZeroDivisionError; the per-example maps of the losses return empty arrays
(documented in :class:`~meganet.losses.base.Loss`)."""

import numpy as np
import pytest

from meganet.layers import SingleLayer
from meganet.losses import LeastSquares, LogisticRegression, SoftmaxCrossEntropy
from meganet.objectives import NetworkObjective, VarProObjective
from meganet.regularizers import FeatureSmoothness, Tikhonov
from meganet.stability import jacobian_spectrum, perturbation_growth
from meganet.testing import check_element
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


def _objective(cls, Y, C, **kw):
    """A small softmax objective of class ``cls`` on ``(Y, C)`` (VarPro needs the classifier's Tikhonov)."""
    reg = Tikhonov(SoftmaxCrossEntropy(4, 3).n_w, alpha=1e-3)
    return cls(SingleLayer(Dense(2, 4), activation="tanh"), SoftmaxCrossEntropy(4, 3), Y, C,
               classifier_regularizer=reg, **kw)


def _train_data():
    return np.random.default_rng(0).standard_normal((6, 2)), np.arange(6) % 3


@pytest.mark.parametrize("cls", [NetworkObjective, VarProObjective])
def test_objective_metrics_on_empty_validation_set(cls):
    obj = _objective(cls, *_train_data())
    x = obj.init_x(rng=0)
    with pytest.raises(ValueError, match="Y has 0 examples: the metrics"):
        obj.metrics(x, np.zeros((0, 2)), np.zeros(0, int))
    with pytest.raises(ValueError, match="at least one example"):
        _objective(cls, np.zeros((0, 2)), np.zeros(0, int))


LOSS_MAKERS = [
    pytest.param(lambda **kw: SoftmaxCrossEntropy(4, 3, **kw), id="softmax"),
    pytest.param(lambda **kw: LogisticRegression(4, 1, **kw), id="logistic"),
    pytest.param(lambda **kw: LeastSquares(4, 2, **kw), id="least_squares"),
]


@pytest.mark.parametrize("make", LOSS_MAKERS)
def test_loss_maps_of_no_examples_are_empty(make):
    loss = make()
    Y, w = np.zeros((0, 4)), loss.init_w(rng=0)
    assert loss.logits(Y, w).shape == (0, loss.n_classes)
    assert loss.predict(Y, w).shape[0] == 0
    if hasattr(loss, "probabilities"):
        assert loss.probabilities(Y, w).shape == (0, loss.n_classes)


PER_PIXEL = [
    pytest.param(lambda: SoftmaxCrossEntropy((4, 2, 2), 3, per_pixel=True), id="softmax"),
    pytest.param(lambda: LogisticRegression((4, 2, 2), 1, per_pixel=True), id="logistic"),
    pytest.param(lambda: LeastSquares((4, 2, 2), 2, per_pixel=True), id="least_squares"),
]


@pytest.mark.parametrize("make", PER_PIXEL)
@pytest.mark.parametrize("need", ["value", "grad_Y", "grad_w"])
def test_loss_per_pixel_no_examples_each_part(make, need):
    loss = make()
    with pytest.raises(ValueError, match="Y has 0 examples; the loss .* is an average over the labelled examples"):
        loss.evaluate(np.zeros((0, 4, 2, 2)), loss.init_w(rng=0), np.zeros((0, 2, 2), int), need=need)


@pytest.mark.parametrize("make", PER_PIXEL)
def test_loss_per_pixel_mask_selecting_no_pixel(make):
    loss = make()
    with pytest.raises(ValueError, match="mask selects no labelled sample"):
        loss.accuracy(np.ones((2, 4, 2, 2)), loss.init_w(rng=0), np.zeros((2, 2, 2), int),
                      mask=np.zeros((2, 2, 2), bool))


def test_relative_error_message_names_Y():
    loss = LeastSquares(4, 2)
    with pytest.raises(ValueError, match="Y has 0 examples; the loss .*relative error"):
        loss.relative_error(np.zeros((0, 4)), loss.init_w(rng=0), np.zeros((0, 2)))


@pytest.mark.parametrize("cls", [NetworkObjective, VarProObjective])
def test_objective_metrics_with_a_mask_selecting_nothing(cls):
    obj = _objective(cls, *_train_data())
    Y_val = np.random.default_rng(1).standard_normal((4, 2))
    with pytest.raises(ValueError, match="mask selects no labelled sample"):
        obj.metrics(obj.init_x(rng=0), Y_val, np.zeros(4, int), mask=np.zeros(4, bool))
    with pytest.raises(ValueError, match="mask selects no labelled sample"):
        _objective(cls, *_train_data(), mask=np.zeros(6, bool))


@pytest.mark.parametrize("method", ["value", "gradient", "value_and_gradient", "hessian_diagonal", "hess_mv"])
def test_output_smoothness_of_no_examples(method):
    reg = FeatureSmoothness((1, 4, 4))
    Y = np.zeros((0, 1, 4, 4))
    args = (Y, Y) if method == "hess_mv" else (Y,)
    with pytest.raises(ValueError, match="Y has 0 examples; R is an average over examples"):
        getattr(reg, method)(*args)


def test_stability_tools_of_no_examples():
    d = Dense(3, 3)
    theta = d.init_theta(rng=0)
    with pytest.raises(ValueError, match="Y0 has 0 examples"):
        perturbation_growth(d, theta, np.zeros((0, 3)))
    for per_example in (False, True):
        with pytest.raises(ValueError, match="Y has 0 examples"):
            jacobian_spectrum(d, theta, np.zeros((0, 3)), per_example=per_example)


def test_check_element_does_not_pass_on_no_examples():
    with pytest.raises(ValueError, match="n_examples must be >= 1"):
        check_element(Dense(3, 3), n_examples=0)
    with pytest.raises(ValueError, match="Y has 0 examples; the Taylor and dot tests would pass"):
        check_element(Dense(3, 3), Y=np.zeros((0, 3)))
