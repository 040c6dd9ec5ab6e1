"""mrisr.upscale and `mrisr upscale`: output grid, affine, slice-by-slice inference, errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from mrisr.cli import main
from mrisr.degrade.pipeline import lr_affine, lr_grid
from mrisr.grid import Grid, cubic_upsample
from mrisr.io import write_nifti
from mrisr.models import build_model, save_model
from mrisr.upscale import super_resolve_any_scale, upscaled_affine, upscaled_grid

META_ARGS = {"n_feats": 8, "n_blocks": 1, "hidden": 16}


def oblique_affine() -> np.ndarray:
    """A rotated, anisotropic, translated voxel→world map."""
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag([0.9, 1.1, 5.0])
    a[:3, 3] = [-40.0, 12.5, 7.0]
    return a


def save(model: torch.nn.Module, folder: Path, arch: str, args: dict, scale, convention: str = "center",
         dims: int = 2) -> Path:
    save_model(folder / "model.pt", model, arch=arch, args=args, scale=scale, dims=dims,
               grid_convention=convention, step=1, val_psnr=30.0)
    return folder


def meta_model(convention: str = "center", learned: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("meta_srgan", scale=4.0, dims=2, grid_convention=convention, **META_ARGS)
    if learned:  # a non-zero learned part, so the network (not only the cubic path) shapes the output
        with torch.no_grad():
            model.upscale.predictor[-1].weight.normal_(0, 0.05)
    return model.eval()


# ---------------------------------------------------------------------------- grid and affine
@pytest.mark.parametrize("mode", ["lowpass_bicubic", "truncate"])
@pytest.mark.parametrize("scale", [2.0, 2.7])
def test_upscaled_affine_inverts_the_degradation_affine(mode, scale):
    hr_affine = oblique_affine()
    grid = lr_grid((40, 34, 6), mode, scale, (0, 1))
    lr_aff = lr_affine(hr_affine, grid)
    np.testing.assert_allclose(upscaled_affine(lr_aff, grid), hr_affine, atol=1e-12)


def test_upscaled_grid_places_input_voxels_by_the_convention():
    grid = upscaled_grid((20, 13, 5), (0, 1), 2.7, "center")
    assert grid.hr_shape == (54, 35, 5) and grid.lr_shape == (20, 13, 5)
    lr_aff = oblique_affine()
    out_aff = upscaled_affine(lr_aff, grid)
    # input voxel i is at output coordinate (i + 1/2)·step - 1/2 (centre convention), same world point
    i = np.array([3.0, 7.0, 2.0, 1.0])
    j = i.copy()
    j[0] = (3 + 0.5) * 54 / 20 - 0.5
    j[1] = (7 + 0.5) * 35 / 13 - 0.5
    np.testing.assert_allclose(out_aff @ j, lr_aff @ i, atol=1e-9)
    spacing = np.sqrt((out_aff[:3, :3] ** 2).sum(axis=0))
    np.testing.assert_allclose(spacing, [0.9 * 20 / 54, 1.1 * 13 / 35, 5.0])


# ---------------------------------------------------------------------------- inference
def test_four_d_input_runs_slice_by_slice():
    model = meta_model(learned=True)
    x = np.random.default_rng(0).uniform(0, 1, (9, 7, 2, 3)).astype(np.float32)
    grid = upscaled_grid(x.shape, (0, 1), 2.5, "center")
    sr = super_resolve_any_scale(model, x, grid, 2.5, batch_size=4)
    assert sr.shape == (23, 18, 2, 3)  # round(22.5) = 23, round(17.5) = 18
    with torch.no_grad():
        one = model(torch.from_numpy(x[:, :, 1, 2])[None, None], scale=2.5, out_shape=(23, 18))[0, 0].numpy()
    np.testing.assert_allclose(sr[:, :, 1, 2], one, atol=1e-5)
    assert not np.allclose(one, cubic_upsample(x[:, :, 1, 2], Grid("center", (0, 1), (23, 18), (9, 7))), atol=1e-3)


# ---------------------------------------------------------------------------- the CLI
def test_cli_upscale_writes_the_new_grid_in_input_units(tmp_path, capsys):
    """Untrained meta_srgan = the cubic baseline, so the output must be cubic_upsample of the
    input in its own units (percentile normalisation undone) on the upscaled grid."""
    folder = save(meta_model(), tmp_path / "m", "meta_srgan", META_ARGS, 4.0)
    x = (200 + 800 * np.random.default_rng(1).uniform(0, 1, (16, 12, 3))).astype(np.float32)
    write_nifti(tmp_path / "in.nii.gz", x, oblique_affine())
    assert main(["upscale", "--model", str(folder), "--scale", "2.7", str(tmp_path / "in.nii.gz"),
                 str(tmp_path / "out.nii.gz")]) == 0
    img = nib.load(tmp_path / "out.nii.gz")
    out = np.asarray(img.dataobj, np.float32)
    grid = Grid("center", (0, 1), (43, 32, 3), x.shape)
    assert out.shape == grid.hr_shape
    np.testing.assert_allclose(img.affine, upscaled_affine(oblique_affine(), grid), atol=1e-5)
    np.testing.assert_allclose(out, cubic_upsample(x, grid), rtol=1e-5, atol=1e-3)
    assert "[43, 32, 3]" in capsys.readouterr().out


def test_cli_upscale_with_a_fixed_scale_model(tmp_path, capsys):
    torch.manual_seed(0)
    args = {"n_feats": 8, "n_blocks": 1}
    folder = save(build_model("srgan", scale=2, dims=2, grid_convention="center", **args), tmp_path / "s", "srgan",
                  args, 2)
    x = np.random.default_rng(2).uniform(0, 1, (10, 8, 2)).astype(np.float32)
    write_nifti(tmp_path / "in.nii.gz", x, np.eye(4))
    assert main(["upscale", "--model", str(folder / "model.pt"), "--scale", "2", "--no-normalize",
                 str(tmp_path / "in.nii.gz"), str(tmp_path / "out.nii.gz")]) == 0
    out = np.asarray(nib.load(tmp_path / "out.nii.gz").dataobj)
    np.testing.assert_allclose(out, cubic_upsample(x, Grid("center", (0, 1), (20, 16, 2), x.shape)), atol=1e-5)
    assert main(["upscale", "--model", str(folder), "--scale", "2.7", str(tmp_path / "in.nii.gz"),
                 str(tmp_path / "bad.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "model.pt: srgan is a fixed ×2 model; cannot upscale by 2.7" in err
    assert not (tmp_path / "bad.nii.gz").exists()


def test_cli_upscale_3d_model_on_all_spatial_axes(tmp_path):
    torch.manual_seed(0)
    args = {"n_feats": 4, "n_blocks": 1}
    folder = save(build_model("edsr", scale=2, dims=3, grid_convention="corner", **args), tmp_path / "e", "edsr",
                  args, 2, convention="corner", dims=3)
    x = np.random.default_rng(3).uniform(0, 1, (6, 5, 4)).astype(np.float32)
    write_nifti(tmp_path / "in.nii.gz", x, np.diag([2.0, 2.0, 2.0, 1.0]))
    assert main(["upscale", "--model", str(folder), "--scale", "2", str(tmp_path / "in.nii.gz"),
                 str(tmp_path / "out.nii.gz")]) == 0
    img = nib.load(tmp_path / "out.nii.gz")
    assert img.shape == (12, 10, 8)
    np.testing.assert_allclose(img.header.get_zooms(), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(img.affine[:3, 3], 0.0)  # corner convention: voxel 0 stays put


def test_cli_upscale_errors(tmp_path, capsys):
    folder = save(meta_model(), tmp_path / "m", "meta_srgan", META_ARGS, 4.0)
    write_nifti(tmp_path / "in.nii.gz", np.random.default_rng(4).uniform(0, 1, (8, 8, 2)).astype(np.float32),
                np.eye(4))
    args = [str(tmp_path / "in.nii.gz"), str(tmp_path / "out.nii.gz")]
    assert main(["upscale", "--model", str(folder), "--scale", "2", "--axes", "0,1,2", *args]) == 1
    assert "2D model upscales 2 axes" in capsys.readouterr().err
    assert main(["upscale", "--model", str(tmp_path / "nowhere"), "--scale", "2", *args]) == 1
    assert "model file not found" in capsys.readouterr().err
    assert main(["upscale", "--model", str(folder), "--scale", "2", str(tmp_path / "missing.nii.gz"),
                 str(tmp_path / "out.nii.gz")]) == 1
    assert "missing.nii.gz: file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscale", "--model", str(folder), "--scale", "0.5", *args])
    write_nifti(tmp_path / "flat.nii.gz", np.ones((8, 8, 2), np.float32), np.eye(4))
    assert main(["upscale", "--model", str(folder), "--scale", "2", str(tmp_path / "flat.nii.gz"),
                 str(tmp_path / "out.nii.gz")]) == 1
    assert "constant" in capsys.readouterr().err
    assert main(["upscale", "--model", str(folder), "--scale", "5", *args]) == 0  # beyond training: warns, runs
    assert "beyond the largest training scale" in capsys.readouterr().err


# ---------------------------------------------------------------------------- formats, progress, refusals
def test_upscale_refuses_output_equal_input(tmp_path, capsys):
    """Output == input (directly, via a symlink, via another spelling of the path) is one error line,
    exit code 1, nothing written or read, the input untouched."""
    folder = save(meta_model(), tmp_path / "m", "meta_srgan", META_ARGS, 4.0)
    src = tmp_path / "in.nii.gz"
    write_nifti(src, np.random.default_rng(5).uniform(0, 1, (8, 8, 2)).astype(np.float32), np.eye(4))
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    (tmp_path / "link.nii.gz").symlink_to(src)
    (tmp_path / "sub").mkdir()
    for out in (src, tmp_path / "link.nii.gz", tmp_path / "sub" / ".." / "in.nii.gz"):
        assert main(["upscale", "--model", str(folder), "--scale", "2", str(src), str(out)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "output is the input" in lines[0] and str(out) in lines[0]
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz", "link.nii.gz", "m", "sub"]  # no temporaries


def write_dicom_volume(folder: Path, data: np.ndarray, ras_affine: np.ndarray) -> None:
    """A 3D volume as one DICOM series folder (one file per slice), with the project's DICOM writer."""
    from mrisr.datasets.synth_dsb import LPS_FROM_RAS, write_sax_series

    tags = {"0008|0060": "MR", "0010|0020": "7", "0020|000d": "1.2.3.7", "0008|103e": "vol"}
    for k in range(data.shape[2]):
        write_sax_series(folder, data[:, :, k, None], LPS_FROM_RAS @ ras_affine, float(k), 10 + k, tags)


