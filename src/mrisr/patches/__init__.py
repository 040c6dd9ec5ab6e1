"""Deterministic patch sampling into HDF5 patch stores, and torch Datasets over them."""
