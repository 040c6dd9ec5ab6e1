"""Deterministic patch sampling into HDF5 patch stores; reading them (torch Datasets), and which
patches and flips each training step draws (`sampler`, `augment`)."""
