"""Training: loop, checkpoint/resume, deterministic batches, logging, model card."""

from mrisr.train.loop import train

__all__ = ["train"]
