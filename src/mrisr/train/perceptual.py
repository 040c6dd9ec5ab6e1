"""The SRGAN perceptual term: distance between VGG19 features of SR and HR, from a local file.

Features are VGG19's `features` stack without its last layer (the final max-pool), i.e.
up to relu5_4 ("VGG54" in SRGAN), compared by mean squared error; the network and its
loading from a local torchvision or features-only state_dict are in `mrisr.models.vgg19`.

No file configured → no perceptual term; the trainer says so in its log and model card.
There is no fallback network: random or other features would be a silent substitute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrisr.models.vgg19 import load_vgg19_features

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualLoss(nn.Module):
    """MSE between VGG19 features of SR and HR one-channel images in [0, 1].

    The grey image is repeated to RGB and standardised with ImageNet statistics, the
    input the weights were trained on. The network stays in eval mode and frozen;
    gradients flow to the SR image only.
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.features.eval()  # never leaves eval mode (no dropout/BN here, but be explicit)
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return self.features((rgb - self.mean) / self.std)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.embed(hr)
        return F.mse_loss(self.embed(sr), target)


def perceptual_from_config(weights: str | None) -> tuple[PerceptualLoss | None, str]:
    """(loss or None, one-line status for the log and card)."""
    if not weights:
        return None, ("perceptual term OFF: no VGG19 weights file configured (train.vgg_weights); "
                      "training with L1 + adversarial only")
    return PerceptualLoss(load_vgg19_features(weights)), f"perceptual term ON: VGG19 features[:36] from {weights}"
