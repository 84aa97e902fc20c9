"""Installation of meganet.

The compute kernels live in the top-level folder ``kernels/`` and are shipped
as the subpackage ``meganet.kernels`` through ``package_dir``; ``tests``,
``examples`` and ``benchmarks`` are not installed.
"""

from setuptools import find_packages, setup

packages = ["meganet"] + ["meganet." + p for p in find_packages("meganet")]
packages += ["meganet.kernels"] + ["meganet.kernels." + p for p in find_packages("kernels")]

setup(
    name="meganet",
    version="0.1.0",
    description="Deep neural networks as discretized ODEs/PDEs with hand-coded derivatives and second-order training",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir={"meganet": "meganet", "meganet.kernels": "kernels"},
    install_requires=["numpy>=1.24", "scipy>=1.10"],
    extras_require={
        "numba": ["numba>=0.59"],
        # the lent GPU machines run CUDA 13 (issue 13); CuPy ships one wheel per CUDA major version
        "gpu": ["cupy-cuda13x>=14"],
        "plot": ["matplotlib>=3.7"],
        # meganet.distributed: the objectives data-parallel on a Dask cluster (issue 14)
        "distributed": ["dask[distributed]>=2024.1"],
        # numba is in the test extra so that CI runs the numba engine of the kernels; dask so that CI runs the
        # tests of meganet.distributed (they skip where dask is absent)
        "test": ["pytest>=7.4", "pytest-xdist>=3.3", "matplotlib>=3.7", "numba>=0.59", "dask[distributed]>=2024.1"],
        # the B5 study's image problem (sklearn's 8x8 digits); not needed by meganet or its tests
        "bench": ["scikit-learn>=1.3", "matplotlib>=3.7"],
    },
    entry_points={"console_scripts": ["meganet=meganet.cli:main"]},
    license="MIT",
)
