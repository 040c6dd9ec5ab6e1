"""MINet (Feng et al., MICCAI 2021, "Multi-Contrast MRI Super-Resolution via a Multi-Stage
Integration Network"): super-resolve a target contrast guided by an HR reference contrast.

Two RCAN-style branches run at HR resolution:

* reference: conv(x_ref) → F_ref^0, then F_ref^l = G_ref^l(F_ref^{l-1});
* target:    conv + sub-pixel upsampling of the LR target → F_tgt^0, then
  F_tgt^l = G_tgt^l(conv1x1([F_ref^{l-1}, F_tgt^{l-1}])) — the reference is fused in at
  every stage, not only once, so each depth can borrow the structure it needs.

The 2L stage features meet in the multi-stage integration module (softmax attention between
stages, then a conv fusing them), and the last stage of each branch passes a channel-spatial
attention (a 3D conv over the (C, H, W) feature volume). Output:

    x̂_tgt = Rec(F_tgt^0 + G_tgt + H_fused) + CubicUpsample(lr)
    x̂_ref = Rec_ref(F_ref^0 + G_ref)          (auxiliary, trained with weight β)

Departure from the paper: the global cubic residual (on the degradation's grid convention,
`mrisr.grid`) — the network learns only what the cubic baseline misses and its output stays
on the same HR grid as the evaluation's. The official code also scales the two attention
outputs by learnable scalars initialised to 0; here they follow the paper's equations.

The training loop calls `forward(lr, ref)` and then `loss(output, batch)`; forward returns the
SR tensor only and keeps x̂_ref on `self._aux` for `loss` (the loop casts the output to
float32, so the two are matched by shape, not identity).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mrisr.models.common import CubicUpsample, SRModel, Upsampler, check_integer_scale, conv_nd
from mrisr.models.rcan import ResidualGroup  # RCAN blocks, 2D here (dims defaults to 2)
from mrisr.models.registry import register


def stage_attention(stages: torch.Tensor) -> torch.Tensor:
    """Multi-stage attention of (B, N, C, H, W) stage features: reshape(softmax(F̂F̂ᵀ) F̂) + F.

    F̂ is F flattened to (B, N, C·H·W); the N×N softmax (over the last dim) weighs how much
    each stage draws on every other. Computed in float32 even under bf16 autocast: the
    logits are sums over C·H·W products and lose their ordering in bf16.
    """
    if stages.ndim != 5:
        raise ValueError(f"expected (B, N, C, H, W) stage features, got shape {tuple(stages.shape)}")
    with torch.autocast(device_type=stages.device.type, enabled=False):
        f = stages.float()
        flat = f.reshape(f.shape[0], f.shape[1], -1)
        weights = torch.softmax(flat @ flat.transpose(1, 2), dim=-1)
        return (weights @ flat).reshape(f.shape) + f


class MultiStageIntegration(nn.Module):
    """Stage attention over n_stages feature maps, then one 3×3 conv fusing them to n_feats."""

    def __init__(self, n_stages: int, n_feats: int) -> None:
        super().__init__()
        self.fuse = conv_nd(2, n_stages * n_feats, n_feats)

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        attended = stage_attention(torch.stack(stages, dim=1))
        b, n, c, h, w = attended.shape
        return self.fuse(attended.reshape(b, n * c, h, w).to(stages[0].dtype))


class ChannelSpatialAttention(nn.Module):
    """G = sigmoid(A) ⊙ F + F with A a 3×3×3 conv over F seen as one (C, H, W) volume.

    The 3D kernel mixes neighbouring channels and pixels at once, so the gate is both
    channel- and spatial-wise; the identity term keeps the block a refinement of F.

    The one-in, one-out 3×3×3 kernel is stored as a (3, 3, 3) parameter, not an nn.Conv3d:
    a rank-5 weight inside a 2D model breaks `model.to(memory_format=torch.channels_last)`,
    which the training loop may apply. Initialised as nn.Conv3d would be (U(±1/√27)).
    """

    def __init__(self) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(27)
        self.weight = nn.Parameter(torch.empty(3, 3, 3).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(1).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = F.conv3d(x.unsqueeze(1), self.weight[None, None].to(x.dtype), self.bias.to(x.dtype), padding=1)
        return torch.sigmoid(logits).squeeze(1) * x + x


def check_minet_dims(dims: int) -> int:
    if dims != 2:
        raise ValueError(f"MINet is a 2D (slice-wise) model; dims must be 2, got {dims}")
    return 2


def check_positive(**values: int) -> None:
    for name, v in values.items():
        if int(v) < 1:
            raise ValueError(f"MINet: {name} must be >= 1, got {v}")


@register("minet")
class MINet(SRModel):
    """Defaults are the paper's size (64 feats, L = 6 groups); the default pipeline config runs a
    CPU-sized net (config/config.yaml) and says so in its budget note.

    Ablations: `use_ref=False` drops the reference branch entirely (forward ignores `ref`,
    no fusion, no auxiliary term); `use_integration=False` drops the multi-stage integration;
    `use_attention=False` drops the channel-spatial attention (G = last-stage feature).
    """

    inputs = ("lr", "ref")

    def __init__(
        self,
        *,
        scale: int,
        dims: int,
        grid_convention: str,
        n_feats: int = 64,
        n_groups: int = 6,
        n_blocks: int = 2,
        reduction: int = 16,
        alpha: float = 0.3,
        beta: float = 0.7,
        use_ref: bool = True,
        use_integration: bool = True,
        use_attention: bool = True,
    ) -> None:
        super().__init__()
        self.scale = check_integer_scale(scale)
        check_minet_dims(dims)
        check_positive(n_feats=n_feats, n_groups=n_groups, n_blocks=n_blocks, reduction=reduction)
        if alpha < 0 or beta < 0:
            raise ValueError(f"MINet: loss weights must be >= 0, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.use_ref, self.use_integration, self.use_attention = bool(use_ref), bool(use_integration), bool(use_attention)

        self.tgt_head = nn.Sequential(conv_nd(2, 1, n_feats), Upsampler(self.scale, n_feats, 2))
        self.tgt_groups = nn.ModuleList(ResidualGroup(n_feats, n_blocks, reduction) for _ in range(n_groups))
        self.tgt_att = ChannelSpatialAttention() if self.use_attention else None
        self.tgt_rec = conv_nd(2, n_feats, 1)
        self.cubic = CubicUpsample(self.scale, 2, grid_convention)

        if self.use_ref:
            self.ref_head = conv_nd(2, 1, n_feats)
            self.ref_groups = nn.ModuleList(ResidualGroup(n_feats, n_blocks, reduction) for _ in range(n_groups))
            self.fusions = nn.ModuleList(conv_nd(2, 2 * n_feats, n_feats, kernel_size=1) for _ in range(n_groups))
            self.ref_att = ChannelSpatialAttention() if self.use_attention else None
            self.ref_rec = conv_nd(2, n_feats, 1)

        n_stages = n_groups * (2 if self.use_ref else 1)
        self.integration = MultiStageIntegration(n_stages, n_feats) if self.use_integration else None
        self._aux: torch.Tensor | None = None

    @property
    def needs_ref(self) -> bool:
        """Whether forward needs `ref`: `inputs` keeps "ref" for every variant (same store, same
        call), but the no-reference ablation ignores it, so inference may run it without one."""
        return self.use_ref

    # -- forward ---------------------------------------------------------------------------
    def check_inputs(self, lr: torch.Tensor, ref: torch.Tensor | None) -> None:
        if lr.ndim != 4 or lr.shape[1] != 1:
            raise ValueError(f"MINet expects lr of shape (B, 1, h, w), got {tuple(lr.shape)}")
        if not self.use_ref:
            return
        b, _, h, w = lr.shape
        expected = (b, 1, h * self.scale, w * self.scale)
        if ref is None or tuple(ref.shape) != expected:
            got = None if ref is None else tuple(ref.shape)
            raise ValueError(f"MINet expects ref of shape {expected} (scale {self.scale} × lr), got {got}")

    def branch_stages(self, lr: torch.Tensor, ref: torch.Tensor | None) -> tuple[torch.Tensor, list, list]:
        """F_tgt^0 and the per-stage features [F_tgt^1..L], [F_ref^0..L] (the latter empty without ref)."""
        tgt = self.tgt_head(lr)
        tgt0 = tgt
        tgt_stages: list[torch.Tensor] = []
        ref_stages: list[torch.Tensor] = []
        if self.use_ref:
            ref_feat = self.ref_head(ref)
            ref_stages.append(ref_feat)
            for group_t, group_r, fusion in zip(self.tgt_groups, self.ref_groups, self.fusions):
                # both groups read stage l-1: the target fuses the reference *before* it moves on
                tgt = group_t(fusion(torch.cat([ref_feat, tgt], dim=1)))
                ref_feat = group_r(ref_feat)
                tgt_stages.append(tgt)
                ref_stages.append(ref_feat)
        else:
            for group_t in self.tgt_groups:
                tgt = group_t(tgt)
                tgt_stages.append(tgt)
        return tgt0, tgt_stages, ref_stages

    def attend(self, feat: torch.Tensor, att: ChannelSpatialAttention | None) -> torch.Tensor:
        return feat if att is None else att(feat)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """SR target (B, 1, H, W); the auxiliary x̂_ref (or None) is kept on self._aux for loss()."""
        self._aux = None
        self.check_inputs(lr, ref)
        tgt0, tgt_stages, ref_stages = self.branch_stages(lr, ref)
        feat = tgt0 + self.attend(tgt_stages[-1], self.tgt_att)
        if self.integration is not None:
            feat = feat + self.integration(tgt_stages + ref_stages[1:])
        if self.use_ref:
            # x̂_ref = Rec_ref(F_ref^0 + G_ref): a reconstruction from the reference branch's features,
            # with the feature-level long skip of the target branch (and of the official code's
            # `resT1 += x1`), but NO image-level `+ ref`: with it, L1(x̂_ref, ref) = L1(Rec_ref(·), 0)
            # is met by zeroing Rec_ref and the β term would train nothing.
            self._aux = self.ref_rec(ref_stages[0] + self.attend(ref_stages[-1], self.ref_att))
        return self.tgt_rec(feat) + self.cubic(lr)

    # -- loss ------------------------------------------------------------------------------
    def loss_text(self) -> str:
        if not self.use_ref:
            return f"{self.alpha:g}·L1(target)"
        return f"{self.alpha:g}·L1(target) + {self.beta:g}·L1(auxiliary reference reconstruction)"

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """α·L1(x̂_tgt, hr) + β·L1(x̂_ref, ref), the auxiliary term from the last forward."""
        total = self.alpha * F.l1_loss(output, batch["hr"])
        if not self.use_ref:
            return total
        aux = self._aux
        if aux is None or aux.shape != output.shape or aux.shape != batch["ref"].shape:
            raise RuntimeError("MINet.loss needs the auxiliary output of the forward that made `output`; "
                               "call model(lr=..., ref=...) first")
        return total + self.beta * F.l1_loss(aux.float(), batch["ref"].float())

    def __getstate__(self) -> dict:
        # The stashed aux may be a non-leaf autograd tensor, which deepcopy/pickle refuse;
        # it is per-forward scratch, never model state.
        state = self.__dict__.copy()
        state["_aux"] = None
        return state
