"""Training objectives: a network with a linear classifier on a data set, as an
optimization problem for :mod:`meganet.optimizers`.

=====================================  ====================================================
:class:`NetworkObjective`              ``f(θ, w) = L(W F(θ, Y) + μ, C) + R(θ) + S(w)`` over
                                       ``x = (θ, w)``: value, gradient, Gauss-Newton
                                       products, preconditioner, mini-batches
:class:`VarProObjective`               the reduced ``Φ_red(θ) = Φ(θ, w(θ))`` with the
                                       classifier eliminated (VarPro / GNvpro, Newman et al. 2020)
=====================================  ====================================================

Both follow the problem protocol of :mod:`meganet.optimizers.problem`
(``value``, ``gradient``, ``value_and_gradient``, ``hessian_matvec``,
``preconditioner``, ``counter``), so every solver runs on them::

    obj = NetworkObjective(net, SoftmaxCrossEntropy(n, 5), Y, C, regularizer=Tikhonov(net.n_theta, alpha=1e-4))
    res = minimize_newton_cg(obj, obj.init_x(rng=0), max_iter=50)
    obj.metrics(res.x, Y_val, C_val)          # {'loss': ..., 'accuracy': ...}

Work units (``obj.counter``, the measure of cost of the GNvpro paper): a
forward pass of the network over the training set counts 1 (``forward``),
an adjoint pass 1 (``adjoint``), a linearized forward ``J v`` 1 (``forward``),
so a Gauss-Newton product counts 2; passes over a mini-batch or the Hessian
subsample count their fraction of the examples.  Loss, regularizers and the
VarPro inner solve count nothing (no network pass); ``metrics`` count nothing.
"""

from .network_objective import CurvatureSample, NetworkObjective, NetworkState
from .varpro import VarProObjective, VarProState

__all__ = ["NetworkObjective", "NetworkState", "CurvatureSample", "VarProObjective", "VarProState"]
