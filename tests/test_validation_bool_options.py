"""Every boolean option of the element, loss, stability and testing API goes through ``check_bool``
(issue 9, defect 13a): ``'yes'``/``'no'``/``1`` raise ``TypeError`` naming the parameter and the value,
numpy booleans are accepted like ``True``/``False``, and the table below is checked against the
signatures and docstrings, so a new flag cannot be forgotten.  The flags of the normalizations, the
compute kernels and the line search (outside the scanned packages) are checked too."""

import importlib
import inspect
import pkgutil
import re

import numpy as np
import pytest

import meganet.kernels as kernels
from meganet.integrators import (AntisymmetricResNet, HamiltonianCNN, HamiltonianVerlet, HamiltonianVerletCNN, Leapfrog,
                                 ParabolicCNN, SecondOrderCNN, symmetric_conv_layer)
from meganet.layers import Connector, DoubleLayer, SingleLayer, SymmetricLayer
from meganet.networks import segmentation_network
from meganet.layers.connector import make_normalization
from meganet.losses import LeastSquares, LogisticRegression, SoftmaxCrossEntropy
from meganet.kernels.activation import bias_activation
from meganet.kernels.conv2d import conv2d_adjoint_weight
from meganet.kernels.timestep import resnet_dense_forward
from meganet.networks import jmiv_network
from meganet.normalization import BatchNorm, InstanceNorm, TVNorm
from meganet.optimizers.linesearch import armijo_backtracking
from meganet.stability import jacobian_spectrum, perturbation_growth
from meganet.testing import check_element, dot_test, taylor_test
from meganet.testing.second_order import check_second_order
from meganet.transforms import Dense
from meganet.weak import kl_projection, tag_constraints, train_constrained

PACKAGES = ["core", "losses", "layers", "transforms", "integrators", "networks", "regularizers", "objectives",
            "activations", "multilevel", "stability", "testing", "weak", "metrics"]
# flags of the validators themselves (always called with literals inside meganet)
NOT_OPTIONS = {("check_array", "finite"), ("check_int", "odd"), ("check_positive", "allow_zero"),
               ("lanczos", "restart"),  # the private Lanczos of the VarPro inner solver, called with literals
               ("confusion_matrix", "mask"), ("boundary_length", "mask"),
               ("tag_constraints", "tags")}  # bool arrays (data), not flags

_IMG = dict(n_steps=2, final_time=1.0)


def _dense_theta():
    d = Dense(3, 3)
    return d, d.init_theta(rng=0)


def _jtmv(v):
    d, th = _dense_theta()
    return d.JTmv(np.ones((2, 3)), th, np.ones((2, 3)), per_example=v)


def _jthetatmv(v):
    d, th = _dense_theta()
    return d.JthetaTmv(np.ones((2, 3)), th, np.ones((2, 3)), per_example=v)


def _dk_adj(v):
    d, th = _dense_theta()
    return d.dK_adj(th, np.ones((2, 3)), np.ones((2, 3)), per_example=v)


def _hess(method):
    def make(v):
        loss = SoftmaxCrossEntropy(3, 2)
        ev = loss.evaluate(np.ones((2, 3)), loss.init_w(rng=0), np.zeros(2, int))
        args = {"hess_mv": (None, np.ones(loss.n_w)), "hess_Yw_mv": (np.ones(loss.n_w),),
                "hess_wY_mv": (np.ones((2, 3)),)}[method]
        return getattr(loss, method)(*args, ev, gauss_newton=v)
    return make


def _loss(cls, name):
    shape = (2, 3, 3) if name == "per_pixel" else 3
    return lambda v: cls(shape, 2, **{name: v})


def _train_constrained(v):
    net = segmentation_network(1, (2, 2), width=2, n_layers=1)
    loss = SoftmaxCrossEntropy(net.shape_out, 2, per_pixel=True)
    X = np.ones((1, 1, 2, 2))
    return train_constrained(net, loss, X, tag_constraints(np.ones((1, 2), dtype=bool)),
                             np.zeros(net.n_theta + loss.n_w), outer_iter=1, theta_solver="lbfgs",
                             theta_solver_options={"max_iter": 1}, verbose=v)


