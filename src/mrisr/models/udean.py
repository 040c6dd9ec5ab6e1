"""UDEAN ("Unsupervised Representation Learning for 3D MRI Super Resolution with Degradation
Adaptation"): networks only; losses and the training task are in mrisr.train.udean.

`udean` (registered): UDEAN's *inference* network, LR encoder E_LR + SR decoder D_SR. It is the
3D RCAN (`models.rcan3d`, the ts_rcan benchmarks' network) split in two — encode = head + groups + long skip (features on the LR grid), decode =
upsampler + tail + cubic residual — so `forward(lr) = decode(encode(lr), lr)` and the model file
holds only what inference needs (`inputs = ("lr",)`: the existing evaluate path runs it).

`UdeanSystem` (not registered; training only) adds the degradation-learning half:
* E_D, `DownsamplingFeatureExtractor`: a strided head conv brings HR onto the LR grid, then
  LeakyReLU convs — `deg_layers` (paper: 6) convolutions in all, the last without activation
  so that f_s is a linear read-out like E_LR's f_t and the two can be compared.
* D_LR, `LRDecoder`: features → one-channel LR image.
* `VGGDiscriminator3D` twice: on LR images (X_t real vs X_{s~t} fake) and on LR-grid features
  (f_t real vs f_s fake).
Paths (the paper's notation; s = source HR, t = target LR; ↓ = grid decimation, see below):
    f_s = E_D(X_s);             X_{s~t} = D_LR(f_s) + ↓X_s
    f_{s~t~s} = E_LR(X_{s~t});  Y_{s~t~s} = D_SR(f_{s~t~s}, X_{s~t})
    Ŷ_s = D_SR(f_s, X_{s~t})
    f_t = E_LR(X_t);            X̂_t = D_LR(f_t) + X_t
with D_SR(f, x) = tail(upsample(f)) + cubic(x).
Readings where the paper is silent (departures, each for the same reason as mrisr's global
cubic residual — the network learns only what a fixed, grid-exact operator misses):
* Global residuals on both sides. D_SR adds the cubic upsampling of "its" LR image; for Ŷ_s
  (no observed LR image) that is X_{s~t}, decoded from the same features. D_LR adds the image
  its features describe on the LR grid: ↓X_s for f_s — "corner": the HR samples at i·s that
  k-space truncation keeps, "center": the s³ block mean — and X_t itself for f_t, so LR
  consistency asks the learnt degradation to leave an already-degraded image unchanged.
* Zero-initialised output convs (SR tail, D_LR last conv): the untrained SR net is exactly
  tricubic and the untrained degradation exactly decimation. Without them, the SR network
  first learns on noise-like generated LR and applies that to real LR: on a toy set, with the
  issue's weights, val PSNR fell to 10–16 dB (cubic 25.9); with them it rose to 26.9 dB in
  150 steps.
Grid: E_D's head is centred on the LR sample positions of the convention (mrisr.grid): for
"corner" (LR sample i at HR i·s) a (2s−1)-tap kernel with padding s−1; for "center"
(i·s + (s−1)/2) an s-tap kernel without padding. So a delta kernel reads exactly the HR sample
the degradation keeps, and generated LR shares the real LR's grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrisr.models.common import check_integer_scale, conv_nd
from mrisr.models.rcan3d import RCAN3d, check_positive
from mrisr.models.registry import register

LEAKY_SLOPE = 0.2


@register("udean")
class UDEAN(RCAN3d):
    """UDEAN inference network: LR encoder (RCAN head + groups) + SR decoder (upsampler + tail).

    Same layers as rcan3d; trained without pairs by mrisr.train.udean through `UdeanSystem`.
    The tail starts at zero, so the untrained network is exactly the tricubic baseline: without
    pairs nothing pulls the SR decoder back when the target features f_t still differ from the
    source features it is trained on, and a random tail would add its noise to every output.
    """

    inputs = ("lr",)

    def __init__(self, *, scale: int, dims: int, grid_convention: str, n_feats: int = 16, n_groups: int = 2,
                 n_blocks: int = 2, reduction: int = 4, kernel_size: int = 3) -> None:
        # explicit arguments (not **kwargs): the registry names a mistyped one
        super().__init__(scale=scale, dims=dims, grid_convention=grid_convention, n_feats=n_feats, n_groups=n_groups,
                         n_blocks=n_blocks, reduction=reduction, kernel_size=kernel_size)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)


# ----------------------------------------------------------------------------- degradation half
def head_geometry(scale: int, convention: str) -> tuple[int, int]:
    """(kernel, padding) of a stride-`scale` conv whose taps are centred on the LR sample positions."""
    if convention == "corner":
        return 2 * scale - 1, scale - 1
    if convention == "center":
        return scale, 0
    raise ValueError(f"unknown grid convention {convention!r}")


class DownsamplingFeatureExtractor(nn.Module):
    """E_D: HR (B, 1, *N) → features (B, n_feats, *N/s): strided head + LeakyReLU convs, n_layers convs in all."""

    def __init__(self, scale: int, n_feats: int, n_layers: int, convention: str) -> None:
        super().__init__()
        check_positive("DownsamplingFeatureExtractor", n_layers=n_layers)
        self.scale = check_integer_scale(scale)
        kernel, padding = head_geometry(self.scale, convention)
        layers: list[nn.Module] = [nn.Conv3d(1, n_feats, kernel, stride=self.scale, padding=padding)]
        for _ in range(n_layers - 1):
            layers += [nn.LeakyReLU(LEAKY_SLOPE, inplace=True), conv_nd(3, n_feats, n_feats)]
        self.body = nn.Sequential(*layers)

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        bad = [n for n in hr.shape[2:] if n % self.scale]
        if bad:
            raise ValueError(f"HR patch {tuple(hr.shape[2:])} is not a multiple of the scale {self.scale}")
        return self.body(hr)


def grid_decimate(hr: torch.Tensor, scale: int, convention: str) -> torch.Tensor:
    """HR (B, C, *N) → the LR grid without any filtering beyond the grid's own: "corner" keeps the
    HR samples at i·s, "center" averages each s³ block (centred on i·s + (s−1)/2)."""
    if convention == "corner":
        return hr[:, :, ::scale, ::scale, ::scale]
    if convention == "center":
        return F.avg_pool3d(hr, scale)
    raise ValueError(f"unknown grid convention {convention!r}")


class LRDecoder(nn.Module):
    """D_LR: features on the LR grid → one-channel LR image (LeakyReLU convs, linear last).

    The last conv starts at zero: UdeanSystem adds the decimated source HR, so the generated LR
    starts as plain decimation and the network learns only the degradation's residual."""

    def __init__(self, n_feats: int, n_layers: int) -> None:
        super().__init__()
        check_positive("LRDecoder", n_layers=n_layers)
        layers: list[nn.Module] = []
        for _ in range(n_layers - 1):
            layers += [conv_nd(3, n_feats, n_feats), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        layers.append(conv_nd(3, n_feats, 1))
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.body = nn.Sequential(*layers)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.body(feats)


def adaptive_stride(shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
    """Stride 2 on spatial axes still ≥ 4 long, 1 on the others: thin patches (LR 64×64×3) keep
    their short axis while the long ones are reduced as in VGG."""
    return tuple(2 if n >= 4 else 1 for n in shape)


class VGGDiscriminator3D(nn.Module):
    """VGG-style critic: per stage conv3 (stride 1) + conv3 (stride 2 where the axis allows), LeakyReLU,
    channels doubling; then global average and two linear layers → one score per sample (B,)."""

    def __init__(self, in_channels: int, n_feats: int, n_stages: int) -> None:
        super().__init__()
        check_positive("VGGDiscriminator3D", in_channels=in_channels, n_feats=n_feats, n_stages=n_stages)
        self.convs = nn.ModuleList()
        c_in = in_channels
        for i in range(n_stages):
            c = n_feats * 2**i
            self.convs.append(nn.Conv3d(c_in, c, 3, padding=1))
            self.convs.append(nn.Conv3d(c, c, 3, padding=1))  # strided in forward
            c_in = c
        self.classifier = nn.Sequential(nn.Linear(c_in, c_in), nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
                                        nn.Linear(c_in, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            stride = adaptive_stride(x.shape[2:]) if i % 2 else 1
            x = F.leaky_relu(F.conv3d(x, conv.weight, conv.bias, stride=stride, padding=1), LEAKY_SLOPE)
        return self.classifier(x.mean(dim=(2, 3, 4))).squeeze(1)


class UdeanSystem(nn.Module):
    """Everything UDEAN trains: `sr` (the registered inference net), `degrader` (E_D),
    `lr_decoder` (D_LR) and the two discriminators `d_lr`, `d_feat`."""

    def __init__(self, sr: UDEAN, *, grid_convention: str, deg_layers: int = 6, lr_dec_layers: int = 2,
                 disc_feats: int = 16, disc_stages: int = 3) -> None:
        super().__init__()
        self.sr = sr
        self.convention = grid_convention
        n = sr.n_feats
        self.degrader = DownsamplingFeatureExtractor(sr.scale, n, deg_layers, grid_convention)
        self.lr_decoder = LRDecoder(n, lr_dec_layers)
        self.d_lr = VGGDiscriminator3D(1, disc_feats, disc_stages)
        self.d_feat = VGGDiscriminator3D(n, disc_feats, disc_stages)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.sr.parameters(), *self.degrader.parameters(), *self.lr_decoder.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.d_lr.parameters(), *self.d_feat.parameters()]

    def forward(self, x_s: torch.Tensor, x_t: torch.Tensor) -> dict[str, torch.Tensor]:
        """All generator paths for a source-HR batch x_s and a target-LR batch x_t."""
        f_s = self.degrader(x_s)
        x_st = self.lr_decoder(f_s) + grid_decimate(x_s, self.sr.scale, self.convention)
        f_sts = self.sr.encode(x_st)
        f_t = self.sr.encode(x_t)
        return {
            "f_s": f_s,
            "x_st": x_st,
            "f_sts": f_sts,
            "y_sts": self.sr.decode(f_sts, x_st),
            "y_s_hat": self.sr.decode(f_s, x_st),
            "f_t": f_t,
            "x_t_hat": self.lr_decoder(f_t) + x_t,
        }
