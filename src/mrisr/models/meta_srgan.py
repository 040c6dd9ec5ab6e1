"""Meta-SRGAN (one generator for any scale), 2D, one channel.

Generator trunk, normalisation and discriminator are SRGAN's (`models.srgan`, Ledig et al.
CVPR 2017; the fixed-scale baseline `srgan` lives there). Then:

* `meta_srgan`: the Meta-Upscale module (Hu et al., CVPR 2019, "Meta-SR"): for every HR
  pixel a weight-prediction net (2 FC layers as Meta-SR's Pos2Weight, or 3) maps its position relative to the LR grid
  and 1/r to the weights of a k×k×C→1 filter, applied to the LR features around it. Any
  scale r ≥ 1 and any output shape, including non-integer r and non-square images.

Departures, both so that the output sits on the degradation's HR grid (`mrisr.grid`):

* Position mapping. Meta-SR uses (i/r − ⌊i/r⌋) on corner-indexed pixels. Here HR pixel i
  sits at LR coordinate x = `axis_grid(convention, n_hr, n_lr).lr_position(i)` — for the
  "center" convention x = (i + ½)/s − ½ with s = n_hr/n_lr — and its filter is applied to
  the k×k LR neighbourhood centred on the NEAREST LR sample j = ⌊x + ½⌋ (clipped to the
  image), with offset x − j (in [−½, ½) inside the image) fed to the predictor. Centring
  on the nearest sample makes a 3×3 support cover the HR point symmetrically (⌊x⌋ would
  leave it at the support's edge); on corner-indexed pixel areas the paper's ⌊i/r⌋ is the
  same choice (the LR pixel containing the HR pixel's start).
* Global residual. Both generators add the convention-aware Keys-cubic upsample of the LR
  input (`common.CubicUpsample` onto any output shape, for non-integer scales), and their last layer (the
  predictor's output layer / the tail conv) starts at zero, so an untrained generator is
  exactly the bicubic baseline.

Intensity normalisation (paper: training-set mean/std) lives in the buffers `norm_mean`,
`norm_std` (0 and 1 until `set_normalization`; the GAN trainer sets them from the train
store): the trunk sees (lr − mean)/std and its output is scaled back by std before the
cubic residual is added, so callers always pass and receive [0, 1] intensities and a
model file carries its normalisation in its state_dict.

`meta_srgan.forward(lr, scale=None, out_shape=None)`: `scale` (the nominal r, the
predictor's 1/r input) defaults to `self.scale`, `out_shape` to round(n·r) per axis; the
grid itself is always n_lr → out_shape. Evaluating at another fixed scale therefore needs
only `model.scale = r` (e.g. `mrisr evaluate --set scale=2`) when HR = r × LR exactly.

The discriminator returns logits; its sigmoid is folded into BCE-with-logits in training
(the same function as sigmoid + BCE, without its float overflow). Not registered: it is
no SR model and is saved only in training checkpoints.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mrisr.grid import CONVENTIONS, axis_grid
from mrisr.models.common import CubicUpsample
from mrisr.models.registry import register
from mrisr.models.srgan import Discriminator, NormalizedGenerator, SRGANTrunk, check_2d, zero_init  # noqa: F401


# ------------------------------------------------------------------------- geometry
def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown grid convention {convention!r}; expected one of {CONVENTIONS}")
    return convention


def output_size(n_lr: int, scale: float) -> int:
    """HR samples for n_lr LR samples at scale r: round(n·r), at least n."""
    return max(int(n_lr), int(np.floor(n_lr * float(scale) + 0.5)))


def meta_positions(n_lr: int, n_hr: int, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """(LR index, offset) of every HR sample along one axis.

    The HR sample's LR coordinate x comes from the grid convention; the index is the
    nearest LR sample ⌊x + ½⌋ clipped to [0, n_lr), the offset x − index (what the
    weight-prediction net sees).
    """
    x = np.asarray(axis_grid(check_convention(convention), n_hr, n_lr).lr_position(np.arange(n_hr)), np.float64)
    idx = np.clip(np.floor(x + 0.5).astype(np.int64), 0, n_lr - 1)
    return idx, x - idx


def weight_input(offset_y: np.ndarray, offset_x: np.ndarray, scale: float) -> np.ndarray:
    """Weight-prediction input, one row per HR pixel (row-major over (i, j)):
    (offset_y[i], offset_x[j], 1/r)."""
    oy, ox = np.meshgrid(np.asarray(offset_y, np.float64), np.asarray(offset_x, np.float64), indexing="ij")
    return np.stack([oy.ravel(), ox.ravel(), np.full(oy.size, 1.0 / float(scale))], axis=1)


# ------------------------------------------------------------------------- Meta-Upscale
class MetaUpscale(nn.Module):
    """Per-HR-pixel filters predicted from position: (B, C, h, w) → (B, out, H, W).

    Predictor: FC(3→hidden)-ReLU-FC(hidden→hidden)-ReLU-FC(hidden→out·C·k·k) (`predictor_layers` 3),
    or Meta-SR's own Pos2Weight FC(3→hidden)-ReLU-FC(hidden→out·C·k·k) (`predictor_layers` 2, the
    size that matches the Meta-SRGAN paper's 0.561M parameters); its output
    for one pixel, viewed as (out, C, k, k), is a conv2d weight (same layout) applied to
    the k×k LR feature neighbourhood (zero padded) of the pixel's nearest LR sample.
    """

    def __init__(self, in_channels: int, out_channels: int = 1, kernel_size: int = 3, hidden: int = 256,
                 convention: str = "center", predictor_layers: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if predictor_layers not in (2, 3):
            raise ValueError(f"predictor_layers must be 2 or 3, got {predictor_layers}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.convention = check_convention(convention)
        # Layers built in forward order: each nn.Linear draws its init from torch's RNG when built.
        layers: list[nn.Module] = [nn.Linear(3, hidden), nn.ReLU(inplace=True)]
        if predictor_layers == 3:
            layers += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(hidden, out_channels * in_channels * kernel_size * kernel_size))
        self.predictor = nn.Sequential(*layers)
        zero_init(self.predictor[-1])

    def forward(self, feats: torch.Tensor, out_shape: Sequence[int], scale: float) -> torch.Tensor:
        b, c, h, w = feats.shape
        n_h, n_w = (int(n) for n in out_shape)
        iy, oy = meta_positions(h, n_h, self.convention)
        ix, ox = meta_positions(w, n_w, self.convention)
        pos = torch.from_numpy(weight_input(oy, ox, scale)).to(device=feats.device, dtype=feats.dtype)
        k2c = c * self.kernel_size**2
        # (HR pixel, out, C·k·k) → (HR pixel, C·k·k, out): one small matrix per pixel for bmm.
        weights = self.predictor(pos).view(n_h * n_w, self.out_channels, k2c).transpose(1, 2)
        # unfold's channel order (c·k² + ky·k + kx) is conv2d's weight layout flattened.
        cols = F.unfold(feats, self.kernel_size, padding=self.kernel_size // 2)  # (B, C·k·k, h·w)
        source = torch.from_numpy((iy[:, None] * w + ix[None, :]).ravel()).to(feats.device)
        # Gather each HR pixel's LR neighbourhood pixel-major, then one batched product over
        # pixels: ~4x faster on CPU (forward + backward) than einsum over a (B, C·k·k, H, W) gather.
        gathered = cols.permute(2, 0, 1)[source]  # (H·W, B, C·k·k)
        out = torch.bmm(gathered, weights)  # (H·W, B, out)
        return out.view(n_h, n_w, b, self.out_channels).permute(2, 3, 0, 1)

    def extra_repr(self) -> str:
        return f"{self.in_channels}→{self.out_channels}, k={self.kernel_size}, convention={self.convention!r}"


@register("meta_srgan")
class MetaSRGAN(NormalizedGenerator):
    """SRGAN trunk + Meta-Upscale + cubic residual; `scale` is only the default r.

    Defaults: 64 feats, 16 blocks, 9×9 head, 3×3 meta filters, 256 hidden, 3-layer predictor. The
    paper's Table 1 size (0.561M) is 5 blocks with Meta-SR's 2-layer predictor (config/brats_meta_srgan.yaml).
    """

    arbitrary_scale = True

    def __init__(self, *, scale: float, dims: int, grid_convention: str, n_feats: int = 64, n_blocks: int = 16,
                 head_kernel: int = 9, kernel_size: int = 3, hidden: int = 256, predictor_layers: int = 3) -> None:
        super().__init__()
        check_2d(dims)
        if float(scale) < 1.0:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale = float(scale)
        self.trunk = SRGANTrunk(n_feats, n_blocks, head_kernel)
        self.upscale = MetaUpscale(n_feats, 1, kernel_size, hidden, grid_convention, predictor_layers)
        self.cubic = CubicUpsample(None, 2, grid_convention)

    def forward(self, lr: torch.Tensor, scale: float | None = None,
                out_shape: Sequence[int] | None = None) -> torch.Tensor:
        if lr.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(lr.shape)}")
        r = float(self.scale if scale is None else scale)
        if r < 1.0:
            raise ValueError(f"scale must be >= 1, got {r}")
        if out_shape is None:
            out_shape = tuple(output_size(n, r) for n in lr.shape[2:])
        feats = self.trunk(self.normalize(lr))
        return self.upscale(feats, out_shape, r) * self.norm_std + self.cubic(lr, out_shape)