# (qualified name, parameter) -> maker(value); for ALLOWS_NONE ``None`` is documented ("decided from the
# other options")
FLAGS = {
    ("Element.JTmv", "per_example"): _jtmv,
    ("Element.JthetaTmv", "per_example"): _jthetatmv,
    ("Transform.dK_adj", "per_example"): _dk_adj,
    ("Loss.hess_mv", "gauss_newton"): _hess("hess_mv"),
    ("Loss.hess_Yw_mv", "gauss_newton"): _hess("hess_Yw_mv"),
    ("Loss.hess_wY_mv", "gauss_newton"): _hess("hess_wY_mv"),
    ("Loss", "bias"): _loss(SoftmaxCrossEntropy, "bias"),
    ("Loss", "per_pixel"): _loss(SoftmaxCrossEntropy, "per_pixel"),
    ("SoftmaxCrossEntropy", "bias"): _loss(SoftmaxCrossEntropy, "bias"),
    ("SoftmaxCrossEntropy", "per_pixel"): _loss(SoftmaxCrossEntropy, "per_pixel"),
    ("LogisticRegression", "bias"): _loss(LogisticRegression, "bias"),
    ("LogisticRegression", "per_pixel"): _loss(LogisticRegression, "per_pixel"),
    ("LeastSquares", "bias"): _loss(LeastSquares, "bias"),
    ("LeastSquares", "per_pixel"): _loss(LeastSquares, "per_pixel"),
    ("SingleLayer", "bias"): lambda v: SingleLayer(Dense(3, 3), bias=v),
    ("SymmetricLayer", "bias"): lambda v: SymmetricLayer(Dense(3, 3), bias=v),
    ("DoubleLayer", "bias1"): lambda v: DoubleLayer(Dense(3, 3), Dense(3, 3), bias1=v),
    ("DoubleLayer", "bias2"): lambda v: DoubleLayer(Dense(3, 3), Dense(3, 3), bias2=v),
    ("Connector", "affine"): lambda v: Connector(2, 4, (4, 4), affine=v),
    ("Connector", "bias"): lambda v: Connector(2, 4, (4, 4), bias=v),
    ("make_normalization", "affine"): lambda v: make_normalization("batch", (2, 4, 4), affine=v),
    ("AntisymmetricResNet", "bias"): lambda v: AntisymmetricResNet(3, bias=v, **_IMG),
    ("HamiltonianVerlet", "reversible"): lambda v: HamiltonianVerlet(2, 2, reversible=v, **_IMG),
    ("HamiltonianVerletCNN", "reversible"): lambda v: HamiltonianVerletCNN(1, 1, (3, 3), reversible=v, **_IMG),
    ("segmentation_network", "reversible"): lambda v: segmentation_network(2, (4, 4), width=2, n_layers=1,
                                                                           reversible=v),
    ("Leapfrog", "reversible"): lambda v: Leapfrog(3, reversible=v, **_IMG),
    ("HamiltonianCNN", "affine"): lambda v: HamiltonianCNN(2, (4, 4), affine=v, **_IMG),
    ("HamiltonianCNN", "bias"): lambda v: HamiltonianCNN(2, (4, 4), bias=v, **_IMG),
    ("HamiltonianCNN", "reversible"): lambda v: HamiltonianCNN(2, (4, 4), reversible=v, **_IMG),
    ("ParabolicCNN", "affine"): lambda v: ParabolicCNN(2, (4, 4), affine=v, **_IMG),
    ("ParabolicCNN", "bias"): lambda v: ParabolicCNN(2, (4, 4), bias=v, **_IMG),
    ("symmetric_conv_layer", "affine"): lambda v: symmetric_conv_layer(2, (4, 4), affine=v),
    ("symmetric_conv_layer", "bias"): lambda v: symmetric_conv_layer(2, (4, 4), bias=v),
    ("SecondOrderCNN", "affine"): lambda v: SecondOrderCNN(2, (4, 4), affine=v, **_IMG),
    ("SecondOrderCNN", "bias"): lambda v: SecondOrderCNN(2, (4, 4), bias=v, **_IMG),
    ("SecondOrderCNN", "reversible"): lambda v: SecondOrderCNN(2, (4, 4), reversible=v, **_IMG),
    ("jmiv_network", "affine"): lambda v: jmiv_network(image_shape=(4, 4), channels=(2, 2), affine=v),
    ("jmiv_network", "reversible"): lambda v: jmiv_network("hamiltonian", image_shape=(4, 4), channels=(2, 2),
                                                           reversible=v),
    ("perturbation_growth", "per_step"): lambda v: perturbation_growth(*_dense_theta(), np.ones((2, 3)), per_step=v),
    ("jacobian_spectrum", "per_example"): lambda v: jacobian_spectrum(*_dense_theta(), np.ones((2, 3)),
                                                                      per_example=v),
    ("check_element", "taylor"): lambda v: check_element(Dense(2, 2), taylor=v),
    ("check_element", "dot"): lambda v: check_element(Dense(2, 2), dot=v),
    ("check_element", "verbose"): lambda v: check_element(Dense(2, 2), dot=False, taylor=False, verbose=v),
    ("dot_test", "verbose"): lambda v: dot_test(lambda x: x, lambda x: x, np.ones(2), np.ones(2), verbose=v),
    ("taylor_test", "verbose"): lambda v: taylor_test(lambda x: x, np.ones(2), np.ones(2), np.ones(2), verbose=v),
    ("check_second_order", "symmetry"): lambda v: check_second_order(*_dense_theta(), np.ones((2, 3)), symmetry=v),
    ("kl_projection", "log"): lambda v: kl_projection(np.full((2, 2), np.log(0.5) if isinstance(v, (bool, np.bool_)) and v else 0.5),
                                                      np.eye(2), np.zeros(2), log=v),
    ("kl_projection", "verbose"): lambda v: kl_projection(np.full((2, 2), 0.5), np.eye(2), np.zeros(2), verbose=v),
    ("tag_constraints", "suppress"): lambda v: tag_constraints(np.ones((1, 2), dtype=bool), suppress=v),
    ("train_constrained", "verbose"): _train_constrained,
}
ALLOWS_NONE = {("Connector", "bias"), ("HamiltonianCNN", "bias"), ("ParabolicCNN", "bias"),
               ("symmetric_conv_layer", "bias"), ("SecondOrderCNN", "bias")}
