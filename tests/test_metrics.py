"""Metrics against independent references: scikit-image and hand formulas."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mrisr.evaluate.metrics import nmse, psnr, ssim, ssim_slices


def sk_ssim(x, ref):
    """The reference settings of the spec (Wang et al. 2004)."""
    return structural_similarity(
        x, ref, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )


def random_pair(shape, seed, noise=0.1):
    rng = np.random.default_rng(seed)
    ref = rng.random(shape)
    return np.clip(ref + noise * rng.standard_normal(shape), 0, 1), ref


def structured_pair(shape, seed):
    """A smooth phantom (ellipsoid + gradient) and a blurred, shifted, noisy copy."""
    from scipy.ndimage import gaussian_filter, shift

    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r2 = sum((g / (0.5 + 0.1 * i)) ** 2 for i, g in enumerate(grids))
    ref = 0.7 * (r2 < 1) + 0.3 * (grids[0] + 1) / 2
    rng = np.random.default_rng(seed)
    x = shift(gaussian_filter(ref, 1.0), 0.5, order=1, mode="nearest") + 0.02 * rng.standard_normal(shape)
    return np.clip(x, 0, 1), ref


PAIRS = [
    random_pair((32, 40), 0),
    random_pair((13, 17, 21), 1),
    structured_pair((48, 36), 2),
    structured_pair((24, 28, 20), 3),
]


@pytest.mark.parametrize("x,ref", PAIRS)
def test_ssim_matches_skimage(x, ref):
    assert ssim(x, ref) == pytest.approx(sk_ssim(x, ref), abs=1e-12)


@pytest.mark.parametrize("x,ref", PAIRS)
def test_psnr_matches_skimage(x, ref):
    assert psnr(x, ref) == pytest.approx(peak_signal_noise_ratio(ref, x, data_range=1.0), abs=1e-10)


@pytest.mark.parametrize("x,ref", PAIRS)
def test_nmse_hand_formula(x, ref):
    expected = sum((a - b) ** 2 for a, b in zip(x.ravel(), ref.ravel())) / sum(b * b for b in ref.ravel())
    assert nmse(x, ref) == pytest.approx(expected, rel=1e-10)


def test_psnr_hand_value():
    ref = np.zeros((4, 4))
    x = np.full((4, 4), 0.1)  # mse = 0.01 → 20 dB
    assert psnr(x, ref) == pytest.approx(20.0, abs=1e-12)


def test_identical_images():
    _, ref = structured_pair((20, 24, 22), 4)
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)
    assert psnr(ref, ref) == float("inf")  # documented choice: exact reconstruction → +inf
    assert nmse(ref, ref) == 0.0


def test_float32_input_accumulates_in_float64():
    x, ref = PAIRS[2]
    assert ssim(x.astype(np.float32), ref.astype(np.float32)) == pytest.approx(
        sk_ssim(x.astype(np.float32).astype(np.float64), ref.astype(np.float32).astype(np.float64)), abs=1e-12
    )


def test_ssim_slices_is_mean_of_per_slice_skimage():
    x, ref = random_pair((16, 20, 3, 4), 5, noise=0.2)
    expected = np.mean([sk_ssim(x[:, :, k, t], ref[:, :, k, t]) for k in range(3) for t in range(4)])
    assert ssim_slices(x, ref, (0, 1)) == pytest.approx(expected, abs=1e-12)
    # other axes: images spanned by (1, 3), iterating axes 0 and 2
    y, r = random_pair((2, 14, 3, 12), 6)
    expected = np.mean([sk_ssim(y[i, :, k, :], r[i, :, k, :]) for i in range(2) for k in range(3)])
    assert ssim_slices(y, r, (1, 3)) == pytest.approx(expected, abs=1e-12)


def test_ssim_slices_differs_from_volume_ssim():
    x, ref = structured_pair((24, 28, 20), 7)
    assert abs(ssim_slices(x, ref, (0, 1)) - ssim(x, ref)) > 1e-4


def test_shape_mismatch_and_small_images_raise():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError):
        ssim(np.zeros((10, 20)), np.zeros((10, 20)))


def volume_pair_float32(shape=(96, 120, 96), seed=8):
    """A realistic float32 SR/HR pair: smooth structure plus ~30 dB of error."""
    x, ref = structured_pair(shape, seed)
    return x.astype(np.float32), ref.astype(np.float32)


def test_float32_psnr_nmse_match_float64_and_skimage():
    """Float32 images: differences in float32, sums in float64 — within 1e-6 of the float64
    computation, and equal to scikit-image (which also keeps float32 images float32)."""
    x, ref = volume_pair_float32()
    x64, ref64 = x.astype(np.float64), ref.astype(np.float64)
    assert psnr(x, ref) == pytest.approx(psnr(x64, ref64), abs=1e-6)
    assert psnr(x, ref) == pytest.approx(peak_signal_noise_ratio(ref, x, data_range=1.0), abs=1e-9)
    assert nmse(x, ref) == pytest.approx(float(np.sum((x64 - ref64) ** 2) / np.sum(ref64**2)), rel=1e-6)


def test_float32_psnr_makes_no_float64_copy():
    """PSNR of float32 volumes allocates float32 temporaries only (was +384 MiB on 256³ pairs)."""
    import tracemalloc

    x, ref = volume_pair_float32((64, 64, 64))
    tracemalloc.start()
    psnr(x, ref)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= 1.2 * x.nbytes  # x − ref, squared in place; a float64 copy alone would be 2 × nbytes
