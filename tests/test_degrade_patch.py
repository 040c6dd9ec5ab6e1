"""mrisr.degrade.patch: on-the-fly LR of small HR patches without the DFT's wrap-around."""

from __future__ import annotations

import numpy as np
import pytest

from mrisr.degrade import degrade_array
from mrisr.degrade.patch import degrade_patches, even_extension
from mrisr.grid import axis_grid

KSPACE = ["lowpass_bicubic", "truncate"]


def smooth_scene(n: int = 144) -> np.ndarray:
    """Band-limited waves plus a vertical tissue edge: content near every border of a patch."""
    yy, xx = np.mgrid[:n, :n] / n
    img = 0.5 + 0.3 * np.sin(2 * np.pi * (3 * yy + xx)) + 0.2 * (xx > 0.55)
    return img.astype(np.float32)


def test_even_extension_is_mirror_and_continuous_where_it_wraps():
    x = np.arange(5.0)
    ext = even_extension(x, 0)
    np.testing.assert_array_equal(ext, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    assert ext[-1] == ext[0]  # the periodic continuation has no jump


@pytest.mark.parametrize("mode", KSPACE + ["bicubic"])
@pytest.mark.parametrize("scale", [1.1, 2.0, 2.7, 4.0])
def test_shape_and_grid_are_those_of_degrade_array(mode, scale):
    x = np.random.default_rng(0).random((3, 20, 26)).astype(np.float32)  # non-square patches
    lr, grid = degrade_patches(x, mode, scale, (1, 2))
    ref, ref_grid = degrade_array(x, mode, scale, (1, 2))
    assert grid == ref_grid and lr.shape == ref.shape and lr.dtype == np.float32


@pytest.mark.parametrize("mode", KSPACE)
@pytest.mark.parametrize("scale", [1.3, 2.0, 3.5])
def test_constant_patch_stays_constant(mode, scale):
    lr, _ = degrade_patches(np.full((2, 24, 24), 0.6, np.float32), mode, scale, (1, 2))
    np.testing.assert_allclose(lr, 0.6, atol=1e-5)


def test_bicubic_mode_is_degrade_array_unchanged():
    x = np.random.default_rng(1).random((2, 24, 24)).astype(np.float32)
    np.testing.assert_array_equal(degrade_patches(x, "bicubic", 2.7, (1, 2))[0],
                                  degrade_array(x, "bicubic", 2.7, (1, 2))[0])


@pytest.mark.parametrize("mode", KSPACE)
def test_ramp_patch_does_not_ring_at_its_borders(mode):
    """A ramp 0.1 → 0.9 across the patch: as a periodic signal it jumps by 0.8 at the border,
    and the plain DFT filter rings there; the even extension has no jump. Reference: the ramp's
    value at each LR sample's HR position (a low-pass keeps a linear function)."""
    n, scale = 32, 2.0
    ramp = np.linspace(0.1, 0.9, n, dtype=np.float32)
    x = np.broadcast_to(ramp[None, :], (n, n)).copy()
    new, grid = degrade_patches(x[None], mode, scale, (1, 2))
    old, _ = degrade_array(x[None], mode, scale, (1, 2))
    pos = axis_grid(grid.convention, n, grid.lr_shape[2]).hr_position(np.arange(grid.lr_shape[2]))
    expected = np.interp(pos, np.arange(n), ramp)
    err_new = np.abs(new[0] - expected[None, :]).max()
    err_old = np.abs(old[0] - expected[None, :]).max()
    assert err_old > 0.05  # the wrap-around artefact the fix removes (0.07 low-pass, 0.2 truncation)
    assert err_new < 0.01
    assert err_new < err_old / 10


@pytest.mark.parametrize("mode", KSPACE)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_patch_lr_matches_the_whole_image_lr_at_the_borders(mode, scale):
    """Cut a patch at an LR-aligned corner: the whole image's LR (which has the patch's real
    surroundings, no wrap) is the reference. At the patch borders the even extension must be
    much closer to it than the periodic (plain DFT) treatment of the patch."""
    img = smooth_scene()
    p = 48
    r0, c0 = (40 // scale) * scale, (36 // scale) * scale
    full, _ = degrade_array(img, mode, float(scale), (0, 1))
    ref = full[r0 // scale:(r0 + p) // scale, c0 // scale:(c0 + p) // scale]
    patch = img[None, r0:r0 + p, c0:c0 + p]
    border = np.ones(ref.shape, bool)
    border[2:-2, 2:-2] = False
    new = np.abs(degrade_patches(patch, mode, float(scale), (1, 2))[0][0] - ref)
    old = np.abs(degrade_array(patch, mode, float(scale), (1, 2))[0][0] - ref)
    assert new[border].max() < 0.5 * old[border].max()
    assert new[border].mean() < 0.7 * old[border].mean()
    assert new[~border].max() < 0.03  # inside, both are the whole-image LR up to the sinc tails
