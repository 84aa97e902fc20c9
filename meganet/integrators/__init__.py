"""Time-stepping blocks: networks as discretized ODEs (Meganet.m ``integrators/``).

* :class:`TimeBasis` — weights parameterized in time, ``θ(t_j) = Σ_k B_jk θ_k``.
* :class:`ResNet` — forward Euler, ``Y_{j+1} = Y_j + h F(θ(t_j), Y_j)``.
* :class:`RK4ResNet` — classical Runge–Kutta 4.
* :class:`AntisymmetricResNet` — forward Euler with ``σ(½(K − Kᵀ − γI)Y + b)``.
* :class:`HamiltonianVerlet` — symplectic Verlet for the Hamiltonian network (eq. 4.15/4.17);
  :class:`HamiltonianVerletCNN` the same with convolutions (the §6.4 MNIST network).
* :class:`Leapfrog` — second-order network ``Y_{j+1} = 2Y_j − Y_{j−1} + h²σ(K_jY_j + b_j)`` (eq. 4.16).

* :class:`ParabolicCNN`, :class:`HamiltonianCNN`, :class:`SecondOrderCNN` — the CNN blocks of
  Ruthotto & Haber (JMIV 2019) with the symmetric conv layer ``−Kᵀσ(N(KY + b))``.

Verlet, leapfrog, Hamiltonian-CNN and second-order-CNN blocks offer ``reversible=True``: no intermediate states are
stored; ``JTmv`` recomputes them backwards.
"""

from .time_basis import TimeBasis, as_time_basis
from .block import TimeSteppingBlock
from .resnet import ResNet
from .rk4 import RK4ResNet
from .antisymmetric_resnet import AntisymmetricResNet
from .verlet import HamiltonianVerlet
from .verlet_cnn import HamiltonianVerletCNN
from .leapfrog import Leapfrog
from .parabolic_cnn import ParabolicCNN, symmetric_conv_layer
from .hamiltonian_cnn import HamiltonianCNN
from .second_order_cnn import SecondOrderCNN

__all__ = ["TimeBasis", "as_time_basis", "TimeSteppingBlock", "ResNet", "RK4ResNet", "AntisymmetricResNet",
           "HamiltonianVerlet", "HamiltonianVerletCNN", "Leapfrog", "ParabolicCNN", "symmetric_conv_layer", "HamiltonianCNN", "SecondOrderCNN"]
