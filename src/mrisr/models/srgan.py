"""SRGAN (Ledig et al., CVPR 2017), 2D, one channel: the generator `srgan` (fixed integer scale),
its trunk and normalisation (shared with `meta_srgan`), and the discriminator.

Generator trunk: conv9 + PReLU head → n_blocks × (conv-BN-PReLU-conv-BN + skip) → conv-BN +
global skip from the head. `srgan`: sub-pixel upsampling (conv → pixel shuffle ×2 → PReLU per
stage) → conv9 to 1 channel, zero-initialised, plus the convention-aware cubic upsample of the
LR input, so an untrained generator is exactly the bicubic baseline (see `models.meta_srgan`).

Intensity normalisation (paper: training-set mean/std) lives in the buffers `norm_mean`,
`norm_std` (0 and 1 until `set_normalization`; the adversarial trainer sets them from the train
store): the trunk sees (lr − mean)/std and its output is scaled back by std.

The discriminator returns logits; its sigmoid is folded into BCE-with-logits in training.
Not registered: it is no SR model and is saved only in training checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mrisr.models.common import CubicUpsample, PixelShuffle, SRModel, check_integer_scale, upsample_factors
from mrisr.models.registry import register


def check_2d(dims: int) -> None:
    if int(dims) != 2:
        raise ValueError(f"SRGAN / Meta-SRGAN are 2D models (slice by slice), got dims={dims}")


def zero_init(layer: nn.Module) -> nn.Module:
    """Zero the last layer before the cubic residual: a fresh generator IS the cubic
    baseline (in train and eval mode alike, whatever BN's statistics), and training moves
    it away only as far as the losses ask. Gradients still reach this layer at once (its
    input is non-zero) and the rest of the network from the second step on."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


# ------------------------------------------------------------------------- SRGAN trunk
class SRResBlock(nn.Module):
    """conv-BN-PReLU-conv-BN plus identity (SRGAN's residual block)."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.BatchNorm2d(n_feats), nn.PReLU(),
            nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.BatchNorm2d(n_feats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRGANTrunk(nn.Module):
    """LR-resolution feature extractor: head conv + PReLU, residual blocks, conv-BN, global skip."""

    def __init__(self, n_feats: int, n_blocks: int, head_kernel: int) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(1, n_feats, head_kernel, padding=head_kernel // 2), nn.PReLU())
        self.blocks = nn.Sequential(*[SRResBlock(n_feats) for _ in range(n_blocks)])
        self.blocks_tail = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.BatchNorm2d(n_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.head(x)
        return feats + self.blocks_tail(self.blocks(feats))


class NormalizedGenerator(SRModel):
    """Holds the training-set mean/std buffers shared by both generators."""

    inputs = ("lr",)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("norm_mean", torch.zeros(()))
        self.register_buffer("norm_std", torch.ones(()))

    @torch.no_grad()
    def set_normalization(self, mean: float, std: float) -> None:
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ValueError(f"normalisation needs finite mean and std > 0, got {mean}, {std}")
        self.norm_mean.fill_(float(mean))
        self.norm_std.fill_(float(std))

    def normalize(self, lr: torch.Tensor) -> torch.Tensor:
        return (lr - self.norm_mean) / self.norm_std


@register("srgan")
class SRGAN(NormalizedGenerator):
    """SRGAN generator (SRResNet layout) at a fixed integer scale, plus cubic residual."""

    def __init__(self, *, scale: int, dims: int, grid_convention: str, n_feats: int = 64, n_blocks: int = 16,
                 head_kernel: int = 9) -> None:
        super().__init__()
        check_2d(dims)
        self.scale = check_integer_scale(scale)
        self.trunk = SRGANTrunk(n_feats, n_blocks, head_kernel)
        stages: list[nn.Module] = []
        for r in upsample_factors(self.scale):
            stages += [nn.Conv2d(n_feats, n_feats * r * r, 3, padding=1), PixelShuffle(r), nn.PReLU()]
        self.upsample = nn.Sequential(*stages)
        self.tail = zero_init(nn.Conv2d(n_feats, 1, head_kernel, padding=head_kernel // 2))
        self.cubic = CubicUpsample(self.scale, 2, grid_convention)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        feats = self.trunk(self.normalize(lr))
        return self.tail(self.upsample(feats)) * self.norm_std + self.cubic(lr)


# ------------------------------------------------------------------------- discriminator
class Discriminator(nn.Module):
    """SRGAN discriminator: conv-LReLU, then per stage conv-BN-LReLU at stride 1 and 2 with
    channels n_feats·2^s, adaptive average pooling, 1×1 convs fc → 1: one logit per image
    (any input size ≥ 2^n_stages)."""

    def __init__(self, n_feats: int = 64, n_stages: int = 4, fc: int = 1024) -> None:
        super().__init__()
        if n_stages < 1:
            raise ValueError(f"n_stages must be >= 1, got {n_stages}")

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]

        layers: list[nn.Module] = [nn.Conv2d(1, n_feats, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                                   *block(n_feats, n_feats, 2)]
        ch = n_feats
        for s in range(1, n_stages):
            layers += block(ch, n_feats * 2**s, 1) + block(n_feats * 2**s, n_feats * 2**s, 2)
            ch = n_feats * 2**s
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(ch, fc, 1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(fc, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (B,)."""
        return self.head(self.features(x)).flatten()

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(x))
