"""Shared fixtures: backends (numpy always, cupy when a GPU is present) and dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.backend import cupy_available

HAVE_GPU = cupy_available()

#: Backends as pytest params; the cupy ones skip cleanly without a GPU.
XP_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu,
                                            pytest.mark.skipif(not HAVE_GPU, reason="cupy with a CUDA device not available")]),
]
DTYPE_PARAMS = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]


def get_xp(name):
    if name == "numpy":
        return np
    import cupy

    return cupy


@pytest.fixture(params=XP_PARAMS)
def xp(request):
    return get_xp(request.param)


@pytest.fixture(params=DTYPE_PARAMS)
def dtype(request):
    return request.param
