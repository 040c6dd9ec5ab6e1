"""SR architectures: a registry by name, model files, one module per architecture.

Importing this package registers every architecture (the imports below).
"""

from mrisr.models.registry import build_model, count_parameters, register, registered
from mrisr.models.io import load_model, save_model
from mrisr.models import edsr, meta_srgan, minet, phase_vsr, rcan3d, srgan, udean  # noqa: F401  (importing registers each architecture)

__all__ = ["build_model", "count_parameters", "load_model", "register", "registered", "save_model"]
