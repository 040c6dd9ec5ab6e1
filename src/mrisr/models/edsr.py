"""EDSR (Lim et al., CVPR-W 2017, "Enhanced Deep Residual Networks"), BasicSR layout,
for one-channel 2D or 3D images, plus a global cubic residual.

head conv → n_blocks × ResBlock(conv-ReLU-conv, ×res_scale, skip) → conv + long skip
→ sub-pixel upsampler → tail conv to 1 channel; output = that + CubicUpsample(lr).
The paper has no global residual (it subtracts the RGB mean instead); adding the
convention-aware cubic upsample makes the network learn only the detail the baseline
misses and keeps its output on the degradation's HR grid.
"""

from __future__ import annotations

import torch
from torch import nn

from mrisr.models.common import CubicUpsample, SRModel, Upsampler, check_dims, check_integer_scale, conv_nd
from mrisr.models.registry import register


class ResBlock(nn.Module):
    """conv-ReLU-conv scaled by res_scale (0.1 stabilises the wide EDSR) plus identity."""

    def __init__(self, n_feats: int, dims: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_nd(dims, n_feats, n_feats), nn.ReLU(inplace=True), conv_nd(dims, n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


@register("edsr")
class EDSR(SRModel):
    """Defaults are EDSR-baseline (64 feats, 16 blocks, res_scale 1); EDSR proper is 256/32/0.1."""

    inputs = ("lr",)

    def __init__(
        self,
        *,
        scale: int,
        dims: int,
        grid_convention: str,
        n_feats: int = 64,
        n_blocks: int = 16,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        scale = check_integer_scale(scale)
        dims = check_dims(dims)
        self.head = conv_nd(dims, 1, n_feats)
        self.body = nn.Sequential(*[ResBlock(n_feats, dims, res_scale) for _ in range(n_blocks)])
        self.body_tail = conv_nd(dims, n_feats, n_feats)
        self.upsample = Upsampler(scale, n_feats, dims)
        self.tail = conv_nd(dims, n_feats, 1)
        self.cubic = CubicUpsample(scale, dims, grid_convention)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        feats = self.head(lr)
        feats = feats + self.body_tail(self.body(feats))
        return self.tail(self.upsample(feats)) + self.cubic(lr)
