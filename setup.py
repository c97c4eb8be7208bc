"""jaxcluster: clustering and representation learning in JAX."""

import setuptools

setuptools.setup(
    name="jaxcluster",
    version="0.1.0",
    description="Jitted clustering, embeddings and deep clustering in JAX.",
    packages=setuptools.find_packages(include=["research", "research.*", "experiments", "experiments.*"]),
    package_data={"experiments": ["configs/*.flags"]},
    python_requires=">=3.11",
    install_requires=[
        "jax",
        "flax",
        "optax",
        "numpy",
        "scipy",
        "scikit-learn",
        "orbax-checkpoint",
        "absl-py",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "ruff"],
        "bench": [
            "faiss-cpu",
            "umap-learn",
            "openTSNE",
            "minisom",
            # The CPU build is on disk here; a bare "torch" pulls gigabytes of CUDA.
            "torch==2.13.0",
        ],
        # bench/deep_vs_clustpy.py's peer, in a venv of its own: clustpy needs torchvision, and the torchvision
        # wheels here (0.29.1) pair only with the CUDA build of torch 2.14.1 (several GB; it runs on CPU), which
        # would clash with the light CPU torch 2.13.0 of "bench".
        "bench-clustpy": ["clustpy", "torch==2.14.1", "torchvision==0.29.1"],
    },
)
