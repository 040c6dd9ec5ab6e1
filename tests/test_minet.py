"""MINet: integration and attention modules against hand-written references, shapes, the
no-reference ablation, the loss and the training-loop contract."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mrisr.models.common import CubicUpsample
from mrisr.models.minet import MINet, ChannelSpatialAttention, MultiStageIntegration, stage_attention
from mrisr.models.registry import build_model, count_parameters

TINY = dict(n_feats=8, n_groups=2, n_blocks=1, reduction=4)


def make(scale: int = 2, **args) -> MINet:
    torch.manual_seed(0)
    return MINet(scale=scale, dims=2, grid_convention="center", **{**TINY, **args})


def random_batch(scale: int, b: int = 2, h: int = 6, w: int = 5, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "lr": torch.rand(b, 1, h, w, generator=g),
        "hr": torch.rand(b, 1, h * scale, w * scale, generator=g),
        "ref": torch.rand(b, 1, h * scale, w * scale, generator=g),
    }


def test_stage_attention_matches_loops():
    g = torch.Generator().manual_seed(3)
    # small values keep the softmax away from one-hot, so every weight matters
    stages = 0.1 * torch.randn(2, 3, 2, 3, 2, generator=g, dtype=torch.float64)
    b, n = stages.shape[:2]
    expected = torch.empty_like(stages)
    for bi in range(b):
        for i in range(n):
            logits = torch.tensor([float((stages[bi, i] * stages[bi, j]).sum()) for j in range(n)], dtype=torch.float64)
            w = torch.exp(logits - logits.max())
            w = w / w.sum()
            expected[bi, i] = sum(w[j] * stages[bi, j] for j in range(n)) + stages[bi, i]
    got = stage_attention(stages.float())
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_integration_fuses_attended_stages():
    torch.manual_seed(0)
    module = MultiStageIntegration(n_stages=3, n_feats=2)
    stages = [0.1 * torch.randn(1, 2, 4, 4) for _ in range(3)]
    stacked = torch.stack(stages, dim=1)
    flat = stacked.reshape(1, 3, -1)
    attended = torch.einsum("bij,bjk->bik", torch.softmax(torch.einsum("bik,bjk->bij", flat, flat), -1), flat)
    attended = attended.reshape(stacked.shape) + stacked
    expected = module.fuse(attended.reshape(1, 6, 4, 4))
    torch.testing.assert_close(module(stages), expected)


def test_channel_spatial_attention_zero_conv_is_one_and_a_half():
    att = ChannelSpatialAttention()
    with torch.no_grad():
        att.weight.zero_()
        att.bias.zero_()
    x = torch.randn(2, 4, 5, 6)
    torch.testing.assert_close(att(x), 0.5 * x + x)


def test_channel_spatial_attention_matches_hand_written_3d_conv():
    """G = sigmoid(A) ⊙ F + F with A the 3×3×3 conv (zero padding) of F seen as a (C, H, W) volume,
    computed here by explicit loops over every voxel and kernel tap."""
    torch.manual_seed(0)
    att = ChannelSpatialAttention()
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    w, bias = att.weight.detach().double(), att.bias.item()
    b_, c_, h_, w_ = x.shape
    expected = torch.empty_like(x)
    for b in range(b_):
        for c in range(c_):
            for i in range(h_):
                for j in range(w_):
                    a = bias
                    for dc in (-1, 0, 1):
                        for di in (-1, 0, 1):
                            for dj in (-1, 0, 1):
                                cc, ii, jj = c + dc, i + di, j + dj
                                if 0 <= cc < c_ and 0 <= ii < h_ and 0 <= jj < w_:
                                    a += float(w[dc + 1, di + 1, dj + 1]) * float(x[b, cc, ii, jj])
                    gate = 1.0 / (1.0 + math.exp(-a))
                    expected[b, c, i, j] = gate * x[b, c, i, j] + x[b, c, i, j]
    torch.testing.assert_close(att(x.float()).double(), expected, rtol=1e-5, atol=1e-6)


def test_channel_spatial_attention_gate_varies_over_channels_and_pixels():
    torch.manual_seed(0)
    att = ChannelSpatialAttention()
    x = torch.randn(1, 4, 5, 6)
    gate = (att(x) - x) / x
    assert gate.std(dim=1).max() > 1e-3 and gate.std(dim=(2, 3)).max() > 1e-3


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("args", [{}, {"use_ref": False}, {"use_integration": False}, {"use_attention": False}])
def test_output_shape(scale, args):
    model = make(scale, **args)
    batch = random_batch(scale)
    out = model(batch["lr"], batch["ref"])
    assert out.shape == batch["hr"].shape
    if args.get("use_ref", True):
        assert model._aux is not None and model._aux.shape == batch["ref"].shape
    else:
        assert model._aux is None


def test_zero_reconstruction_is_the_cubic_baseline():
    model = MINet(scale=2, dims=2, grid_convention="corner", **TINY)
    with torch.no_grad():
        model.tgt_rec.weight.zero_()
        model.tgt_rec.bias.zero_()
    batch = random_batch(2)
    torch.testing.assert_close(model(batch["lr"], batch["ref"]), CubicUpsample(2, 2, "corner")(batch["lr"]))


def test_no_ref_variant_ignores_ref_and_full_model_does_not():
    batch = random_batch(2)
    noise = torch.randn_like(batch["ref"])
    no_ref = make(use_ref=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(no_ref(batch["lr"], batch["ref"]), no_ref(batch["lr"], noise), rtol=0, atol=0)
        torch.testing.assert_close(no_ref(batch["lr"], batch["ref"]), no_ref(batch["lr"]), rtol=0, atol=0)
    assert not any("ref" in name or "fusion" in name for name, _ in no_ref.named_parameters())
    full = make().eval()
    with torch.no_grad():
        assert (full(batch["lr"], batch["ref"]) - full(batch["lr"], noise)).abs().max() > 1e-4


@pytest.mark.parametrize("args", [{}, {"use_ref": False}, {"use_integration": False}, {"use_attention": False}])
def test_loss_finite_and_backward(args):
    model = make(**args)
    batch = random_batch(2)
    loss = model.loss(model(batch["lr"], batch["ref"]), batch)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_loss_is_weighted_sum_of_l1_terms():
    model = make(alpha=0.3, beta=0.7)
    batch = random_batch(2)
    out = model(batch["lr"], batch["ref"])
    aux = model._aux
    expected = 0.3 * (out - batch["hr"]).abs().mean() + 0.7 * (aux - batch["ref"]).abs().mean()
    torch.testing.assert_close(model.loss(out, batch), expected)
    no_ref = make(use_ref=False, alpha=0.3)
    out = no_ref(batch["lr"], batch["ref"])
    torch.testing.assert_close(no_ref.loss(out, batch), 0.3 * (out - batch["hr"]).abs().mean())
    # the model card's words for the same sums
    assert model.loss_text() == "0.3·L1(target) + 0.7·L1(auxiliary reference reconstruction)"
    assert no_ref.loss_text() == "0.3·L1(target)"


def test_auxiliary_reference_reconstruction_is_not_an_identity():
    """x̂_ref is Rec_ref(F_ref^0 + G_ref), not Rec_ref(·) + ref: with an image-level identity
    skip a zeroed Rec_ref would meet the β term exactly and it would train nothing."""
    model = make()
    batch = random_batch(2)
    with torch.no_grad():
        model.ref_rec.weight.zero_()
        model.ref_rec.bias.zero_()
    model(batch["lr"], batch["ref"])
    assert model._aux.abs().max() == 0  # a zero reconstruction is zero, not the reference itself
    model = make()
    model(batch["lr"], batch["ref"])
    aux_term = (model._aux - batch["ref"]).abs().mean()
    assert aux_term > 0.05  # a fresh net does not reproduce the reference for free
    aux_term.backward()  # the β term alone trains the reference branch's groups
    for module in (model.ref_head, model.ref_groups[0], model.ref_groups[-1]):
        assert sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None) > 0


def test_loss_without_forward_is_an_error():
    batch = random_batch(2)
    with pytest.raises(RuntimeError, match="forward"):
        make().loss(batch["hr"], batch)


def test_parameters_grow_with_groups_and_ablations_remove_some():
    n = {g: count_parameters(make(n_groups=g)) for g in (1, 2, 3)}
    assert n[1] < n[2] < n[3]
    full = count_parameters(make())
    for ablation in ("use_ref", "use_integration", "use_attention"):
        assert count_parameters(make(**{ablation: False})) < full


def test_bad_geometry_and_inputs_raise():
    with pytest.raises(ValueError, match="dims"):
        MINet(scale=2, dims=3, grid_convention="center")
    with pytest.raises(ValueError, match="scale"):
        MINet(scale=1, dims=2, grid_convention="center")
    batch = random_batch(2)
    with pytest.raises(ValueError, match="ref"):
        make()(batch["lr"], batch["ref"][..., :-1])


def test_training_loop_contract_through_registry():
    torch.manual_seed(0)
    model = build_model("minet", scale=4, dims=2, grid_convention="corner", **TINY)
    assert model.inputs == ("lr", "ref")
    batch = random_batch(4, h=4, w=4)
    out = model(**{k: batch[k] for k in model.inputs}).float()  # the loop casts to float32
    assert out.shape == batch["hr"].shape
    loss = model.loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.tgt_head[0].weight.grad is not None
    copy.deepcopy(model)  # the stashed non-leaf aux must not block copies (EMA, best-model snapshots)


def test_channels_last_and_bf16_autocast_as_the_loop_may_run_it():
    model = make(2)
    batch = random_batch(2)
    ref_out = model(batch["lr"], batch["ref"]).detach()
    model = model.to(memory_format=torch.channels_last)  # the loop's `channels_last` option
    cl = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    torch.testing.assert_close(model(cl["lr"], cl["ref"]), ref_out, rtol=1e-4, atol=1e-5)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(cl["lr"], cl["ref"]).float()
    assert (out - ref_out).abs().max() < 0.1
    assert torch.isfinite(model.loss(out, cl))
