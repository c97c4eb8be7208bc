"""Embeddings: linear (PCA) and neighbour embeddings, as pure jitted functions."""
