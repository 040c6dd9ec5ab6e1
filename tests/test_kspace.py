"""k-space truncation / low-pass against independent complex-FFT references."""

from __future__ import annotations

import numpy as np
import pytest

from mrisr.degrade.kspace import kspace_lowpass, kspace_truncate
from mrisr.grid import lr_size


def reference_truncate(x: np.ndarray, m: dict[int, int]) -> np.ndarray:
    """Textbook recipe with complex numpy.fft: fftn → fftshift → centre crop →
    ifftshift → ifftn → real part × m/n.  After fftshift DC sits at n//2; the
    crop keeps DC at m//2 so that ifftshift puts it back at index 0."""
    axes = tuple(m)
    spec = np.fft.fftshift(np.fft.fftn(x, axes=axes), axes=axes)
    sel = [slice(None)] * x.ndim
    gain = 1.0
    for a, ma in m.items():
        n = x.shape[a]
        start = n // 2 - ma // 2
        sel[a] = slice(start, start + ma)
        gain *= ma / n
    cropped = np.fft.ifftshift(spec[tuple(sel)], axes=axes)
    return np.fft.ifftn(cropped, axes=axes).real * gain


def expected_lowpass_gain(shape: tuple[int, ...], m: dict[int, int]) -> np.ndarray:
    """Separable spectral gain: 1 for |f| < m/2, 1/2 at |f| = m/2, 0 beyond."""
    gain = np.ones(shape)
    for a, ma in m.items():
        f = np.abs(np.fft.fftfreq(shape[a]) * shape[a])
        g = np.where(f < ma / 2 - 1e-9, 1.0, np.where(np.abs(f - ma / 2) < 1e-9, 0.5, 0.0))
        bshape = [1] * len(shape)
        bshape[a] = shape[a]
        gain = gain * g.reshape(bshape)
    return gain


@pytest.mark.parametrize("shape", [(24, 20, 6), (15, 17, 9), (97, 12, 5)])
@pytest.mark.parametrize("scale", [2, 3, 2.5, 1.7])
@pytest.mark.parametrize("axes", [(0,), (1,), (0, 1), (1, 2), (0, 1, 2)])
def test_truncate_matches_complex_reference(shape, scale, axes):
    x = np.random.default_rng(1).standard_normal(shape)
    m = {a: lr_size(shape[a], scale) for a in axes}
    got = kspace_truncate(x, scale, axes)
    want = reference_truncate(x, m)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)


def test_truncate_float32_input_stays_float32_and_accurate():
    x = np.random.default_rng(2).random((32, 30, 8), dtype=np.float32)
    got = kspace_truncate(x, 2, (0, 1, 2))
    assert got.dtype == np.float32
    want = reference_truncate(x.astype(np.float64), {0: 16, 1: 15, 2: 4})
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_truncate_non_integer_shape():
    x = np.random.default_rng(3).standard_normal((97, 40))
    got = kspace_truncate(x, 2.5, (0, 1))
    assert got.shape == (39, 16)  # round(97/2.5)=39, 40/2.5=16


def test_truncate_preserves_mean_intensity():
    x = np.random.default_rng(4).random((36, 30))
    assert kspace_truncate(x, 3, (0, 1)).mean() == pytest.approx(x.mean(), rel=1e-12)


@pytest.mark.parametrize("fn", [kspace_lowpass, kspace_truncate])
@pytest.mark.parametrize("window", ["none", "hamming"])
def test_scale_one_is_identity(fn, window):
    x = np.random.default_rng(5).standard_normal((16, 15, 4))
    np.testing.assert_allclose(fn(x, 1, (0, 1, 2), window=window), x, atol=1e-12)


@pytest.mark.parametrize("shape,axes", [((24, 21), (0, 1)), ((16, 13, 10), (0, 1, 2)), ((20, 9, 3), (0,))])
@pytest.mark.parametrize("scale", [2, 3, 2.5])
def test_lowpass_keeps_exactly_the_central_band(shape, axes, scale):
    x = np.random.default_rng(6).standard_normal(shape)
    y = kspace_lowpass(x, scale, axes)
    assert y.shape == x.shape
    spec_x, spec_y = np.fft.fftn(x, axes=axes), np.fft.fftn(y, axes=axes)
    gain = expected_lowpass_gain(shape, {a: lr_size(shape[a], scale) for a in axes})
    inside, outside = gain == 1.0, gain == 0.0
    assert inside.sum() > 1 and outside.sum() > 1
    np.testing.assert_allclose(spec_y[inside], spec_x[inside], atol=1e-9)
    np.testing.assert_allclose(spec_y[outside], 0.0, atol=1e-9)
    np.testing.assert_allclose(spec_y, gain * spec_x, atol=1e-9)


def test_lowpass_then_corner_sampling_equals_truncation_on_one_axis():
    """Both split the Nyquist bin evenly, so on one axis with n = s·m they agree."""
    x = np.random.default_rng(7).standard_normal((48, 5))
    y = kspace_lowpass(x, 4, (0,))
    np.testing.assert_allclose(y[::4], kspace_truncate(x, 4, (0,)), atol=1e-12)


def overshoot(profile: np.ndarray) -> float:
    return float(profile.max() - 1.0)


@pytest.mark.parametrize("fn", [kspace_lowpass, kspace_truncate])
def test_hamming_window_reduces_ringing(fn):
    x = np.zeros((128, 4))
    x[32:96] = 1.0  # a box: two step edges
    plain = overshoot(fn(x, 4, (0,), window="none")[:, 0])
    tapered = overshoot(fn(x, 4, (0,), window="hamming")[:, 0])
    assert plain > 0.05  # Gibbs overshoot of a hard band edge (~9%)
    assert tapered < 0.25 * plain


@pytest.mark.parametrize("fn", [kspace_lowpass, kspace_truncate])
@pytest.mark.parametrize("window", ["none", "hamming"])
def test_2d_per_frame_on_4d_equals_loop(fn, window):
    x = np.random.default_rng(8).random((20, 18, 3, 4), dtype=np.float32)
    got = fn(x, 2, (0, 1), window=window)
    for z in range(x.shape[2]):
        for t in range(x.shape[3]):
            np.testing.assert_allclose(got[:, :, z, t], fn(x[:, :, z, t], 2, (0, 1), window=window), atol=1e-6)


def test_3d_lowpass_differs_from_2d_per_slice():
    """Axes matter: 3D filtering also low-passes across slices."""
    x = np.random.default_rng(9).standard_normal((12, 12, 12))
    assert not np.allclose(kspace_lowpass(x, 2, (0, 1, 2)), kspace_lowpass(x, 2, (0, 1)))


def test_bad_window_and_axes_raise():
    x = np.zeros((8, 8))
    with pytest.raises(ValueError, match="window"):
        kspace_lowpass(x, 2, (0, 1), window="kaiser")
    with pytest.raises(ValueError, match="out of range"):
        kspace_truncate(x, 2, (0, 2))
    with pytest.raises(ValueError, match="repeated"):
        kspace_truncate(x, 2, (0, -2))
