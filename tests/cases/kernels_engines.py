"""Registry: the elements whose hot loops have compiled kernels, once per engine.

Every element with an ``engine=`` option is registered with ``engine='numpy'``
(the array-module reference path) and, when numba is installed (it is in the
``test`` extra, so CI has it), with ``engine='numba'``, so the generic Taylor,
dot, per-example, cache-free and dtype tests run through both.  With
``engine='auto'`` (the default, used by the other case modules) a cupy array
selects the cupy engine, so the cupy runs of the generic tests cover it.

Configurations: 3×3 / 1×1 / 5×3 convolutions with zero and periodic
boundaries inside a symmetric layer; the fused dense ResNet (identity,
constant and hat bases; with and without bias; tanh and sigmoid — smooth
activations, as the Taylor test of a deep block needs), the antisymmetric ResNet, Hamiltonian Verlet (scalar and vector
bias, non-square K, reversible) and leapfrog; pointwise activations; average
pooling; batch and instance normalization.  Sizes are small (≤ 16 steps, ≤ 4 channels, 6×6 images).
"""

from meganet.integrators import AntisymmetricResNet, ResNet, TimeBasis
from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.kernels import numba_available
from meganet.layers import Pointwise, SingleLayer
from meganet.layers.pooling import AvgPool2d
from meganet.layers.symmetric import SymmetricLayer
from meganet.normalization import BatchNorm, InstanceNorm
from meganet.transforms import Dense
from meganet.transforms.conv2d import Conv2d
from tests.cases.activations import _smooth_relu_inputs
from tests.registry import Case, register

ENGINES = ["numpy"] + (["numba"] if numba_available() else [])


for _e in ENGINES:
    # ----- convolution kernels, through the symmetric layer (forward, Kᵀ and both θ-adjoints)
    for _ci, _img, _k, _bd in [(3, (6, 6), 3, "zero"), (2, (5, 6), 3, "periodic"), (4, (4, 5), 1, "zero"),
                               (2, (6, 5), (5, 3), "periodic")]:
        _ks = f"{_k}x{_k}" if isinstance(_k, int) else f"{_k[0]}x{_k[1]}"
        register(Case(
            f"engine-{_e}-symconv-{_ks}-{_bd}-{_ci}ch-{_img[0]}x{_img[1]}",
            (lambda ci=_ci, im=_img, k=_k, bd=_bd, e=_e:
             SymmetricLayer(Conv2d(ci, ci + 1, im, kernel_size=k, boundary=bd, engine=e), activation="tanh")),
            kind="layer", n_examples=2))
    register(Case(f"engine-{_e}-conv2d-3x3-zero-2to3", lambda e=_e: Conv2d(2, 3, (5, 6), engine=e),
                  kind="transform", n_examples=2))

    # ----- fused time steps
    register(Case(f"engine-{_e}-resnet-dense4-tanh-N16", kind="block",
                  make=lambda e=_e: ResNet(SingleLayer(Dense(4, 4)), n_steps=16, final_time=1.0, engine=e)))
    register(Case(f"engine-{_e}-resnet-dense3-sigmoid-N16-constant-nobias", kind="block",
                  make=lambda e=_e: ResNet(SingleLayer(Dense(3, 3), activation="sigmoid", bias=False), n_steps=16,
                                           final_time=1.0, basis="constant", engine=e)))
    register(Case(f"engine-{_e}-resnet-dense3-tanh-N16-hat4", kind="block",
                  make=lambda e=_e: ResNet(SingleLayer(Dense(3, 3), activation="tanh"), n_steps=16,
                                           final_time=1.0, basis=TimeBasis.hat(16, 4), engine=e)))
    register(Case(f"engine-{_e}-antisym-resnet4-N16-gamma", kind="block",
                  make=lambda e=_e: AntisymmetricResNet(4, n_steps=16, final_time=2.0, gamma=0.1, engine=e)))
    register(Case(f"engine-{_e}-verlet-3x2-scalar-N16", kind="block",
                  make=lambda e=_e: HamiltonianVerlet(3, 2, n_steps=16, final_time=2.0, engine=e)))
    register(Case(f"engine-{_e}-verlet-2x3-vector-N16-constant", kind="block",
                  make=lambda e=_e: HamiltonianVerlet(2, 3, n_steps=16, final_time=2.0, bias="vector",
                                                      basis="constant", engine=e)))
    register(Case(f"engine-{_e}-verlet-3x3-none-N16-reversible", kind="block",
                  make=lambda e=_e: HamiltonianVerlet(3, 3, n_steps=16, final_time=2.0, bias="none", reversible=True,
                                                      engine=e)))
    register(Case(f"engine-{_e}-leapfrog-3-vector-N16", kind="block",
                  make=lambda e=_e: Leapfrog(3, n_steps=16, final_time=1.0, engine=e)))
    register(Case(f"engine-{_e}-leapfrog-4-scalar-N16-hat4", kind="block",
                  make=lambda e=_e: Leapfrog(4, n_steps=16, final_time=1.0, bias="scalar",
                                             basis=TimeBasis.hat(16, 4), engine=e)))

    # ----- pointwise activations and pooling
    for _act in ("tanh", "sigmoid", "smooth_relu"):
        # smooth relu: inputs and step size of tests/cases/activations.py (no Taylor direction crosses ±η)
        register(Case(f"engine-{_e}-pointwise-{_act}-2x3x4", lambda a=_act, e=_e: Pointwise(a, (2, 3, 4), engine=e),
                      kind="activation", make_Y=_smooth_relu_inputs if _act == "smooth_relu" else None,
                      rel_step=0.03 if _act == "smooth_relu" else 0.5))
    register(Case(f"engine-{_e}-avgpool-3x4x6-f2", lambda e=_e: AvgPool2d((3, 4, 6), factor=2, engine=e),
                  kind="layer"))

    # ----- normalization statistics (batch / instance; image and vector features)
    for _cls, _shape, _aff in [(BatchNorm, (3, 4, 5), True), (BatchNorm, (5,), False), (InstanceNorm, (3, 4, 5), False),
                               (InstanceNorm, (6,), True)]:
        _sh = "x".join(map(str, _shape))
        register(Case(f"engine-{_e}-{_cls.__name__.lower()}-{_sh}{'-affine' if _aff else ''}",
                      lambda c=_cls, sh=_shape, a=_aff, e=_e: c(sh, affine=a, engine=e), kind="layer", n_examples=4))
