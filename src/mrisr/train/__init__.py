"""Training: one engine (`engine`), one task per kind (`supervised`, `gan`, `udean`), checkpoint/resume,
deterministic batches, logging, model card. Importing this package registers every kind."""

from mrisr.train import gan, supervised, udean  # noqa: F401  (importing registers each training kind)
from mrisr.train.engine import KINDS, train_model

train = train_model

__all__ = ["KINDS", "train", "train_model"]
