"""Whole-volume inference and per-subject evaluation on tiny fake datasets."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mrisr.errors import InputError
from mrisr.evaluate.inference import super_resolve
from mrisr.evaluate.run import evaluate
from mrisr.grid import Grid, cubic_upsample, lr_size


# ---------------------------------------------------------------- stand-in models
class NearestUp(torch.nn.Module):
    """Nearest upsampling by an integer factor, 2D or 3D (a stand-in for a trained model)."""

    inputs = ("lr",)

    def __init__(self, factor: int, smooth: bool = False):
        super().__init__()
        self.factor = factor
        self.smooth = smooth
        self.bias = torch.nn.Parameter(torch.zeros(1))  # so count_parameters sees 1

    def forward(self, lr):
        up = torch.nn.functional.interpolate(lr, scale_factor=self.factor, mode="nearest")
        if self.smooth:  # a receptive field wider than one voxel, to exercise tile overlap
            pool = torch.nn.functional.avg_pool3d if up.ndim == 5 else torch.nn.functional.avg_pool2d
            up = pool(up, 5, stride=1, padding=2)
        return up + self.bias


class RefEcho(torch.nn.Module):
    """Returns the reference image: shows that ref reaches the model in the HR layout."""

    inputs = ("lr", "ref")

    def forward(self, lr, ref):
        assert ref.shape[0] == lr.shape[0] and ref.shape[2:] == tuple(2 * n for n in lr.shape[2:])
        return ref * 1.0


def make_grid(hr_shape, axes, scale=2, convention="center") -> Grid:
    lr_shape = tuple(lr_size(n, scale) if a in axes else n for a, n in enumerate(hr_shape))
    return Grid(convention=convention, axes=tuple(axes), hr_shape=tuple(hr_shape), lr_shape=lr_shape)


def block_mean(hr: np.ndarray, axes, f=2) -> np.ndarray:
    """Simple LR: mean of f samples along each degraded axis."""
    out = hr
    for a in axes:
        shp = list(out.shape)
        shp[a : a + 1] = [shp[a] // f, f]
        out = out.reshape(shp).mean(axis=a + 1)
    return out.astype(np.float32)


# ---------------------------------------------------------------- super_resolve
@pytest.mark.parametrize("convention", ["center", "corner"])
def test_bicubic_path_equals_cubic_upsample(convention):
    rng = np.random.default_rng(0)
    grid = make_grid((24, 18, 3, 5), (0, 1), convention=convention)
    lr = rng.random(grid.lr_shape).astype(np.float32)
    for method in ("bicubic", "BICUBIC"):
        sr = super_resolve(lr, grid, method)
        assert sr.dtype == np.float32 and sr.shape == grid.hr_shape
        np.testing.assert_array_equal(sr, cubic_upsample(lr, grid))


def test_model_path_restores_cine_layout():
    rng = np.random.default_rng(1)
    grid = make_grid((20, 16, 3, 4), (0, 1))
    lr = rng.random(grid.lr_shape).astype(np.float32)
    sr = super_resolve(lr, grid, "edsr", model=NearestUp(2), batch_size=5)  # 12 images → 3 batches
    assert sr.shape == grid.hr_shape and sr.dtype == np.float32
    np.testing.assert_array_equal(sr, np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1))


def test_model_path_other_axes_and_ref():
    rng = np.random.default_rng(2)
    grid = make_grid((3, 20, 4, 16), (1, 3))
    lr = rng.random(grid.lr_shape).astype(np.float32)
    sr = super_resolve(lr, grid, "m", model=NearestUp(2), batch_size=4)
    np.testing.assert_array_equal(sr, np.repeat(np.repeat(lr, 2, axis=1), 2, axis=3))
    ref = rng.random(grid.hr_shape).astype(np.float32)
    np.testing.assert_array_equal(super_resolve(lr, grid, "m", model=RefEcho(), ref=ref), ref)
    with pytest.raises(ValueError, match="ref"):
        super_resolve(lr, grid, "m", model=RefEcho())


def test_model_path_3d_volume():
    rng = np.random.default_rng(3)
    grid = make_grid((16, 12, 20), (0, 1, 2))
    lr = rng.random(grid.lr_shape).astype(np.float32)
    sr = super_resolve(lr, grid, "m", model=NearestUp(2))
    assert sr.shape == grid.hr_shape
    np.testing.assert_array_equal(sr, lr.repeat(2, 0).repeat(2, 1).repeat(2, 2))


def test_3d_tiling_equals_whole_volume():
    rng = np.random.default_rng(4)
    grid = make_grid((88, 72, 40), (0, 1, 2))  # LR 44×36×20: 2×2×1 tiles of 32 LR
    lr = rng.random(grid.lr_shape).astype(np.float32)
    model = NearestUp(2, smooth=True)
    whole = super_resolve(lr, grid, "m", model=model, tile_voxels=None)
    tiled = super_resolve(lr, grid, "m", model=model, tile_voxels=1)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


class CountingUp(NearestUp):
    """NearestUp(2, smooth) that counts its forward passes (the probe included)."""

    def __init__(self):
        super().__init__(2, smooth=True)
        self.calls = 0

    def forward(self, lr):
        self.calls += 1
        return super().forward(lr)


@pytest.mark.parametrize("free_bytes, passes", [(10**11, 1 + 1), (10**6, 1 + 4)])  # probe + volume / 2×2×1 tiles
def test_3d_tiles_sized_from_available_memory(monkeypatch, free_bytes, passes):
    """Default tiling: one pass when the volume fits the memory free, tiles when it does
    not; the output is the whole-volume output either way."""
    from mrisr.evaluate import inference

    rng = np.random.default_rng(5)
    grid = make_grid((88, 72, 40), (0, 1, 2))
    lr = rng.random(grid.lr_shape).astype(np.float32)
    whole = super_resolve(lr, grid, "m", model=NearestUp(2, smooth=True), tile_voxels=None)
    monkeypatch.setattr(inference, "available_memory", lambda device: free_bytes)
    model = CountingUp()
    auto = super_resolve(lr, grid, "m", model=model)
    assert model.calls == passes
    np.testing.assert_allclose(auto, whole, atol=1e-6)


def test_tile_core_grows_with_the_budget():
    from mrisr.evaluate.inference import TILE_CORE_LR, TILE_OVERLAP_LR, tile_core_lr

    assert tile_core_lr(1, (2, 2, 2)) == TILE_CORE_LR  # never below the least core
    edge = 100 + 2 * TILE_OVERLAP_LR
    assert tile_core_lr(edge**3 * 8, (2, 2, 2)) == 100  # tile = core + context, in HR voxels


def test_probe_measures_feature_maps():
    """A 3D conv net at LR resolution: its LIVE_MAPS (3) largest outputs, 32 + 32 + 8
    float32 channels per LR voxel = 72·4/8 B per HR voxel at ×2, times the safety margin."""
    from mrisr.evaluate.inference import LIVE_MAPS, SAFETY, bytes_per_hr_voxel

    class Net(torch.nn.Module):
        inputs = ("lr",)

        def __init__(self):
            super().__init__()
            self.head, self.body = torch.nn.Conv3d(1, 32, 3, padding=1), torch.nn.Conv3d(32, 32, 3, padding=1)
            self.tail = torch.nn.Conv3d(32, 8, 3, padding=1)

        def forward(self, lr):
            x = self.tail(self.body(self.head(lr)))  # 8 = 2³ channels → one HR voxel each
            return x.reshape(1, 1, *[2 * n for n in lr.shape[2:]])

    got = bytes_per_hr_voxel(Net(), (2, 2, 2), "cpu", with_ref=False)
    assert LIVE_MAPS == 3 and got == pytest.approx(SAFETY * (32 + 32 + 8) * 4 / 8)


def test_wrong_lr_shape_raises():
    grid = make_grid((16, 16), (0, 1))
    with pytest.raises(ValueError, match="LR shape"):
        super_resolve(np.zeros((8, 9), np.float32), grid, "bicubic")


# ---------------------------------------------------------------- evaluate end-to-end
SUBJECTS = ["s02", "s01", "s03"]  # unsorted on purpose


def write_fake_dataset(root: Path, hr_shape=(24, 24, 2, 3), axes=(0, 1), ref_series=None) -> dict:
    """prepared/{s}/cine.nii.gz HR + lr/x2/{s}.nii.gz + sidecars + split.json."""
    rng = np.random.default_rng(5)
    lr_dir = root / "lr" / "x2"
    lr_dir.mkdir(parents=True)
    affine = np.diag([1.5, 1.25, 8.0, 1.0])
    affine[:3, 3] = [-10, 5, 2]
    hrs = {}
    for s in SUBJECTS:
        grids = np.meshgrid(*[np.linspace(0, 1, n) for n in hr_shape], indexing="ij")
        hr = np.clip(0.5 * grids[0] + 0.3 * np.sin(6 * grids[1]) ** 2 + 0.1 * rng.random(hr_shape), 0, 1)
        hr = hr.astype(np.float32)
        hr_path = root / "prepared" / s / "cine.nii.gz"
        hr_path.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(hr, affine), str(hr_path))
        if ref_series:
            nib.save(nib.Nifti1Image(1 - hr, affine), str(hr_path.with_name(f"{ref_series}.nii.gz")))
        lr = block_mean(hr, axes)
        grid = make_grid(hr_shape, axes)
        nib.save(nib.Nifti1Image(lr, np.eye(4)), str(lr_dir / f"{s}.nii.gz"))
        side = {
            "dataset": "fake", "subject": s, "series": "cine", "hr_source": str(hr_path),
            "hr_shape": list(hr.shape), "lr_shape": list(lr.shape), "mode": "bicubic", "scale": 2.0,
            "window": "none", "grid": grid.to_json(),
        }
        (lr_dir / f"{s}.json").write_text(json.dumps(side))
        hrs[s] = (hr, lr, grid)
    (root / "split.json").write_text(json.dumps({"train": [], "val": [], "test": SUBJECTS}))
    return {"lr_dir": lr_dir, "split": root / "split.json", "hrs": hrs, "affine": affine}


from mrisr.evaluate.roi import detect_heart_roi  # noqa: E402
from mrisr.evaluate.run import widen  # noqa: E402


def test_widen_keeps_inside_and_reaches_size():
    from mrisr.evaluate.run import widen as w

    assert w(slice(10, 20), 11, 100) == slice(10, 21)
    assert w(slice(0, 3), 11, 100) == slice(0, 11)
    assert w(slice(95, 100), 11, 100) == slice(89, 100)
    assert w(slice(40, 60), 11, 100) == slice(40, 60)


def sk_ssim2d(x, ref):
    return structural_similarity(x, ref, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def test_evaluate_bicubic_end_to_end(tmp_path):
    fake = write_fake_dataset(tmp_path)
    out = tmp_path / "eval"
    evaluate("bicubic", None, fake["split"], fake["lr_dir"], out, "fake", "cine2d", 2.0)

    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    # a 4D cine also gets PSNR/SSIM inside the detected heart ROI
    assert list(rows[0].keys()) == ["subject", "psnr", "ssim", "nmse", "cardiac_psnr", "cardiac_ssim"]
    assert [r["subject"] for r in rows] == sorted(SUBJECTS)
    for r in rows:  # independent recomputation with scikit-image
        hr, lr, grid = fake["hrs"][r["subject"]]
        sr = np.clip(cubic_upsample(lr, grid), 0, 1)
        assert float(r["psnr"]) == pytest.approx(peak_signal_noise_ratio(hr, sr, data_range=1), abs=1e-9)  # float32 as stored
        per_image = [sk_ssim2d(sr[:, :, k, t].astype(np.float64), hr[:, :, k, t].astype(np.float64))
                     for k in range(hr.shape[2]) for t in range(hr.shape[3])]
        assert float(r["ssim"]) == pytest.approx(np.mean(per_image), abs=1e-9)
        assert float(r["nmse"]) == pytest.approx(np.sum((sr - hr) ** 2.0) / np.sum(hr**2.0), rel=1e-6)
        rx, ry = (widen(sl, 11, n) for sl, n in zip(detect_heart_roi(hr), hr.shape[:2]))
        assert float(r["cardiac_psnr"]) == pytest.approx(
            peak_signal_noise_ratio(hr[rx, ry], sr[rx, ry], data_range=1), abs=1e-9)
        saved = nib.load(str(out / "sr" / f"{r['subject']}.nii.gz"))
        np.testing.assert_allclose(saved.affine, fake["affine"])
        np.testing.assert_array_equal(np.asarray(saved.dataobj), sr)

    meta = json.loads((out / "meta.json").read_text())
    assert meta == {"dataset": "fake", "task": "cine2d", "scale": 2.0, "method": "bicubic",
                    "n_params": 0, "model": None, "n_subjects": 3, "overrides": {}}

    hr, lr, grid = fake["hrs"]["s01"]  # first test subject in sorted order
    with np.load(out / "example.npz") as ex:
        assert sorted(ex.files) == ["hr", "lr", "sr"]
        for k in ("lr", "sr", "hr"):
            assert ex[k].shape == (24, 24) and ex[k].dtype == np.float32
        np.testing.assert_array_equal(ex["hr"], hr[:, :, 1, 1])
        np.testing.assert_array_equal(ex["lr"], np.repeat(np.repeat(lr[:, :, 1, 1], 2, 0), 2, 1))
        np.testing.assert_array_equal(ex["sr"], np.clip(cubic_upsample(lr, grid), 0, 1)[:, :, 1, 1])


def test_evaluate_3d_uses_volume_ssim_and_central_slice(tmp_path):
    fake = write_fake_dataset(tmp_path, hr_shape=(24, 24, 24), axes=(0, 1, 2))
    out = tmp_path / "eval"
    evaluate("tricubic", None, fake["split"], fake["lr_dir"], out, "fake", "brain3d", 2, save_sr=False)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    hr, lr, grid = fake["hrs"][rows[0]["subject"]]
    sr = np.clip(cubic_upsample(lr, grid), 0, 1).astype(np.float64)
    expected = structural_similarity(sr, hr.astype(np.float64), data_range=1, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert float(rows[0]["ssim"]) == pytest.approx(expected, abs=1e-9)
    assert not (out / "sr").exists()
    with np.load(out / "example.npz") as ex:
        np.testing.assert_array_equal(ex["hr"], hr[:, :, 12])
        # HR slice 12 sits at LR position (12 + 0.5) / 2 - 0.5 = 5.75 → nearest LR slice 6
        np.testing.assert_array_equal(ex["lr"], lr[:, :, 6].repeat(2, 0).repeat(2, 1))


def test_evaluate_model_with_reference(tmp_path, monkeypatch):
    """Model path through a stand-in mrisr.models (load_model / count_parameters)."""
    fake = write_fake_dataset(tmp_path, ref_series="t1")
    stub = types.ModuleType("mrisr.models")
    stub.load_model = lambda path, device="cpu": RefEcho() if "ref" in Path(path).name else NearestUp(2)
    stub.count_parameters = lambda m: sum(p.numel() for p in m.parameters())
    monkeypatch.setitem(sys.modules, "mrisr.models", stub)
    model_file = tmp_path / "model_ref.pt"
    model_file.write_bytes(b"stub")
    out = tmp_path / "eval_ref"
    evaluate("MCSR", model_file, fake["split"], fake["lr_dir"], out, "fake", "multicontrast", 2,
             reference_series="t1")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["method"] == "mcsr" and meta["model"] == str(model_file) and meta["n_params"] == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    hr, _, _ = fake["hrs"][rows[0]["subject"]]
    sr = nib.load(str(out / "sr" / f"{rows[0]['subject']}.nii.gz")).get_fdata()
    np.testing.assert_allclose(sr, 1 - hr, atol=1e-6)  # SR is the reference contrast, layout intact

    model_file2 = tmp_path / "model.pt"
    model_file2.write_bytes(b"stub")
    evaluate("edsr", model_file2, fake["split"], fake["lr_dir"], tmp_path / "e2", "fake", "cine2d", 2)
    assert json.loads((tmp_path / "e2" / "meta.json").read_text())["n_params"] == 1


def test_evaluate_missing_hr_raises_input_error(tmp_path):
    fake = write_fake_dataset(tmp_path)
    missing = tmp_path / "prepared" / "s02" / "cine.nii.gz"
    missing.unlink()
    out = tmp_path / "eval"
    with pytest.raises(InputError, match="s02/cine.nii.gz"):
        evaluate("bicubic", None, fake["split"], fake["lr_dir"], out, "fake", "cine2d", 2)
    assert not (out / "metrics.csv").exists()  # completion marker never written on failure


def test_evaluate_shape_mismatch_and_missing_lr(tmp_path):
    fake = write_fake_dataset(tmp_path)
    side_path = fake["lr_dir"] / "s01.json"
    side = json.loads(side_path.read_text())
    side["hr_shape"] = [24, 24, 2, 4]
    side_path.write_text(json.dumps(side))
    with pytest.raises(InputError, match="cine.nii.gz.*HR shape"):
        evaluate("bicubic", None, fake["split"], fake["lr_dir"], tmp_path / "e", "fake", "cine2d", 2)
    (fake["lr_dir"] / "s01.nii.gz").unlink()
    with pytest.raises(InputError, match="s01.nii.gz"):
        evaluate("bicubic", None, fake["split"], fake["lr_dir"], tmp_path / "e", "fake", "cine2d", 2)
