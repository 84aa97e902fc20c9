"""Registry: 2-D convolutions (direct with zero/periodic boundary, and FFT).

Small images (5×6, 6×6) and few channels keep the generic tests fast; the
configurations cover 3×3, 1×1 and non-square 5×3 / 3×5 stencils, channel counts
1→1, 2→3, 3→2, 4→4, odd and even image widths (the real FFT treats them
differently) and a stencil as tall as the image.  The maps are linear in θ and
in Y, so the default Taylor settings apply (E1 stays at the round-off floor).
"""

from meganet.layers.single import SingleLayer
from meganet.integrators.resnet import ResNet
from meganet.transforms.antisymmetric_conv2d import AntisymmetricConv2d
from meganet.transforms.conv2d import Conv2d
from meganet.transforms.conv2d_fft import Conv2dFFT
from tests.registry import Case, register

_DIRECT = [
    # (C_in, C_out, image, kernel, boundary, n_examples)
    (2, 3, (5, 6), 3, "zero", 2),
    (3, 2, (6, 6), 3, "periodic", 3),
    (4, 4, (5, 6), 1, "zero", 2),
    (1, 1, (6, 6), (5, 3), "zero", 3),
    (2, 3, (5, 6), (5, 3), "periodic", 2),
    (3, 2, (5, 5), (3, 5), "zero", 2),
]

_FFT = [
    (2, 3, (5, 6), 3, 2),
    (3, 2, (6, 5), (5, 3), 3),
    (4, 4, (6, 6), 1, 2),
    (1, 1, (5, 6), (5, 3), 3),
]


def _ks(k):
    return f"{k}x{k}" if isinstance(k, int) else f"{k[0]}x{k[1]}"


for _cin, _cout, _img, _k, _bd, _n in _DIRECT:
    register(Case(
        f"conv2d-{_ks(_k)}-{_bd}-{_cin}to{_cout}-{_img[0]}x{_img[1]}",
        (lambda ci=_cin, co=_cout, im=_img, k=_k, bd=_bd: Conv2d(ci, co, im, kernel_size=k, boundary=bd)),
        kind="transform",
        n_examples=_n,
    ))

for _cin, _cout, _img, _k, _n in _FFT:
    register(Case(
        f"conv2dfft-{_ks(_k)}-{_cin}to{_cout}-{_img[0]}x{_img[1]}",
        (lambda ci=_cin, co=_cout, im=_img, k=_k: Conv2dFFT(ci, co, im, kernel_size=k)),
        kind="transform",
        n_examples=_n,
    ))

# antisymmetric convolution ½(K − Kᵀ − γI) (Haber & Ruthotto 2017 eq. 4.12 with a convolution, §6.4)
_ANTISYM = [
    # (C, image, kernel, gamma, scale, boundary, n_examples)
    (2, (5, 6), 3, 0.0, 0.5, "zero", 2),
    (3, (6, 6), 3, 0.2, 1.0, "periodic", 3),
    (1, (5, 5), (5, 3), 0.1, 0.5, "zero", 2),
]
for _c, _img, _k, _g, _s, _bd, _n in _ANTISYM:
    register(Case(
        f"antisymconv2d-{_ks(_k)}-{_bd}-{_c}-{_img[0]}x{_img[1]}-g{_g}-s{_s}",
        (lambda c=_c, im=_img, k=_k, g=_g, s=_s, bd=_bd: AntisymmetricConv2d(c, im, kernel_size=k, gamma=g, scale=s,
                                                                                boundary=bd)),
        kind="transform",
        n_examples=_n,
    ))
register(Case("resnet-antisymconv2d-2x4x4-N8",
              lambda: ResNet(SingleLayer(AntisymmetricConv2d(2, (4, 4)), activation="tanh"), n_steps=8,
                             final_time=2.0),
              kind="block", n_examples=2))
