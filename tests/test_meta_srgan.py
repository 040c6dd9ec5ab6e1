"""mrisr.models.meta_srgan: Meta-Upscale geometry and filters, generators, discriminator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrisr.degrade import degrade_array
from mrisr.grid import cubic_upsample
from mrisr.models import build_model, load_model, save_model
from mrisr.models.meta_srgan import (Discriminator, MetaUpscale, meta_positions, output_size,
                                     weight_input)


def constant_filter(mu: MetaUpscale, weight: torch.Tensor) -> MetaUpscale:
    """Make the predictor output `weight` (out, C, k, k) for every position: zero last-layer
    weights, bias = the filter (flattened in conv2d's layout)."""
    last = mu.predictor[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(weight.reshape(-1))
    return mu


def tiny_meta(convention: str = "center", scale: float = 4.0) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("meta_srgan", scale=scale, dims=2, grid_convention=convention, n_feats=8, n_blocks=1,
                       hidden=16)


# ---------------------------------------------------------------------------- positions
def test_positions_center_convention_hand_computed():
    # x = (i + 1/2)/s - 1/2 with s = 10/4 = 2.5: 0.4 i - 0.3; nearest LR sample and offset.
    idx, off = meta_positions(4, 10, "center")
    x = np.array([-0.3, 0.1, 0.5, 0.9, 1.3, 1.7, 2.1, 2.5, 2.9, 3.3])
    expected_idx = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(off, x - expected_idx, atol=1e-12)
    # ×2: every LR sample gets the two HR samples either side of it, at ∓1/4.
    idx, off = meta_positions(4, 8, "center")
    np.testing.assert_array_equal(idx, [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(off, [-0.25, 0.25] * 4)


def test_positions_corner_convention_hand_computed():
    # x = i / 2.5; the last samples lie beyond the last LR sample (clipped index, offset > 1/2).
    idx, off = meta_positions(4, 10, "corner")
    np.testing.assert_array_equal(idx, [0, 0, 1, 1, 2, 2, 2, 3, 3, 3])
    np.testing.assert_allclose(off, [0, 0.4, -0.2, 0.2, -0.4, 0, 0.4, -0.2, 0.2, 0.6], atol=1e-12)


def test_positions_at_unit_scale_are_the_identity():
    for convention in ("center", "corner"):
        idx, off = meta_positions(7, 7, convention)
        np.testing.assert_array_equal(idx, np.arange(7))
        np.testing.assert_array_equal(off, np.zeros(7))


def test_weight_input_rows_are_row_major_offsets_and_inverse_scale():
    w = weight_input(np.array([-0.25, 0.25]), np.array([0.1, 0.2, 0.3]), 2.5)
    assert w.shape == (6, 3)
    np.testing.assert_allclose(w[4], [0.25, 0.2, 0.4])  # row i=1, column j=1
    np.testing.assert_allclose(w[:, 2], 0.4)


def test_predictor_sees_the_weight_input_of_each_hr_pixel():
    mu = MetaUpscale(3, 1, hidden=8, convention="center")
    seen = []
    mu.predictor[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().numpy()))
    mu(torch.rand(1, 3, 4, 5), (10, 12), 2.5)
    _, oy = meta_positions(4, 10, "center")
    _, ox = meta_positions(5, 12, "center")
    np.testing.assert_allclose(seen[0], weight_input(oy, ox, 2.5), atol=1e-7)
    # spot check by hand: HR (1, 0) → x_y = 1.5/2.5 - 0.5 = 0.1 (LR 0), x_x = 0.5·5/12 - 0.5
    np.testing.assert_allclose(seen[0][1 * 12 + 0], [0.1, 0.5 * 5 / 12 - 0.5, 0.4], atol=1e-6)


# ---------------------------------------------------------------------------- Meta-Upscale
@pytest.mark.parametrize("convention", ["center", "corner"])
def test_identity_filter_at_unit_scale_reproduces_the_input(convention):
    c = 4
    identity = torch.zeros(c, c, 3, 3)
    for i in range(c):
        identity[i, i, 1, 1] = 1.0
    mu = constant_filter(MetaUpscale(c, c, 3, hidden=16, convention=convention), identity)
    x = torch.randn(2, c, 7, 9)
    with torch.no_grad():
        y = mu(x, (7, 9), 1.0)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


def test_constant_filter_at_unit_scale_is_conv2d():
    torch.manual_seed(1)
    weight = torch.randn(2, 3, 3, 3)
    mu = constant_filter(MetaUpscale(3, 2, 3, hidden=8), weight)
    x = torch.randn(2, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(mu(x, (6, 5), 1.0), F.conv2d(x, weight, padding=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("r", [2, 3])
def test_constant_filter_at_integer_scale_is_nearest_upsampled_conv(r):
    # centre convention: HR block [i·r, (i+1)·r) is nearest to LR sample i.
    torch.manual_seed(2)
    weight = torch.randn(1, 3, 3, 3)
    mu = constant_filter(MetaUpscale(3, 1, 3, hidden=8), weight)
    x = torch.randn(2, 3, 4, 5)
    expected = F.conv2d(x, weight, padding=1).repeat_interleave(r, 2).repeat_interleave(r, 3)
    with torch.no_grad():
        torch.testing.assert_close(mu(x, (4 * r, 5 * r), float(r)), expected, rtol=1e-5, atol=1e-5)


def test_position_dependent_filters_follow_the_offsets():
    # A predictor computing weight = offset_y on the centre tap makes the output x[idx]·offset.
    mu = MetaUpscale(1, 1, 3, hidden=4)
    lin0, lin2 = mu.predictor[0], mu.predictor[-1]
    with torch.no_grad():
        for lin in (lin0, mu.predictor[2], lin2):
            lin.weight.zero_()
            lin.bias.zero_()
        lin0.weight[0, 0] = 1.0  # hidden0 = relu(offset_y) ; hidden1 = relu(-offset_y)
        lin0.weight[1, 0] = -1.0
        mu.predictor[2].weight[0, 0] = 1.0
        mu.predictor[2].weight[1, 1] = 1.0
        lin2.weight[4, 0] = 1.0  # centre tap = relu(oy) - relu(-oy) = oy
        lin2.weight[4, 1] = -1.0
    x = torch.randn(1, 1, 4, 3)
    iy, oy = meta_positions(4, 10, "center")
    ix, _ = meta_positions(3, 7, "center")
    expected = x[0, 0][iy][:, ix] * torch.tensor(oy, dtype=torch.float32)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(mu(x, (10, 7), 2.5)[0, 0], expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- generators
@pytest.mark.parametrize("r", [1.1, 2.0, 2.7, 4.0])
def test_meta_srgan_output_shapes(r):
    model = tiny_meta()
    x = torch.rand(2, 1, 20, 13)
    with torch.no_grad():
        y = model(x, scale=r)
        z = model(x, scale=r, out_shape=(31, 40))  # any (non-square) grid
    assert y.shape == (2, 1, round(20 * r), round(13 * r)) == (2, 1, output_size(20, r), output_size(13, r))
    assert z.shape == (2, 1, 31, 40)


def test_default_scale_is_the_model_scale_and_can_be_set():
    model = tiny_meta(scale=3.0)
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        assert model(x).shape[-2:] == (24, 24)
        model.scale = 2  # what `mrisr evaluate --set scale=2` does
        assert model(x).shape[-2:] == (16, 16)


@pytest.mark.parametrize("convention,mode", [("center", "lowpass_bicubic"), ("corner", "truncate")])
@pytest.mark.parametrize("r", [1.3, 2.7])
def test_untrained_meta_srgan_is_the_cubic_baseline(convention, mode, r):
    """Zero-initialised last layer: output = the evaluation's cubic upsample, on the grid the
    degradation recorded, also for non-integer scales."""
    hr = np.random.default_rng(0).uniform(0, 1, (2, 30, 26)).astype(np.float32)
    lr, grid = degrade_array(hr, mode, r, (1, 2))
    assert grid.convention == convention
    model = tiny_meta(convention).train()  # BN in train mode: still exactly cubic
    with torch.no_grad():
        sr = model(torch.from_numpy(lr)[:, None], scale=r, out_shape=hr.shape[1:])[:, 0].numpy()
    np.testing.assert_allclose(sr, cubic_upsample(lr, grid), atol=2e-6)


def test_untrained_srgan_is_the_cubic_baseline_and_fixed_scale():
    hr = np.random.default_rng(1).uniform(0, 1, (2, 24, 20)).astype(np.float32)
    lr, grid = degrade_array(hr, "bicubic", 2, (1, 2))
    torch.manual_seed(0)
    model = build_model("srgan", scale=2, dims=2, grid_convention="center", n_feats=8, n_blocks=1).eval()
    with torch.no_grad():
        sr = model(torch.from_numpy(lr)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(sr, cubic_upsample(lr, grid), atol=2e-6)
    with pytest.raises(ValueError, match="integer"):
        build_model("srgan", scale=2.5, dims=2, grid_convention="center")


def test_srgan_x4_has_two_subpixel_stages():
    model = build_model("srgan", scale=4, dims=2, grid_convention="center", n_feats=8, n_blocks=1)
    shuffles = [m for m in model.upsample if type(m).__name__ == "PixelShuffle"]
    assert [m.r for m in shuffles] == [2, 2]
    with torch.no_grad():
        assert model(torch.rand(1, 1, 5, 6)).shape == (1, 1, 20, 24)


def test_generators_are_2d_only():
    for arch in ("meta_srgan", "srgan"):
        with pytest.raises(ValueError, match="2D"):
            build_model(arch, scale=2, dims=3, grid_convention="center")


def test_normalisation_changes_the_trunk_input_and_survives_a_model_file(tmp_path):
    model = tiny_meta()
    with torch.no_grad():
        model.upscale.predictor[-1].weight.normal_()  # a non-trivial learned part
    x = torch.rand(1, 1, 6, 6)
    model.eval()
    with torch.no_grad():
        before = model(x, scale=2.0)
        model.set_normalization(0.3, 0.2)
        after = model(x, scale=2.0)
    assert not torch.allclose(before, after)
    save_model(tmp_path / "m.pt", model, arch="meta_srgan", args={"n_feats": 8, "n_blocks": 1, "hidden": 16},
               scale=4.0, dims=2, grid_convention="center", step=1, val_psnr=0.0)
    loaded = load_model(tmp_path / "m.pt")
    assert float(loaded.norm_mean) == pytest.approx(0.3) and float(loaded.norm_std) == pytest.approx(0.2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, scale=2.0), after)
    with pytest.raises(ValueError, match="std"):
        model.set_normalization(0.5, 0.0)


# ---------------------------------------------------------------------------- discriminator
def test_discriminator_gives_one_logit_per_image_for_any_size():
    torch.manual_seed(0)
    d = Discriminator(n_feats=8, n_stages=3, fc=16)
    for size in (24, 48, 40):
        logits = d(torch.rand(3, 1, size, size))
        assert logits.shape == (3,)
    p = d.probability(torch.rand(2, 1, 32, 32))
    assert torch.all((p > 0) & (p < 1))
    strides = [m.stride[0] for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert strides == [1, 2, 1, 2, 1, 2]  # SRGAN: stride-2 conv closing every stage
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.features) == 5
