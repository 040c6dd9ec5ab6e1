"""Building blocks shared by the SR architectures.

* `CubicUpsample`: LR back onto the HR grid with Keys cubic interpolation, using the
  same LR↔HR sample placement (`mrisr.grid`) as the degradation. Models add their
  learned output to it (global residual), so a model that predicts zero is exactly
  the cubic baseline and a half-pixel slip cannot creep in.
* `pixel_shuffle_nd` / `Upsampler`: sub-pixel convolution upsampling in 2D and 3D
  (torch only ships the 2D pixel shuffle).
* `SRModel`: the base class naming the batch keys a forward consumes and the loss.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mrisr.grid import CONVENTIONS, axis_grid, integer_scale, upsample_matrix


def check_integer_scale(scale: float) -> int:
    """The scale as an int ≥ 2; pixel-shuffle models cannot upsample by other factors."""
    s = integer_scale(scale)
    if s is None or s < 2:
        raise ValueError(f"scale must be an integer >= 2 for this model, got {scale}")
    return s


def check_dims(dims: int) -> int:
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    return int(dims)


def conv_nd(dims: int, c_in: int, c_out: int, kernel_size: int = 3) -> nn.Module:
    """'Same'-padded convolution in 2D or 3D."""
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    return conv(c_in, c_out, kernel_size, padding=kernel_size // 2)


class SRModel(nn.Module):
    """Base class: `inputs` names the batch keys forward() consumes, `loss` scores an output.

    The training loop calls `model(**{k: batch[k] for k in model.inputs})`, so a model
    needing e.g. a reference contrast declares `inputs = ("lr", "ref")`.
    """

    inputs: tuple[str, ...] = ("lr",)

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.l1_loss(output, batch["hr"])

    def loss_text(self) -> str:
        """What `loss` computes, in words, for the model card (a model with its own loss says so)."""
        return "L1 loss"


class CubicUpsample(nn.Module):
    """Separable Keys-cubic upsampling (B, C, *lr) → (B, C, *hr) on every spatial axis: the one
    cubic upsampler of every model, trainer and baseline.

    With an integer `scale` the HR size is scale × the LR size; `forward(x, out_shape)` takes
    any HR sizes (non-integer scales: Meta-SRGAN; pass scale=None there). The per-axis
    matrices come from `mrisr.grid.axis_grid` + `upsample_matrix`, the same numpy helpers the
    evaluation baseline uses, so both agree to float32 rounding. They depend on the sizes, so
    they are cached per (n_lr, n_hr, device) and are not module buffers (a state_dict must not
    depend on which sizes happened to be seen).
    """

    def __init__(self, scale: int | None, dims: int, convention: str) -> None:
        super().__init__()
        self.scale = None if scale is None else check_integer_scale(scale)
        self.dims = check_dims(dims)
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown grid convention {convention!r}; expected one of {CONVENTIONS}")
        self.convention = convention
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def matrix(self, n_lr: int, n_hr: int, device: torch.device) -> torch.Tensor:
        key = (int(n_lr), int(n_hr), str(device))
        m = self._cache.get(key)
        if m is None:
            w = upsample_matrix(axis_grid(self.convention, n_hr, n_lr), n_lr, n_hr)
            m = self._cache[key] = torch.from_numpy(w).to(device=device, dtype=torch.float32)
        return m

    def forward(self, x: torch.Tensor, out_shape: Sequence[int] | None = None) -> torch.Tensor:
        if x.ndim != self.dims + 2:
            raise ValueError(f"expected a (B, C, {self.dims} spatial) tensor, got shape {tuple(x.shape)}")
        if out_shape is None:
            if self.scale is None:
                raise ValueError("CubicUpsample without a scale needs out_shape")
            out_shape = [n * self.scale for n in x.shape[2:]]
        # float32 even under bf16 autocast: this path carries most of the signal.
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = x.float()
            for axis, n_hr in zip(range(2, x.ndim), out_shape):
                m = self.matrix(out.shape[axis], n_hr, out.device)
                out = torch.movedim(torch.movedim(out, axis, -1) @ m.T, -1, axis)
        return out

    def extra_repr(self) -> str:
        return f"scale={self.scale}, dims={self.dims}, convention={self.convention!r}"


def pixel_shuffle_nd(x: torch.Tensor, r: int) -> torch.Tensor:
    """(B, C·r^d, *n) → (B, C, *(n·r)) for d = 2 or 3 spatial dims.

    Channel c·r^d + (i·r + j) [2D] or c·r^3 + i·r² + j·r + k [3D] goes to output
    position (h·r+i, w·r+j[, ...]), the layout of torch.nn.functional.pixel_shuffle.
    """
    d = x.ndim - 2
    if d == 2:
        return F.pixel_shuffle(x, r)
    if d != 3:
        raise ValueError(f"pixel shuffle needs 2 or 3 spatial dims, got shape {tuple(x.shape)}")
    b, c_in, n_d, n_h, n_w = x.shape
    if c_in % r**3:
        raise ValueError(f"channels {c_in} not divisible by r^3 = {r**3}")
    c = c_in // r**3
    x = x.reshape(b, c, r, r, r, n_d, n_h, n_w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c, n_d * r, n_h * r, n_w * r)


class PixelShuffle(nn.Module):
    def __init__(self, r: int) -> None:
        super().__init__()
        self.r = r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_nd(x, self.r)

    def extra_repr(self) -> str:
        return f"r={self.r}"


def upsample_factors(scale: int) -> list[int]:
    """Stages of sub-pixel upsampling: ×2 stages for powers of two (×4 = 2·2, as EDSR),
    one stage of the whole factor otherwise (×3)."""
    if scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    return [scale]


class Upsampler(nn.Sequential):
    """conv(n_feats → r^d·n_feats) + pixel shuffle per stage (EDSR / BasicSR `Upsample`)."""

    def __init__(self, scale: int, n_feats: int, dims: int) -> None:
        layers: list[nn.Module] = []
        for r in upsample_factors(scale):
            layers += [conv_nd(dims, n_feats, n_feats * r**dims), PixelShuffle(r)]
        super().__init__(*layers)
