"""SRGAN's perceptual loss: MSE between VGG19 features (`mrisr.models.vgg19`) of SR and HR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrisr.models.vgg19 import IMAGENET_MEAN, IMAGENET_STD


class PerceptualLoss(nn.Module):
    """MSE between VGG19 features of SR and HR one-channel images in [0, 1]: the grey image is
    repeated to RGB and standardised with ImageNet statistics (the input the weights were trained
    on). The network stays frozen in eval mode; gradients flow to the SR image only."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.features.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return self.features((rgb - self.mean) / self.std)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.embed(hr)
        return F.mse_loss(self.embed(sr), target)
