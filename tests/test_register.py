"""Rigid registration (Mattes MI, Euler3D): recovers a known motion of the built-in head volume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from mrisr.datasets.synth_volume import generate_volume
from mrisr.degrade.motion import apply_motion
from mrisr.degrade.pipeline import degrade_file
from mrisr.degrade.register import register_rigid, register_to_lr_file
from mrisr.errors import InputError
from mrisr.io import read_nifti, write_nifti

SPACING = (0.7, 0.7, 0.7)
# Near the top of the UDEAN protocol's ranges (0–2° about Z and X, 0–2 voxels along RL and HF), no shrink.
MOTION = {"rot_z_deg": 1.7, "rot_x_deg": -1.4, "trans_x_vox": 1.6, "trans_z_vox": -1.3,
          "shrink_y_vox": 0.0, "shrink_x_vox": 0.0}


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    """The synthetic HCP-like T1w head (the pipeline's built-in volume), scaled to [0, 1]."""
    v = generate_volume(np.random.default_rng(0), {"shape": [48, 56, 48], "spacing": list(SPACING)}).image
    return (v / v.max()).astype(np.float32)


def assert_recovers(params: dict, motion: dict, deg: float, vox: float) -> None:
    expected = {"rot_x_deg": motion["rot_x_deg"], "rot_y_deg": 0.0, "rot_z_deg": motion["rot_z_deg"],
                "trans_x_vox": motion["trans_x_vox"], "trans_y_vox": 0.0, "trans_z_vox": motion["trans_z_vox"]}
    for key, want in expected.items():
        tol = deg if key.endswith("_deg") else vox
        assert abs(params[key] - want) <= tol, f"{key}: got {params[key]:.3f}, expected {want:.3f} ± {tol}"


def test_recovers_a_known_rigid_motion(head):
    moved = apply_motion(head, SPACING, MOTION)
    aligned, params = register_rigid(head, moved, SPACING)
    assert_recovers(params, MOTION, deg=0.2, vox=0.2)
    # The aligned volume is back on the fixed image: the residual shrinks to interpolation level.
    inner = (slice(4, -4),) * 3
    before = np.abs(moved - head)[inner].mean()
    after = np.abs(aligned - head)[inner].mean()
    assert aligned.shape == head.shape and aligned.dtype == np.float32
    assert after < 0.25 * before
    assert params["trans_mm"][0] == pytest.approx(params["trans_x_vox"] * SPACING[0])


def test_same_inputs_same_result_and_bad_shapes(head):
    moved = apply_motion(head, SPACING, MOTION)
    sub = (slice(8, 40), slice(8, 48), slice(8, 40))
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    a1, p1 = register_rigid(head[sub], moved[sub], SPACING)
    a2, p2 = register_rigid(head[sub], moved[sub], SPACING)
    # Seeded metric sampling and one thread in every ITK filter of the registration: bit for bit.
    # (With the pyramid's filters on the global default thread count, the angles differed ~1e-7°.)
    np.testing.assert_array_equal(a1, a2)
    assert p1 == p2
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads  # restored for the caller
    with pytest.raises(ValueError, match="one grid"):
        register_rigid(head, head[:-1], SPACING)
    with pytest.raises(ValueError, match="spacing"):
        register_rigid(head, head, (0.7, 0.7))


def test_register_moved_hr_onto_its_lr_file(head, tmp_path):
    """The benchmark's use: moving = moved HR, fixed = the subject's k-space-truncated LR."""
    affine = np.diag([*SPACING, 1.0])
    write_nifti(tmp_path / "hr.nii.gz", head, affine)
    degrade_file(tmp_path / "hr.nii.gz", tmp_path / "lr.nii.gz", "truncate", 2, (0, 1, 2), "none",
                 {"dataset": "d", "subject": "s", "series": "t1w"})
    write_nifti(tmp_path / "moved.nii.gz", apply_motion(head, SPACING, MOTION), affine)
    params = register_to_lr_file(tmp_path / "lr.nii.gz", tmp_path / "moved.nii.gz", tmp_path / "reg.nii.gz")
    # Fixed is a blurred (×2 truncated, cubic-upsampled) copy: still within a quarter degree/voxel.
    assert_recovers(params, MOTION, deg=0.25, vox=0.25)
    aligned, out_affine = read_nifti(tmp_path / "reg.nii.gz", canonical=False)
    assert aligned.shape == head.shape and np.allclose(out_affine, affine)
    assert json.loads((tmp_path / "reg.json").read_text())["params"]["rot_z_deg"] == params["rot_z_deg"]
    with pytest.raises(InputError, match="moving_small"):
        write_nifti(tmp_path / "moving_small.nii.gz", head[:-2], affine)
        register_to_lr_file(tmp_path / "lr.nii.gz", tmp_path / "moving_small.nii.gz", tmp_path / "x.nii.gz")
