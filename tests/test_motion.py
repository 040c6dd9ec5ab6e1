"""Motion simulation: parameter draws (ranges, determinism) and the resampling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrisr.degrade.motion import apply_motion, draw_motion, motion_file, motion_rng
from mrisr.errors import InputError
from mrisr.io import read_nifti, write_nifti

ZERO = {"rot_z_deg": 0.0, "rot_x_deg": 0.0, "trans_x_vox": 0.0, "trans_z_vox": 0.0, "shrink_y_vox": 0.0,
        "shrink_x_vox": 0.0}
KEYS = set(ZERO)


def blob(shape=(32, 30, 28), centre=(15.5, 14.0, 13.5), sigma=(4.0, 3.0, 3.5)) -> np.ndarray:
    coords = np.indices(shape, dtype=np.float64)
    r2 = sum(((c - m) / s) ** 2 for c, m, s in zip(coords, centre, sigma))
    return np.exp(-r2 / 2).astype(np.float32)


def centre_of_mass(v: np.ndarray) -> np.ndarray:
    coords = np.indices(v.shape, dtype=np.float64)
    return np.array([(c * v).sum() / v.sum() for c in coords])


def test_draws_lie_within_ranges():
    rng = np.random.default_rng(0)
    draws = [draw_motion(rng, {}) for _ in range(200)]
    for d in draws:
        assert set(d) == KEYS and all(type(v) is float for v in d.values())
        assert all(0.0 <= abs(v) <= 2.0 for v in d.values())
        assert d["shrink_x_vox"] >= 0 and d["shrink_y_vox"] >= 0
    assert any(d["rot_z_deg"] < 0 for d in draws) and any(d["rot_z_deg"] > 0 for d in draws)
    custom = draw_motion(rng, {"rot_deg": [3.0, 4.0], "trans_vox": [0.0, 0.0]})
    assert 3.0 <= abs(custom["rot_x_deg"]) <= 4.0 and custom["trans_x_vox"] == 0.0


def test_draws_reproducible_per_seed_and_subject():
    a = draw_motion(motion_rng(7, "sub-01"), {})
    assert a == draw_motion(motion_rng(7, "sub-01"), {})
    assert a != draw_motion(motion_rng(7, "sub-02"), {})
    assert a != draw_motion(motion_rng(8, "sub-01"), {})


def test_bad_ranges_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown"):
        draw_motion(rng, {"rotation": [0, 1]})
    with pytest.raises(ValueError, match="lo <= hi"):
        draw_motion(rng, {"rot_deg": [2, 1]})


def test_zero_motion_is_identity():
    v = blob()
    np.testing.assert_allclose(apply_motion(v, (1.0, 1.2, 2.0), ZERO), v, atol=1e-4)


@pytest.mark.parametrize("key,axis", [("trans_x_vox", 0), ("trans_z_vox", 2)])
def test_one_voxel_translation_moves_centre_of_mass_by_one_voxel(key, axis):
    v = blob()
    spacing = (0.8, 1.2, 2.5)  # anisotropic: translations are in voxels, not mm
    moved = apply_motion(v, spacing, {**ZERO, key: 1.0})
    want = np.zeros(3)
    want[axis] = 1.0
    np.testing.assert_allclose(centre_of_mass(moved) - centre_of_mass(v), want, atol=0.02)


def test_shrink_shortens_object_extent_by_given_voxels():
    v = np.zeros((40, 40, 8), np.float32)
    v[10:30, 8:32, 2:6] = 1.0  # 20 voxels along x, 24 along y
    moved = apply_motion(v, (1.0, 1.0, 1.0), {**ZERO, "shrink_x_vox": 2.0, "shrink_y_vox": 3.0})
    # mass scales with the Jacobian of the shrink: (18/20) * (21/24)
    assert moved.sum() / v.sum() == pytest.approx(0.9 * 0.875, rel=0.01)
    np.testing.assert_allclose(centre_of_mass(moved), centre_of_mass(v), atol=0.02)


def principal_angle_deg(v: np.ndarray, plane: tuple[int, int]) -> float:
    coords = np.indices(v.shape, dtype=np.float64)
    c = centre_of_mass(v)
    a, b = (coords[k] - c[k] for k in plane)
    cov = np.array([[(v * a * a).sum(), (v * a * b).sum()], [(v * a * b).sum(), (v * b * b).sum()]])
    w, vec = np.linalg.eigh(cov)
    major = vec[:, np.argmax(w)]
    return float(np.degrees(np.arctan2(major[1], major[0])) % 180.0)


@pytest.mark.parametrize("key,plane", [("rot_z_deg", (0, 1)), ("rot_x_deg", (1, 2))])
def test_rotation_turns_the_object_in_its_plane(key, plane):
    sigma = [2.0, 2.0, 2.0]
    sigma[plane[0]] = 7.0  # elongated along the first axis of the plane
    v = blob(shape=(40, 40, 40), centre=(19.5, 19.5, 19.5), sigma=tuple(sigma))
    moved = apply_motion(v, (1.0, 1.0, 1.0), {**ZERO, key: 10.0})
    angle = principal_angle_deg(moved, plane)
    assert min(angle, 180.0 - angle) == pytest.approx(10.0, abs=0.5)


def test_motion_file_writes_moved_volume_and_params(tmp_path):
    v = blob()
    affine = np.diag([1.0, 1.2, 2.0, 1.0])
    hr = tmp_path / "prepared" / "sub-01" / "t1.nii.gz"
    write_nifti(hr, v, affine)
    out = tmp_path / "motion" / "sub-01.nii.gz"
    motion_file(hr, out, {}, 3, "sub-01", {"dataset": "synth", "series": "t1"})
    moved, out_affine = read_nifti(out, canonical=False)
    params = draw_motion(motion_rng(3, "sub-01"), {})
    np.testing.assert_allclose(moved, apply_motion(v, (1.0, 1.2, 2.0), params), atol=1e-6)
    np.testing.assert_allclose(out_affine, affine)
    side = json.loads((out.parent / "sub-01.json").read_text())
    assert side["params"] == params and side["seed"] == 3 and side["subject"] == "sub-01"
    assert side["ranges"]["rot_deg"] == [0.0, 2.0]


def test_motion_file_rejects_4d(tmp_path):
    hr = tmp_path / "cine.nii.gz"
    write_nifti(hr, np.zeros((8, 8, 4, 3), np.float32), np.eye(4))
    with pytest.raises(InputError, match="3D"):
        motion_file(hr, tmp_path / "m.nii.gz", {}, 0, "s", {"dataset": "d", "series": "s"})
