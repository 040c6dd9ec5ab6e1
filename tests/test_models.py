"""mrisr.models: EDSR geometry, the convention-aware cubic residual, model files, registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrisr.errors import InputError
from mrisr.grid import Grid, cubic_upsample
from mrisr.models import build_model, count_parameters, load_model, register, registered, save_model
from mrisr.models import registry
from mrisr.models.common import CubicUpsample, SRModel, pixel_shuffle_nd, upsample_factors

TINY = {"n_feats": 8, "n_blocks": 2}


def tiny_edsr(scale: int, dims: int, convention: str = "center", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("edsr", scale=scale, dims=dims, grid_convention=convention, **{**TINY, **kw})


@pytest.mark.parametrize("dims,scale", [(2, 2), (2, 3), (2, 4), (3, 2), (3, 4)])
def test_edsr_output_shape(dims, scale):
    lr_shape = (5, 6, 4)[:dims]
    x = torch.rand(2, 1, *lr_shape)
    with torch.no_grad():
        y = tiny_edsr(scale, dims)(x)
    assert y.shape == (2, 1, *(n * scale for n in lr_shape))
    assert y.dtype == torch.float32


def test_upsampler_stages_follow_edsr():
    assert upsample_factors(2) == [2]
    assert upsample_factors(3) == [3]
    assert upsample_factors(4) == [2, 2]
    assert upsample_factors(8) == [2, 2, 2]


def test_pixel_shuffle_2d_is_torch_pixel_shuffle():
    x = torch.randn(2, 3 * 9, 4, 5)
    assert torch.equal(pixel_shuffle_nd(x, 3), F.pixel_shuffle(x, 3))


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_3d_matches_hand_written_reference(r):
    b, c, d, h, w = 2, 2, 3, 4, 2
    x = torch.randn(b, c * r**3, d, h, w)
    ref = torch.empty(b, c, d * r, h * r, w * r)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                for k in range(r):
                    ref[:, ch, i::r, j::r, k::r] = x[:, ch * r**3 + i * r * r + j * r + k]
    assert torch.equal(pixel_shuffle_nd(x, r), ref)


@pytest.mark.parametrize("convention", ["corner", "center"])
@pytest.mark.parametrize("dims,scale", [(2, 2), (2, 3), (3, 2), (3, 4)])
def test_cubic_upsample_equals_numpy_baseline(convention, dims, scale):
    rng = np.random.default_rng([dims, scale])
    lr_shape = (7, 5, 6)[:dims]
    lr = rng.random((3, *lr_shape)).astype(np.float32)
    hr_shape = tuple(n * scale for n in lr_shape)
    grid = Grid(convention=convention, axes=tuple(range(dims)), hr_shape=hr_shape, lr_shape=lr_shape)
    expected = np.stack([cubic_upsample(x, grid) for x in lr])
    got = CubicUpsample(scale, dims, convention)(torch.from_numpy(lr)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_cubic_upsample_conventions_differ_and_keep_constants():
    """Guards against a convention being ignored: the two grids give different samples,
    and both reproduce a constant image exactly (weights sum to one)."""
    x = torch.rand(1, 1, 6, 6)
    corner, center = CubicUpsample(2, 2, "corner")(x), CubicUpsample(2, 2, "center")(x)
    assert (corner - center).abs().max() > 1e-2
    # corner: LR sample i sits exactly on HR pixel 2i
    torch.testing.assert_close(corner[..., ::2, ::2], x)
    const = torch.full((1, 1, 4, 4, 4), 0.3)
    torch.testing.assert_close(CubicUpsample(3, 3, "center")(const), torch.full((1, 1, 12, 12, 12), 0.3))


@pytest.mark.parametrize("dims,scale,convention", [(2, 3, "center"), (2, 4, "corner"), (3, 2, "corner")])
def test_zero_tail_makes_edsr_the_cubic_upsample(dims, scale, convention):
    model = tiny_edsr(scale, dims, convention)
    torch.nn.init.zeros_(model.tail.weight)
    torch.nn.init.zeros_(model.tail.bias)
    x = torch.rand(2, 1, *(6,) * dims)
    with torch.no_grad():
        torch.testing.assert_close(model(x), CubicUpsample(scale, dims, convention)(x))


def test_non_integer_or_unit_scale_is_rejected():
    with pytest.raises(ValueError, match="integer"):
        build_model("edsr", scale=2.5, dims=2, grid_convention="center")
    with pytest.raises(ValueError, match="integer"):
        build_model("edsr", scale=1, dims=2, grid_convention="center")
    # 2.0 from an HDF5 float attribute is an integer scale
    assert build_model("edsr", scale=2.0, dims=2, grid_convention="center", **TINY) is not None


def test_bad_geometry_is_rejected():
    with pytest.raises(ValueError, match="dims"):
        build_model("edsr", scale=2, dims=4, grid_convention="center")
    with pytest.raises(ValueError, match="convention"):
        build_model("edsr", scale=2, dims=2, grid_convention="middle")


def test_edsr_baseline_parameter_count():
    """EDSR-baseline ×2 (64 feats, 16 blocks) for one channel, counted by hand:
    head 1→64, 33 convs 64→64, upsampler 64→256, tail 64→1 (3×3 kernels, biases)."""
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731
    expected = conv(1, 64) + 33 * conv(64, 64) + conv(64, 256) + conv(64, 1)
    model = build_model("edsr", scale=2, dims=2, grid_convention="center")
    assert count_parameters(model) == expected
    assert model.inputs == ("lr",)


def test_save_load_round_trip_weights_only(tmp_path):
    model = tiny_edsr(3, 2, "corner", res_scale=0.1)
    path = tmp_path / "m" / "model.pt"
    save_model(path, model, arch="edsr", args={**TINY, "res_scale": 0.1}, scale=3.0, dims=2,
               grid_convention="corner", step=7, val_psnr=31.5)
    record = torch.load(path, weights_only=True)  # plain data only
    assert record["arch"] == "edsr" and record["scale"] == 3 and record["step"] == 7
    assert json.loads(record["args"]) == {**TINY, "res_scale": 0.1}
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary left behind
    loaded = load_model(path)
    assert not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(1, 1, 5, 5)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(InputError, match=r"bad\.pt: not a model file"):
        load_model(bad)


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test are undone afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_registry_errors(scratch_registry):
    assert "edsr" in registered()
    with pytest.raises(ValueError, match="unknown model arch 'nope'.*edsr"):
        build_model("nope", scale=2, dims=2, grid_convention="center")
    with pytest.raises(ValueError, match=r"unknown args \['n_feets'\]"):
        build_model("edsr", scale=2, dims=2, grid_convention="center", n_feets=8)
    with pytest.raises(ValueError, match="already registered"):
        @register("edsr")
        class Other(SRModel):
            pass
    with pytest.raises(TypeError, match="inputs"):
        @register("no-inputs")
        class NoInputs(torch.nn.Module):
            pass
    assert "no-inputs" not in registered()


def test_registered_model_with_reference_input_plugs_in(scratch_registry):
    """A model consuming ("lr", "ref") registers and builds like EDSR (MINet's pattern)."""

    @register("test-ref-model")
    class RefModel(SRModel):
        inputs = ("lr", "ref")

        def __init__(self, *, scale, dims, grid_convention, gain: float = 1.0):
            super().__init__()
            self.up = CubicUpsample(scale, dims, grid_convention)
            self.gain = torch.nn.Parameter(torch.tensor(gain))

        def forward(self, lr, ref):
            return self.up(lr) + self.gain * ref

    model = build_model("test-ref-model", scale=2, dims=2, grid_convention="center", gain=0.5)
    batch = {"lr": torch.rand(1, 1, 4, 4), "ref": torch.rand(1, 1, 8, 8), "hr": torch.rand(1, 1, 8, 8)}
    out = model(**{k: batch[k] for k in model.inputs})
    assert out.shape == batch["hr"].shape
    torch.testing.assert_close(model.loss(out, batch), (out - batch["hr"]).abs().mean())
