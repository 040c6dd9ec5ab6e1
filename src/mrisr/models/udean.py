"""UDEAN ("Unsupervised Representation Learning for 3D MRI Super Resolution with Degradation
Adaptation", Liu, Li et al.): networks only; losses in mrisr.losses.udean, the training task in
mrisr.train.udean.

Four image networks, two critics (s = source HR, t = target LR):
* E_LR, `ConvEncoder` (stride 1): LR image → features on the LR grid, `enc_layers` (paper: 6)
  × (conv + LeakyReLU).
* E_D, `ConvEncoder` (first conv strided by the scale): HR image → features on the LR grid,
  `deg_layers` (paper: 6) × (conv + LeakyReLU).
* D_SR, `RCANDecoder` with an upsampler: TS-RCAN body (residual groups of RCABs, conv, long
  skip) → sub-pixel upsampler → tail conv, plus the global cubic residual of "its" LR image.
* D_LR, `RCANDecoder` without an upsampler: the same TS-RCAN body → tail conv → one-channel LR.
* `VGGDiscriminator3D` twice: on LR images (X_t real vs X_{s~t} fake) and on LR-grid features
  (f_t real vs f_s fake).

`udean` (registered) is the inference network E_LR + D_SR (`inputs = ("lr",)`, the model file
holds only it); `UdeanSystem` (training only) adds E_D, D_LR and the critics. Paths:
    f_s = E_D(X_s);             X_{s~t} = D_LR(f_s)
    f_{s~t~s} = E_LR(X_{s~t});  Y_{s~t~s} = D_SR(f_{s~t~s}, X_{s~t})
    Ŷ_s = D_SR(f_s, X_{s~t})
    f_t = E_LR(X_t);            X̂_t = D_LR(f_t)
X̂_t is decoded from f_t alone: no image shortcut from X_t, so LR consistency is a real
auto-encoding constraint (with D_LR's weights zeroed, X̂_t = 0; tests/test_udean.py).

Readings (docs/fidelity.md, UDEAN rows):
* D_SR adds the cubic upsampling of its LR input (X_t at inference, X_{s~t} for Ŷ_s and
  Y_{s~t~s}) and its tail starts at zero — mrisr's global residual for every SR model; it adds
  nothing to the consistency losses (those are on D_LR's output).
* Identity-channel initialisation (an initialisation, not a connection: every weight stays
  trainable): feature channel 0 of both encoders starts as the image on the LR grid (E_D: the
  HR sample the grid convention keeps — "corner": i·s, "center": the s³ block mean; E_LR: X_t),
  D_LR's body starts as its long skip (last body conv zero) and its tail reads channel 0. So the
  untrained degradation is grid decimation and the untrained LR auto-encoder reproduces X_t;
  the adversarial and cycle losses then learn the residual degradation. Without such an anchor
  the SR decoder first learns from noise-like generated LR (val PSNR 10–16 dB against tricubic
  25.9 on a toy set in the issue-7 work).
Grid: E_D's head is centred on the LR sample positions of the convention (mrisr.grid): for
"corner" (LR sample i at HR i·s) a (2s−1)-tap kernel with padding s−1; for "center"
(i·s + (s−1)/2) an s-tap kernel without padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrisr.models.common import CubicUpsample, SRModel, Upsampler, check_integer_scale, conv_nd
from mrisr.models.rcan import ResidualGroup
from mrisr.models.rcan3d import RCAN3d, check_3d, check_positive
from mrisr.models.registry import register

LEAKY_SLOPE = 0.2

__all__ = ["ConvEncoder", "RCAN3d", "RCANDecoder", "UDEAN", "UdeanSystem", "VGGDiscriminator3D", "grid_decimate",
           "head_geometry"]


# ----------------------------------------------------------------------------- building blocks
def head_geometry(scale: int, convention: str) -> tuple[int, int]:
    """(kernel, padding) of a stride-`scale` conv whose taps are centred on the LR sample positions."""
    if convention == "corner":
        return 2 * scale - 1, scale - 1
    if convention == "center":
        return scale, 0
    raise ValueError(f"unknown grid convention {convention!r}")


def grid_decimate(hr: torch.Tensor, scale: int, convention: str) -> torch.Tensor:
    """HR (B, C, *N) → the LR grid without any filtering beyond the grid's own: "corner" keeps the
    HR samples at i·s, "center" averages each s³ block (centred on i·s + (s−1)/2)."""
    if convention == "corner":
        return hr[:, :, ::scale, ::scale, ::scale]
    if convention == "center":
        return F.avg_pool3d(hr, scale)
    raise ValueError(f"unknown grid convention {convention!r}")


@torch.no_grad()
def pass_channel_zero(conv: nn.Conv3d, taps: torch.Tensor | None = None) -> None:
    """Output channel 0 of `conv` := input channel 0 filtered by `taps` (default: a centre delta);
    the other output channels keep their random init."""
    k = conv.weight.shape[2:]
    conv.weight[0].zero_()
    if taps is None:
        conv.weight[0, 0, k[0] // 2, k[1] // 2, k[2] // 2] = 1.0
    else:
        conv.weight[0, 0] = taps
    if conv.bias is not None:
        conv.bias[0] = 0.0


class ConvEncoder(nn.Module):
    """`n_layers` × (conv + LeakyReLU): image (B, 1, *N) → features (B, n_feats, *N/stride).

    stride 1 (E_LR): 3-tap convs throughout. stride s (E_D): the first conv is strided and
    centred on the LR sample positions of `convention` (head_geometry). Channel 0 starts as
    the image on the LR grid (pass_channel_zero; module docstring)."""

    def __init__(self, n_feats: int, n_layers: int, scale: int = 1, convention: str = "corner",
                 kernel_size: int = 3) -> None:
        super().__init__()
        check_positive("ConvEncoder", n_feats=n_feats, n_layers=n_layers, scale=scale)
        self.scale = int(scale) if scale == 1 else check_integer_scale(scale)
        if self.scale == 1:
            head = conv_nd(3, 1, n_feats, kernel_size)
        else:
            kernel, padding = head_geometry(self.scale, convention)
            head = nn.Conv3d(1, n_feats, kernel, stride=self.scale, padding=padding)
        layers: list[nn.Module] = [head, nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        for _ in range(n_layers - 1):
            layers += [conv_nd(3, n_feats, n_feats, kernel_size), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        self.body = nn.Sequential(*layers)
        convs = [m for m in self.body if isinstance(m, nn.Conv3d)]
        if self.scale > 1 and convention == "center":  # the s³ block mean
            pass_channel_zero(convs[0], torch.full(tuple(head.weight.shape[2:]), 1.0 / self.scale**3))
        else:  # corner: the centre tap sits on HR sample i·s; stride 1: the voxel itself
            pass_channel_zero(convs[0])
        for conv in convs[1:]:
            pass_channel_zero(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bad = [n for n in x.shape[2:] if n % self.scale]
        if bad:
            raise ValueError(f"HR patch {tuple(x.shape[2:])} is not a multiple of the scale {self.scale}")
        return self.body(x)


class RCANDecoder(nn.Module):
    """TS-RCAN decoder: features → residual groups of RCABs → conv + long skip → [sub-pixel
    upsampler] → tail conv to one channel. `scale` 1: D_LR (no upsampler), else D_SR."""

    def __init__(self, n_feats: int, n_groups: int, n_blocks: int, reduction: int, scale: int = 1,
                 kernel_size: int = 3) -> None:
        super().__init__()
        check_positive("RCANDecoder", n_feats=n_feats, n_groups=n_groups, n_blocks=n_blocks, reduction=reduction,
                       scale=scale)
        self.scale = int(scale) if scale == 1 else check_integer_scale(scale)
        self.groups = nn.Sequential(*[ResidualGroup(n_feats, n_blocks, reduction, 3, kernel_size)
                                      for _ in range(n_groups)])
        self.body_tail = conv_nd(3, n_feats, n_feats, kernel_size)
        self.upsample = Upsampler(self.scale, n_feats, 3) if self.scale > 1 else nn.Identity()
        self.tail = conv_nd(3, n_feats, 1, kernel_size)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.tail(self.upsample(feats + self.body_tail(self.groups(feats))))


# ----------------------------------------------------------------------------- inference network
@register("udean")
class UDEAN(SRModel):
    """UDEAN inference network: E_LR (`encoder`, enc_layers × conv + LeakyReLU) + D_SR (`decoder`,
    TS-RCAN n_groups × n_blocks with upsampler) + the cubic residual.

    D_SR's tail starts at zero, so the untrained network is exactly the tricubic baseline:
    without pairs nothing pulls the SR decoder back while the target features still differ
    from the source features it is trained on, and a random tail would add its noise."""

    inputs = ("lr",)

    def __init__(self, *, scale: int, dims: int, grid_convention: str, n_feats: int = 16, n_groups: int = 2,
                 n_blocks: int = 2, reduction: int = 4, kernel_size: int = 3, enc_layers: int = 6) -> None:
        # explicit arguments (not **kwargs): the registry names a mistyped one
        super().__init__()
        self.scale = check_integer_scale(scale)
        check_3d(dims, type(self).__name__)
        check_positive(type(self).__name__, n_feats=n_feats, n_groups=n_groups, n_blocks=n_blocks,
                       reduction=reduction, kernel_size=kernel_size, enc_layers=enc_layers)
        if kernel_size % 2 == 0:
            raise ValueError(f"{type(self).__name__}: kernel_size must be odd ('same' padding), got {kernel_size}")
        self.n_feats = int(n_feats)
        self.encoder = ConvEncoder(n_feats, enc_layers, 1, grid_convention, kernel_size)
        self.decoder = RCANDecoder(n_feats, n_groups, n_blocks, reduction, self.scale, kernel_size)
        nn.init.zeros_(self.decoder.tail.weight)
        nn.init.zeros_(self.decoder.tail.bias)
        self.cubic = CubicUpsample(self.scale, 3, grid_convention)

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        """E_LR: LR image (B, 1, *n) → features (B, n_feats, *n) on the LR grid."""
        return self.encoder(lr)

    def decode(self, feats: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """D_SR: features on the LR grid → HR image; `lr` supplies the cubic global residual."""
        return self.decoder(feats) + self.cubic(lr)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 5 or lr.shape[1] != 1:
            raise ValueError(f"{type(self).__name__} expects lr of shape (B, 1, x, y, z), got {tuple(lr.shape)}")
        return self.decode(self.encode(lr), lr)


# ----------------------------------------------------------------------------- critics
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


# ----------------------------------------------------------------------------- training system
class UdeanSystem(nn.Module):
    """Everything UDEAN trains: `sr` (the registered inference net E_LR + D_SR), `degrader` (E_D),
    `lr_decoder` (D_LR) and the two critics `d_lr`, `d_feat`."""

    def __init__(self, sr: UDEAN, *, grid_convention: str, deg_layers: int = 6, lr_dec_groups: int = 2,
                 lr_dec_blocks: int = 2, reduction: int = 4, disc_feats: int = 16, disc_stages: int = 3) -> None:
        super().__init__()
        self.sr = sr
        self.convention = grid_convention
        n = sr.n_feats
        self.degrader = ConvEncoder(n, deg_layers, sr.scale, grid_convention)
        self.lr_decoder = RCANDecoder(n, lr_dec_groups, lr_dec_blocks, reduction, 1)
        nn.init.zeros_(self.lr_decoder.body_tail.weight)  # body starts as its long skip ...
        nn.init.zeros_(self.lr_decoder.body_tail.bias)
        pass_channel_zero(self.lr_decoder.tail)  # ... and the tail reads feature channel 0
        self.d_lr = VGGDiscriminator3D(1, disc_feats, disc_stages)
        self.d_feat = VGGDiscriminator3D(n, disc_feats, disc_stages)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.sr.parameters(), *self.degrader.parameters(), *self.lr_decoder.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.d_lr.parameters(), *self.d_feat.parameters()]

    def forward(self, x_s: torch.Tensor, x_t: torch.Tensor) -> dict[str, torch.Tensor]:
        """All generator paths for a source-HR batch x_s and a target-LR batch x_t."""
        f_s = self.degrader(x_s)
        x_st = self.lr_decoder(f_s)
        f_sts = self.sr.encode(x_st)
        f_t = self.sr.encode(x_t)
        return {
            "f_s": f_s,
            "x_st": x_st,
            "f_sts": f_sts,
            "y_sts": self.sr.decode(f_sts, x_st),
            "y_s_hat": self.sr.decode(f_s, x_st),
            "f_t": f_t,
            "x_t_hat": self.lr_decoder(f_t),
        }
