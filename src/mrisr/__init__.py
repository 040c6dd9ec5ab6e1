"""mrisr: MRI super-resolution pipeline library (no module here knows Snakemake)."""

__version__ = "0.1.0"
