"""k-space low-pass filtering and truncation with real-input FFTs.

Both operations keep the central lr_size(n, scale) frequencies of every listed
axis.  They use scipy.fft real-input transforms (half spectrum, float32 →
complex64, multi-threaded), several times faster than complex numpy.fft and
half the memory, and prune: the forward transform goes one axis at a time and
drops the out-of-band bins before the next axis, and the low-pass inverse
transforms zero-padded bands the same way.  On 256³ at scale 2 truncation
takes ~0.3× and the low-pass ~0.6× the time of a bare rfftn + irfftn
(bench/degrade.py).

Even band widths m have a lone Nyquist bin ±m/2.  Both operations split it
evenly between +m/2 and -m/2 so that the result stays real and symmetric:
* kspace_truncate equals, to float precision, the textbook complex recipe
  fftn → fftshift → centre crop → ifftshift → ifftn → real part × m/n;
* kspace_lowpass weights the two HR bins at ±m/2 by one half (separably per
  axis), so that on one axis lowpass-then-sample-at-i·n/m equals truncation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.fft

from mrisr.grid import lr_size

WINDOWS: tuple[str, ...] = ("none", "hamming")


def normalize_axes(axes: Sequence[int], ndim: int) -> tuple[int, ...]:
    """Sorted, non-negative, unique axes; sorted so that the contiguous last
    axis is the rfft half axis (fastest) whatever order the caller used."""
    axes = tuple(int(a) for a in axes)
    if not axes:
        raise ValueError("no axes to degrade")
    if any(a < -ndim or a >= ndim for a in axes):
        raise ValueError(f"axes {axes} out of range for a {ndim}D array")
    norm = tuple(sorted(a % ndim for a in axes))
    if len(set(norm)) != len(norm):
        raise ValueError(f"repeated axis in {axes}")
    return norm


def check_window(window: str) -> None:
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; expected one of {WINDOWS}")


def fft_freqs(n: int, half: bool = False) -> np.ndarray:
    """Integer frequency of each bin in FFT order (numpy's fftfreq(n)*n, exact);
    half=True: the rfft bins 0..n//2."""
    k = np.arange(n // 2 + 1 if half else n)
    return k if half else (k + n // 2) % n - n // 2


def window_weights(freqs: np.ndarray, m: int, window: str) -> np.ndarray:
    """Taper over a band of width m: Hamming 0.54 + 0.46·cos(2πf/m), i.e. a
    Hamming window spanning [-m/2, m/2] (0.08 at the band edge)."""
    if window == "none":
        return np.ones(freqs.shape)
    return 0.54 + 0.46 * np.cos(2.0 * np.pi * freqs / m)


def band_weights(freqs: np.ndarray, m: int) -> np.ndarray:
    """1 for |f| < m/2, 1/2 for |f| = m/2 (even m: half of the Nyquist bin on
    each side), 0 beyond."""
    twice = 2 * np.abs(freqs)
    return np.where(twice < m, 1.0, np.where(twice == m, 0.5, 0.0))


def _real_dtype(x: np.ndarray) -> type:
    """float64 stays float64 (reference tests); everything else runs in float32."""
    return np.float64 if np.asarray(x).dtype == np.float64 else np.float32


def _index(axis: int, sel: slice | int) -> tuple:
    return (slice(None),) * axis + (sel,)


def _along(w: np.ndarray, axis: int, ndim: int, dtype: type) -> np.ndarray:
    """1D weights shaped to broadcast along `axis` of an ndim array."""
    shape = [1] * ndim
    shape[axis] = w.size
    return w.astype(dtype).reshape(shape)


def _band_freqs(m: int, half: bool) -> np.ndarray:
    """Frequencies of the band bins as _band_spectrum orders them: 0..⌊m/2⌋ and,
    on full axes, then -⌊m/2⌋..-1 (for even m both ±m/2 are present)."""
    hi = m // 2
    pos = np.arange(hi + 1)
    return pos if half else np.concatenate([pos, np.arange(-hi, 0)])


def _band_spectrum(x: np.ndarray, sizes: dict[int, tuple[int, int]], active: list[int], workers: int) -> np.ndarray:
    """Spectrum of x restricted to |f| ≤ m/2 on every active axis, computed by a
    pruned FFT: a 1D transform per axis, each followed at once by dropping the
    bins outside the band, so later axes transform only what is kept (the
    half-spectrum axis first, as a real FFT)."""
    last = active[-1]
    spec = scipy.fft.rfft(x, axis=last, workers=workers)
    spec = spec[_index(last, slice(0, sizes[last][1] // 2 + 1))]
    for a in reversed(active[:-1]):
        n, m = sizes[a]
        spec = scipy.fft.fft(spec, axis=a, workers=workers, overwrite_x=True)
        hi = m // 2
        spec = np.concatenate([spec[_index(a, slice(0, hi + 1))], spec[_index(a, slice(n - hi, n))]], axis=a)
    return spec


def _unprune_inverse(band: np.ndarray, sizes: dict[int, tuple[int, int]], active: list[int], workers: int) -> np.ndarray:
    """Inverse of _band_spectrum onto the full HR grid, the dropped bins being
    zero: per full axis, zero-pad back to n and inverse FFT; finally irfft, which
    zero-pads the half axis itself."""
    spec = band
    for a in active[:-1]:
        n, m = sizes[a]
        hi = m // 2
        shape = list(spec.shape)
        shape[a] = n
        padded = np.zeros(shape, dtype=spec.dtype)
        padded[_index(a, slice(0, hi + 1))] = spec[_index(a, slice(0, hi + 1))]
        padded[_index(a, slice(n - hi, n))] = spec[_index(a, slice(hi + 1, 2 * hi + 1))]
        spec = scipy.fft.ifft(padded, axis=a, workers=workers, overwrite_x=True)
    last = active[-1]
    return scipy.fft.irfft(spec, n=sizes[last][0], axis=last, workers=workers)


def _active_axes(x: np.ndarray, scale: float, axes: tuple[int, ...]) -> tuple[dict[int, tuple[int, int]], list[int]]:
    """(n, m) per listed axis, and the axes where the band is narrower than the
    axis (the others are left alone: their filter would be the identity)."""
    sizes = {a: (x.shape[a], lr_size(x.shape[a], scale)) for a in axes}
    return sizes, [a for a in axes if sizes[a][1] < sizes[a][0]]


def kspace_lowpass(
    x: np.ndarray, scale: float, axes: tuple[int, ...], window: str = "none", workers: int = -1
) -> np.ndarray:
    """Same shape as x: keep the central lr_size(n, scale) frequencies of every
    listed axis (2D per slice/frame for axes=(0,1), 3D for (0,1,2)).

    Axes whose band covers the whole axis are left untouched (scale 1 → copy).
    """
    check_window(window)
    x = np.asarray(x)
    axes = normalize_axes(axes, x.ndim)
    dtype = _real_dtype(x)
    sizes, active = _active_axes(x, scale, axes)
    if not active:
        return np.array(x, dtype=dtype, copy=True)
    band = _band_spectrum(x.astype(dtype, copy=False), sizes, active, workers)
    rdtype = band.real.dtype.type
    for a in active:
        m = sizes[a][1]
        freqs = _band_freqs(m, half=(a == active[-1]))
        w = band_weights(freqs, m) * window_weights(freqs, m, window)
        if np.any(w != 1.0):
            band *= _along(w, a, band.ndim, rdtype)
    return _unprune_inverse(band, sizes, active, workers)


def _lr_order(m: int, nyquist_positive: bool) -> np.ndarray:
    """Positions in the band (as _band_freqs orders it) of the LR FFT bins
    0..⌈m/2⌉-1, -⌊m/2⌋..-1.  For even m the LR Nyquist bin is taken from the
    band's -m/2 or +m/2."""
    hi = m // 2
    if m % 2:
        return np.arange(m)
    first = hi if nyquist_positive else hi + 1
    return np.concatenate([np.arange(hi), [first], np.arange(hi + 2, 2 * hi + 1)])


def _crop_band(band: np.ndarray, sizes: dict[int, tuple[int, int]], active: list[int]) -> np.ndarray:
    """LR half spectrum of the centre crop, from the band spectrum.

    The complex recipe's real part is the average of two crops: one taking every
    LR Nyquist bin from HR -m/2, one from HR +m/2 (they differ only on those
    planes).  Along the half axis the choice is left to irfftn, which keeps
    only the Hermitian part of its DC and Nyquist planes; that symmetrisation
    supplies the -m/2 half there, so the B crop alone is used on that plane.
    """
    even = [a for a in active[:-1] if sizes[a][1] % 2 == 0]
    if not even:
        return band  # odd band widths: the band is already the LR spectrum, in LR order
    crop_b = band
    crop_a = band
    for a in even:
        m = sizes[a][1]
        crop_b = np.take(crop_b, _lr_order(m, nyquist_positive=True), axis=a)
        crop_a = np.take(crop_a, _lr_order(m, nyquist_positive=False), axis=a)
    last = active[-1]
    m_last = sizes[last][1]
    if m_last % 2 == 0:
        nyq = _index(last, m_last // 2)
        crop_a[nyq] = crop_b[nyq]
    crop_a += crop_b
    crop_a *= crop_a.real.dtype.type(0.5)
    return crop_a


def kspace_truncate(
    x: np.ndarray, scale: float, axes: tuple[int, ...], window: str = "none", workers: int = -1
) -> np.ndarray:
    """Centre-crop k-space to lr_size(n, scale) per listed axis and invert on the
    LR grid; intensities preserved (× prod(m/n)).  LR sample i sits at HR
    position i·n/m (the 'corner' convention of mrisr.grid)."""
    check_window(window)
    x = np.asarray(x)
    axes = normalize_axes(axes, x.ndim)
    dtype = _real_dtype(x)
    sizes, active = _active_axes(x, scale, axes)
    if not active:
        return np.array(x, dtype=dtype, copy=True)
    lr_spec = _crop_band(_band_spectrum(x.astype(dtype, copy=False), sizes, active, workers), sizes, active)
    rdtype = lr_spec.real.dtype.type
    gain = float(np.prod([m / n for n, m in sizes.values()]))
    lr_spec *= rdtype(gain)
    if window != "none":
        for a in active:
            m = sizes[a][1]
            freqs = fft_freqs(m, half=(a == active[-1]))
            lr_spec *= _along(window_weights(freqs, m, window), a, lr_spec.ndim, rdtype)
    s = [sizes[a][1] for a in active]
    return scipy.fft.irfftn(lr_spec, s=s, axes=active, workers=workers, overwrite_x=True)