def test_upscale_reads_a_dicom_folder(tmp_path, capsys):
    """Untrained meta_srgan = cubic baseline: the NIfTI written from a DICOM folder must be cubic_upsample of
    the stored pixels, on the upscaled grid of the affine the DICOM geometry encodes."""
    folder = save(meta_model(), tmp_path / "m", "meta_srgan", META_ARGS, 4.0)
    x = np.round(100 + 900 * np.random.default_rng(6).uniform(0, 1, (12, 10, 3))).astype(np.float32)
    affine = oblique_affine()
    write_dicom_volume(tmp_path / "dicom", x, affine)
    assert main(["upscale", "--model", str(folder), "--scale", "2", str(tmp_path / "dicom"),
                 str(tmp_path / "out.nii.gz")]) == 0
    img = nib.load(tmp_path / "out.nii.gz")
    grid = Grid("center", (0, 1), (24, 20, 3), x.shape)
    np.testing.assert_allclose(np.asarray(img.dataobj), cubic_upsample(x, grid), rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(img.affine, upscaled_affine(affine, grid), atol=1e-4)
    assert main(["upscale", "--model", str(folder), "--scale", "2", str(tmp_path / "dicom"),
                 str(tmp_path / "dicom" / "out.nii.gz")]) == 1
    assert "inside the input DICOM folder" in capsys.readouterr().err
    assert not (tmp_path / "dicom" / "out.nii.gz").exists()


@pytest.mark.parametrize("src_name, out_name", [("in.nrrd", "out.mha"), ("in.nii.gz", "out.nrrd"), ("in.mha", "out.nii")])
def test_upscale_itk_formats_keep_world_geometry(tmp_path, src_name, out_name):
    """Any SimpleITK-readable input; output format by suffix; the world position of every voxel follows
    the upscaled affine (read back independently with SimpleITK / nibabel)."""
    import SimpleITK as sitk

    from mrisr.upscale import itk_affine

    folder = save(meta_model(), tmp_path / "m", "meta_srgan", META_ARGS, 4.0)
    x = np.random.default_rng(7).uniform(0, 1, (10, 8, 3)).astype(np.float32)
    affine = oblique_affine()
    if src_name.endswith(".nii.gz"):
        write_nifti(tmp_path / src_name, x, affine)
    else:  # write with SimpleITK directly: LPS origin/spacing/direction of the same RAS affine
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
        spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
        image = sitk.GetImageFromArray(x.transpose(2, 1, 0))
        image.SetSpacing(spacing.tolist())
        image.SetOrigin(lps[:3, 3].tolist())
        image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
        sitk.WriteImage(image, str(tmp_path / src_name))
    assert main(["upscale", "--model", str(folder), "--scale", "2", "--no-normalize", str(tmp_path / src_name),
                 str(tmp_path / out_name)]) == 0
    grid = Grid("center", (0, 1), (20, 16, 3), x.shape)
    if out_name.endswith(".nii"):
        img = nib.load(tmp_path / out_name)
        out, out_affine = np.asarray(img.dataobj), img.affine
    else:
        image = sitk.ReadImage(str(tmp_path / out_name))
        out, out_affine = sitk.GetArrayFromImage(image).transpose(2, 1, 0), itk_affine(image)
    np.testing.assert_allclose(out, cubic_upsample(x, grid), atol=1e-5)
    np.testing.assert_allclose(out_affine, upscaled_affine(affine, grid), atol=1e-5)


def test_upscale_progress_bar_only_on_a_terminal(tmp_path, capsys):
    from mrisr.upscale import upscale_file

    folder = save(meta_model(), tmp_path / "m", "meta_srgan", META_ARGS, 4.0)
    write_nifti(tmp_path / "in.nii.gz", np.random.default_rng(8).uniform(0, 1, (8, 8, 5)).astype(np.float32),
                np.eye(4))
    upscale_file(folder, tmp_path / "in.nii.gz", tmp_path / "a.nii.gz", 2.0, progress=True)
    err = capsys.readouterr().err
    # tqdm redraws at most every 0.1 s: which counts reach the screen is timing, the total (5 slices) is not
    assert "upscale ×2:" in err and "/5 [" in err
    # pytest's captured stderr is no terminal: the CLI prints a start and an end line, no bar
    assert main(["upscale", "--model", str(folder), "--scale", "2", str(tmp_path / "in.nii.gz"),
                 str(tmp_path / "b.nii.gz")]) == 0
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert len(out) == 2 and out[0].startswith("mrisr upscale: ") and "[16, 16, 5]" in out[1]
    assert "slice" not in captured.err
    np.testing.assert_array_equal(nib.load(tmp_path / "a.nii.gz").get_fdata(), nib.load(tmp_path / "b.nii.gz").get_fdata())


def test_upscale_unknown_output_format(tmp_path, capsys):
    folder = save(meta_model(), tmp_path / "m", "meta_srgan", META_ARGS, 4.0)
    write_nifti(tmp_path / "in.nii.gz", np.ones((8, 8, 2), np.float32), np.eye(4))
    assert main(["upscale", "--model", str(folder), "--scale", "2", str(tmp_path / "in.nii.gz"),
                 str(tmp_path / "out.png")]) == 1
    assert "unknown output format '.png'" in capsys.readouterr().err and not (tmp_path / "out.png").exists()


def test_upscale_in_parts_steps_once_per_slice_and_equals_the_whole_volume():
    from mrisr.upscale import super_resolve_in_parts

    model = meta_model(learned=True)
    x = np.random.default_rng(9).uniform(0, 1, (9, 7, 3, 4)).astype(np.float32)  # a cine: split by slice, not frame
    grid = upscaled_grid(x.shape, (0, 1), 2.5, "center")
    steps = []
    parts = super_resolve_in_parts(model, x, grid, 2.5, "cpu", 4, step=lambda: steps.append(1))
    assert len(steps) == 3
    np.testing.assert_allclose(parts, super_resolve_any_scale(model, x, grid, 2.5, batch_size=4), atol=1e-6)
