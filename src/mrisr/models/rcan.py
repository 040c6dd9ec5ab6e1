"""RCAN building blocks (Zhang et al., ECCV 2018) in 2D or 3D: one implementation, `dims` picks.

* `ChannelAttention`: global average → bottleneck 1×1 convs → sigmoid gate per channel.
* `RCAB`: residual channel-attention block, x + CA(conv(ReLU(conv(x)))).
* `ResidualGroup`: n_blocks RCABs and a conv, wrapped in a skip connection.

Used by MINet (2D, `models.minet`) and the 3D RCAN / UDEAN networks (`models.rcan3d`,
`models.udean`). Parameter names (`body.0.weight`, `body.3.gate.1.weight`, …) and creation
order are those of the former per-dimension copies, so existing model files load unchanged
and a seed initialises the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

from mrisr.models.common import check_dims, conv_nd


class ChannelAttention(nn.Module):
    def __init__(self, n_feats: int, reduction: int, dims: int = 2) -> None:
        super().__init__()
        hidden = max(1, n_feats // reduction)  # small n_feats must not reduce to 0 channels
        pool = nn.AdaptiveAvgPool2d if check_dims(dims) == 2 else nn.AdaptiveAvgPool3d
        self.gate = nn.Sequential(
            pool(1),
            conv_nd(dims, n_feats, hidden, 1),
            nn.ReLU(inplace=True),
            conv_nd(dims, hidden, n_feats, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class RCAB(nn.Module):
    def __init__(self, n_feats: int, reduction: int, dims: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_nd(dims, n_feats, n_feats, kernel_size),
            nn.ReLU(inplace=True),
            conv_nd(dims, n_feats, n_feats, kernel_size),
            ChannelAttention(n_feats, reduction, dims),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    def __init__(self, n_feats: int, n_blocks: int, reduction: int, dims: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [RCAB(n_feats, reduction, dims, kernel_size) for _ in range(n_blocks)]
        self.body = nn.Sequential(*blocks, conv_nd(dims, n_feats, n_feats, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
