"""jaxcluster: clustering and representation learning in JAX."""

import setuptools

setuptools.setup(
    name="jaxcluster",
    version="0.1.0",
    description="Jitted clustering, embeddings and deep clustering in JAX.",
    packages=setuptools.find_packages(include=["research", "research.*", "experiments", "experiments.*"]),
    package_data={"experiments": ["configs/*.flags"]},
    python_requires=">=3.11",
    # Lower bounds: the oldest versions the tests were run with (docs/reproducing.md says which tests); jax 0.7.1
    # is the first with jax.set_mesh. absl-py and matplotlib: untested below the versions of constraints.txt.
    install_requires=[
        "jax>=0.7.1",
        "flax>=0.11.1",
        "optax>=0.2.5",
        "numpy>=1.26.4",
        "scipy>=1.12",
        "scikit-learn>=1.4.2",
        "orbax-checkpoint>=0.11.40",
        "absl-py",
        "matplotlib",
    ],
    extras_require={
        # tensorboardX (and packaging, which tools/make_constraints.py reads setup.py with) for their tests.
        "test": ["pytest", "pytest-xdist", "ruff", "packaging", "tensorboardX>=2.6.5"],
        # --tensorboard: event files beside metrics.jsonl (research/tensorboard.py); pure Python, on protobuf.
        "tensorboard": ["tensorboardX>=2.6.5"],
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
