"""degrade_array / degrade_file: grid alignment (the key test), shapes, affine, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.registration import phase_cross_correlation

from mrisr.degrade import MODES, degrade_array, degrade_file, lr_affine
from mrisr.degrade.resize import antialias_cubic_matrix, cubic_downsample
from mrisr.errors import InputError
from mrisr.grid import Grid, axis_grid, cubic_upsample
from mrisr.io import read_nifti, write_nifti

BLOBS = [  # (centre as fraction of the size per axis, sigma fraction, amplitude): asymmetric, not periodic
    ((0.40, 0.45, 0.50), 0.08, 1.0),
    ((0.60, 0.55, 0.45), 0.12, 0.7),
    ((0.50, 0.35, 0.60), 0.05, -0.5),
]


def smooth_image(shape: tuple[int, ...]) -> np.ndarray:
    """Sum of Gaussians well inside the field of view (smooth, ~0 at the borders)."""
    n = max(shape)
    coords = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    img = np.zeros(shape)
    for centre, sigma, amp in BLOBS:
        r2 = sum((c - f * s) ** 2 for c, f, s in zip(coords, centre, shape))
        img += amp * np.exp(-r2 / (2 * (sigma * n) ** 2))
    return img.astype(np.float32)


def measured_shift(hr: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Sub-pixel shift of `up` versus `hr` on the central region.  Plain cross-
    correlation (normalization=None): phase normalisation would whiten the
    empty high band of smooth images into noise."""
    region = tuple(slice(s // 5, s - s // 5) for s in hr.shape)
    shift, _, _ = phase_cross_correlation(hr[region], up[region], upsample_factor=200, normalization=None)
    return np.asarray(shift)


def other_convention(grid: Grid) -> Grid:
    wrong = {"corner": "center", "center": "corner"}[grid.convention]
    return Grid(wrong, grid.axes, grid.hr_shape, grid.lr_shape)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scale", [2, 3, 4, 2.5])
@pytest.mark.parametrize("n", [120, 118])
def test_grid_alignment_2d(mode, scale, n):
    hr = smooth_image((n, n))
    if mode == "nearest" and (scale != int(scale) or n % scale):  # exact only for divisible integer scales: refused
        with pytest.raises(ValueError, match="nearest"):
            degrade_array(hr, mode, scale, (0, 1))
        return
    lr, grid = degrade_array(hr, mode, scale, (0, 1))
    assert np.abs(measured_shift(hr, cubic_upsample(lr, grid))).max() < 0.05


@pytest.mark.parametrize("mode", MODES)
def test_grid_alignment_3d(mode):
    hr = smooth_image((48, 48, 48))
    lr, grid = degrade_array(hr, mode, 2, (0, 1, 2))
    assert lr.shape == (24, 24, 24)
    assert np.abs(measured_shift(hr, cubic_upsample(lr, grid))).max() < 0.05


@pytest.mark.parametrize("mode", MODES)
def test_wrong_convention_is_detectably_shifted(mode):
    hr = smooth_image((120, 120))
    lr, grid = degrade_array(hr, mode, 4, (0, 1))
    assert np.abs(measured_shift(hr, cubic_upsample(lr, other_convention(grid)))).min() > 0.2


@pytest.mark.parametrize("mode", MODES)
def test_scale_one_is_exact_copy(mode):
    x = np.random.default_rng(0).random((10, 12, 3), dtype=np.float32)
    lr, grid = degrade_array(x, mode, 1, (0, 1))
    assert lr.dtype == np.float32 and lr is not x
    np.testing.assert_array_equal(lr, x)
    assert grid.lr_shape == grid.hr_shape == x.shape


@pytest.mark.parametrize("mode,convention", [("truncate", "corner"), ("lowpass_bicubic", "center"), ("bicubic", "center")])
def test_shapes_dtype_and_grid_non_integer_scale(mode, convention):
    x = np.random.default_rng(1).random((97, 40, 5))  # float64 in, float32 out
    lr, grid = degrade_array(x, mode, 2.5, (0, 1))
    assert lr.dtype == np.float32 and lr.shape == (39, 16, 5)
    assert grid == Grid(convention, (0, 1), (97, 40, 5), (39, 16, 5))


@pytest.mark.parametrize("mode", MODES)
def test_cine_4d_per_frame_equals_2d(mode):
    x = np.random.default_rng(2).random((24, 20, 2, 3), dtype=np.float32)
    lr, grid = degrade_array(x, mode, 2, (0, 1))
    assert lr.shape == (12, 10, 2, 3) and grid.axes == (0, 1)
    for z in range(2):
        for t in range(3):
            frame, _ = degrade_array(x[:, :, z, t], mode, 2, (0, 1))
            np.testing.assert_allclose(lr[:, :, z, t], frame, atol=1e-5)


def test_antialias_matrix_matches_matlab_half_scale_kernel():
    """MATLAB imresize(…, 0.5, 'bicubic') weights: Keys(a=-0.5) at ±0.25, ±0.75,
    ±1.25, ±1.75 (the kernel stretched ×2), normalised: hand-computed values."""
    half = np.array([0.8671875, 0.2265625, -0.0703125, -0.0234375])
    want = np.concatenate([half[::-1], half]) / 2.0
    mat = antialias_cubic_matrix(axis_grid("center", 40, 20), 40, 20)
    np.testing.assert_allclose(mat[5, 7:15], want, atol=1e-12)  # LR 5 sits at HR 10.5
    np.testing.assert_allclose(mat.sum(axis=1), 1.0, atol=1e-12)


def test_both_cubic_modes_suppress_frequencies_above_lr_nyquist():
    """cos at 0.4 cycles/px is above the LR Nyquist (0.25) at s=2.  Plain cubic
    sampling keeps ~45% of it (control: the test can fail); MATLAB-style
    antialiasing keeps ~3%; the k-space low-pass removes it."""
    x = np.repeat(np.cos(2 * np.pi * 0.4 * np.arange(80))[:, None], 4, axis=1)
    grid = Grid("center", (0,), x.shape, (40, 4))
    def amplitude(lr: np.ndarray) -> float:
        return float(np.abs(lr[6:-6, 0]).max())

    assert amplitude(cubic_downsample(x, grid, antialias=False)) > 0.3
    assert amplitude(degrade_array(x, "bicubic", 2, (0,))[0]) < 0.06
    assert amplitude(degrade_array(x, "lowpass_bicubic", 2, (0,))[0]) < 1e-5


def world(affine: np.ndarray, ijk) -> np.ndarray:
    return (affine @ np.append(np.asarray(ijk, dtype=np.float64), 1.0))[:3]


@pytest.mark.parametrize("mode", [m for m in MODES if m != "nearest"])  # nearest: 30 % 4 (test_udean_groups.py)
def test_lr_affine_maps_lr_voxels_to_hr_positions(mode):
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    hr_affine = np.eye(4)
    hr_affine[:3, :3] = rot @ np.diag([1.2, 0.8, 2.5])
    hr_affine[:3, 3] = [-10.0, 4.0, 7.5]
    _, grid = degrade_array(np.zeros((40, 30, 6), np.float32), mode, 4, (0, 1))
    step = np.array([40 / 10, 30 / 8, 1.0])  # lr_size(30, 4) = 8
    offset = np.zeros(3) if mode == "truncate" else np.array([(step[0] - 1) / 2, (step[1] - 1) / 2, 0.0])
    lr_aff = lr_affine(hr_affine, grid)
    for ijk in [(0, 0, 0), (3, 5, 2), (9, 7, 5)]:
        hr_coord = offset + np.array(ijk) * step
        np.testing.assert_allclose(world(lr_aff, ijk), world(hr_affine, hr_coord), atol=1e-12)


def test_lr_affine_rejects_time_axis():
    g = Grid("corner", (3,), (4, 4, 4, 8), (4, 4, 4, 4))
    with pytest.raises(ValueError, match="spatial"):
        lr_affine(np.eye(4), g)


META = {"dataset": "synth", "subject": "s01", "series": "t1", "extra": "ignored"}


def test_degrade_file_writes_nifti_then_sidecar(tmp_path):
    hr = smooth_image((24, 24, 12))
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    hr_path = tmp_path / "prepared" / "s01" / "t1.nii.gz"
    write_nifti(hr_path, hr, affine)
    out = tmp_path / "lr" / "truncate" / "x2" / "s01.nii.gz"
    degrade_file(hr_path, out, "truncate", 2, (0, 1, 2), "hamming", META)

    lr, lr_aff = read_nifti(out, canonical=False)
    want, grid = degrade_array(hr, "truncate", 2, (0, 1, 2), window="hamming")
    np.testing.assert_allclose(lr, want, atol=1e-6)
    np.testing.assert_allclose(lr_aff, lr_affine(affine, grid), atol=1e-6)
    side = json.loads((out.parent / "s01.json").read_text())
    assert set(side) == {"dataset", "subject", "series", "hr_source", "hr_shape", "lr_shape", "mode", "scale",
                         "window", "grid"}
    assert side["hr_shape"] == [24, 24, 12] and side["lr_shape"] == [12, 12, 6]
    assert (side["mode"], side["scale"], side["window"]) == ("truncate", 2.0, "hamming")
    assert Grid.from_json(side["grid"]) == grid
    assert side["hr_source"] == str(hr_path) and side["subject"] == "s01"
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_degrade_file_cine_and_bad_inputs(tmp_path):
    hr_path = tmp_path / "cine.nii.gz"
    write_nifti(hr_path, np.random.default_rng(3).random((24, 24, 2, 5), dtype=np.float32), np.eye(4))
    out = tmp_path / "lr.nii.gz"
    degrade_file(hr_path, out, "lowpass_bicubic", 3, (0, 1), "none", META)
    assert read_nifti(out, canonical=False)[0].shape == (8, 8, 2, 5)
    with pytest.raises(InputError, match="non-spatial"):
        degrade_file(hr_path, tmp_path / "bad.nii.gz", "truncate", 2, (0, 3), "none", META)
    with pytest.raises(InputError, match="not found"):
        degrade_file(tmp_path / "missing.nii.gz", out, "truncate", 2, (0, 1), "none", META)
    with pytest.raises(ValueError, match="meta lacks"):
        degrade_file(hr_path, out, "truncate", 2, (0, 1), "none", {"dataset": "d"})
    with pytest.raises(ValueError, match="mode"):
        degrade_file(hr_path, out, "area", 2, (0, 1), "none", META)