CASES = [pytest.param(key, make, id=f"{key[0]}-{key[1]}") for key, make in FLAGS.items()]

# flags outside the scanned packages (normalizations, kernels, line search, module switches)
OTHER_FLAGS = {
    ("BatchNorm", "affine"): lambda v: BatchNorm(3, affine=v),
    ("InstanceNorm", "affine"): lambda v: InstanceNorm((3, 4, 4), affine=v),
    ("TVNorm", "affine"): lambda v: TVNorm((3, 4, 4), affine=v),
    ("conv2d_adjoint_weight", "per_example"): lambda v: conv2d_adjoint_weight(
        np.ones((1, 1, 4, 4)), np.ones((1, 1, 4, 4)), (3, 3), "zero", per_example=v),
    ("armijo_backtracking", "interpolate"): lambda v: armijo_backtracking(lambda a: 1.0 - a, 1.0, -1.0,
                                                                         interpolate=v),
    ("bias_activation", "derivative"): lambda v: bias_activation(np.ones((2, 3)), np.zeros(3), "tanh",
                                                                 derivative=v),
    ("resnet_dense_forward", "store"): lambda v: resnet_dense_forward(np.ones((2, 3)), np.zeros((1, 3, 3)),
                                                                      np.zeros((1, 3)), 0.1, store=v),
    ("set_deterministic", "enabled"): kernels.set_deterministic,  # None is documented: back to the env variable
    ("set_compile_message", "enabled"): kernels.set_compile_message,
}
OTHER_CASES = [pytest.param(key, make, id=f"{key[0]}-{key[1]}") for key, make in OTHER_FLAGS.items()]
#: Flags for which None is an error too (not "decided from the other options").
NONE_REJECTED = [
    ("SingleLayer", "bias"), ("SymmetricLayer", "bias"), ("SoftmaxCrossEntropy", "bias"), ("LeastSquares", "bias"),
    ("AntisymmetricResNet", "bias"), ("DoubleLayer", "bias1"), ("DoubleLayer", "bias2"),
    ("LogisticRegression", "per_pixel"), ("HamiltonianVerlet", "reversible"), ("Leapfrog", "reversible"),
    ("HamiltonianVerletCNN", "reversible"), ("segmentation_network", "reversible"),
    ("BatchNorm", "affine"), ("InstanceNorm", "affine"), ("TVNorm", "affine"), ("Element.JTmv", "per_example"),
    ("Transform.dK_adj", "per_example"), ("conv2d_adjoint_weight", "per_example"), ("Loss.hess_mv", "gauss_newton"),
    ("check_element", "verbose"), ("check_element", "taylor"), ("dot_test", "verbose"), ("taylor_test", "verbose"),
    ("check_second_order", "symmetry"),
    ("armijo_backtracking", "interpolate"), ("bias_activation", "derivative"), ("resnet_dense_forward", "store"),
    ("set_compile_message", "enabled"),
]


