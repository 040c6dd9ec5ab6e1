"""`rcan3d` (registered): RCAN (Zhang et al., ECCV 2018) in 3D for the supervised ts_rcan benchmarks.

head conv → residual groups of residual channel-attention blocks (`models.rcan`, dims=3) →
conv + long skip → sub-pixel upsampler → tail conv, plus the global `CubicUpsample(lr)`
residual on the degradation's grid convention ("corner" for k-space truncation), as every
mrisr model. `encode`/`decode` split it at the LR-grid features: UDEAN's inference network
(`models.udean`) is this network.
"""

from __future__ import annotations

import torch
from torch import nn

from mrisr.models.common import CubicUpsample, SRModel, Upsampler, check_integer_scale, conv_nd
from mrisr.models.rcan import ResidualGroup
from mrisr.models.registry import register


def check_3d(dims: int, name: str) -> int:
    if dims != 3:
        raise ValueError(f"{name} is a 3D (volumetric) model; dims must be 3, got {dims}")
    return 3


def check_positive(name: str, **values: int) -> None:
    for key, v in values.items():
        if int(v) < 1:
            raise ValueError(f"{name}: {key} must be >= 1, got {v}")


@register("rcan3d")
class RCAN3d(SRModel):
    """3D RCAN with a global cubic residual. Defaults are CPU-sized (16 feats, 2 groups × 2
    blocks, reduction 4); the UDEAN paper's SR network uses 5 groups × 5 blocks, RCAN 10 × 20."""

    inputs = ("lr",)

    def __init__(
        self,
        *,
        scale: int,
        dims: int,
        grid_convention: str,
        n_feats: int = 16,
        n_groups: int = 2,
        n_blocks: int = 2,
        reduction: int = 4,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.scale = check_integer_scale(scale)
        check_3d(dims, type(self).__name__)
        check_positive(type(self).__name__, n_feats=n_feats, n_groups=n_groups, n_blocks=n_blocks,
                       reduction=reduction, kernel_size=kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"{type(self).__name__}: kernel_size must be odd ('same' padding), got {kernel_size}")
        self.n_feats = int(n_feats)
        self.head = conv_nd(3, 1, n_feats, kernel_size)
        self.groups = nn.Sequential(*[ResidualGroup(n_feats, n_blocks, reduction, 3, kernel_size)
                                      for _ in range(n_groups)])
        self.body_tail = conv_nd(3, n_feats, n_feats, kernel_size)
        self.upsample = Upsampler(self.scale, n_feats, 3)
        self.tail = conv_nd(3, n_feats, 1, kernel_size)
        self.cubic = CubicUpsample(self.scale, 3, grid_convention)

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        """LR image (B, 1, *n) → features (B, n_feats, *n) on the LR grid."""
        feats = self.head(lr)
        return feats + self.body_tail(self.groups(feats))

    def decode(self, feats: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """Features on the LR grid → HR image; `lr` supplies the cubic global residual."""
        return self.tail(self.upsample(feats)) + self.cubic(lr)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 5 or lr.shape[1] != 1:
            raise ValueError(f"{type(self).__name__} expects lr of shape (B, 1, x, y, z), got {tuple(lr.shape)}")
        return self.decode(self.encode(lr), lr)