def _public_bool_options():
    """(qualified name, parameter) of every public function/method/constructor parameter that defaults to a
    bool or is documented as ``name : bool`` (numpydoc), in the packages above."""
    found = set()
    for package in PACKAGES:
        pkg = importlib.import_module(f"meganet.{package}")
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = importlib.import_module(f"meganet.{package}.{info.name}")
            for name, obj in vars(mod).items():
                if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                    continue
                if inspect.isclass(obj):
                    if hasattr(obj, "__dataclass_fields__"):
                        continue  # results (``ok``, ``stable``), not options
                    fns = [(name if attr == "__init__" else f"{name}.{attr}", f,
                            (f.__doc__ or "") + (obj.__doc__ or "" if attr == "__init__" else ""))
                           for attr, f in vars(obj).items()
                           if inspect.isfunction(f) and (attr == "__init__" or not attr.startswith("_"))]
                elif inspect.isfunction(obj):
                    fns = [(name, obj, obj.__doc__ or "")]
                else:
                    continue
                for qualname, f, doc in fns:
                    documented = set(re.findall(r"^\s*(\w+)\s*:\s*bool\b", doc, re.M))
                    for p in inspect.signature(f).parameters.values():
                        if isinstance(p.default, bool) or p.name in documented:
                            found.add((qualname, p.name))
    return found - NOT_OPTIONS


def test_table_lists_every_bool_option():
    missing = _public_bool_options() - set(FLAGS)
    assert not missing, f"boolean options without a check in FLAGS: {sorted(missing)}"


@pytest.mark.parametrize("key, make", CASES + OTHER_CASES)
@pytest.mark.parametrize("value", ["yes", "no", "False", 1, 0])
def test_non_bool_is_rejected(key, make, value):
    with pytest.raises(TypeError, match=rf"{key[1]} must be True or False, got {value!r}"):
        make(value)


@pytest.mark.parametrize("key", NONE_REJECTED, ids="-".join)
def test_none_is_rejected(key):
    make = FLAGS.get(key) or OTHER_FLAGS[key]
    with pytest.raises(TypeError, match=rf"{key[1]} must be True or False, got None"):
        make(None)


@pytest.mark.parametrize("key, make", CASES)
def test_numpy_bool_is_accepted(key, make):
    make(np.bool_(key[1] != "verbose"))  # (verbose=True would only print)
    make(np.bool_(False))


@pytest.mark.parametrize("key, make", [c for c in CASES if c.values[0] in ALLOWS_NONE])
def test_none_means_automatic(key, make):
    make(None)


@pytest.mark.parametrize("make", [lambda v: Leapfrog(3, bias=v, **_IMG),
                                  lambda v: HamiltonianVerlet(2, 2, bias=v, **_IMG)])
@pytest.mark.parametrize("value", [True, "yes", "Vector"])
def test_bias_kinds_are_an_option_set(make, value):
    with pytest.raises(ValueError, match=r"bias must be one of \{'"):
        make(value)
