"""Heart ROI detection on phantoms whose heart position is known."""

from __future__ import annotations

import numpy as np
import pytest

from mrisr.evaluate.roi import detect_heart_roi

SHAPE = (64, 72)
FRAMES = 16


def disc(centre: tuple[float, float], radius: float) -> np.ndarray:
    """Soft (one-pixel edge) disc mask on the SHAPE grid."""
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    return np.clip(radius + 0.5 - np.hypot(x - centre[0], y - centre[1]), 0.0, 1.0)


def phantom(centre: tuple[float, float], r_mean: float, r_amp: float, slices: int = 2, seed: int = 0,
            distractor: tuple[float, float] | None = None) -> np.ndarray:
    """(X, Y, Z, T) cine: a static body (ellipse plus a bright static 'spine') with a
    bright blood disc whose radius beats r_mean ± r_amp, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    body = ((x - 32) / 30) ** 2 + ((y - 36) / 33) ** 2 <= 1
    static = 0.35 * body + 0.5 * disc((50, 36), 5)
    cine = np.empty((*SHAPE, slices, FRAMES))
    for t in range(FRAMES):
        beat = np.sin(2 * np.pi * t / FRAMES)
        frame = static + 0.55 * disc(centre, r_mean + r_amp * beat)
        if distractor is not None:
            frame = frame + 0.55 * disc(distractor, 2.0 + 1.0 * beat)
        for z in range(slices):
            cine[:, :, z, t] = frame + rng.normal(0.0, 0.03, SHAPE)
    return cine.astype(np.float32)


def box_iou(a: tuple[slice, slice], b: tuple[slice, slice]) -> float:
    def length(s: slice) -> int:
        return max(0, s.stop - s.start)

    inter = [length(slice(max(p.start, q.start), min(p.stop, q.stop))) for p, q in zip(a, b)]
    area = lambda s: length(s[0]) * length(s[1])  # noqa: E731
    i = inter[0] * inter[1]
    return i / (area(a) + area(b) - i)


def expected_roi(centre: tuple[float, float], radius: float, margin: float) -> tuple[slice, slice]:
    """Bounding box of the largest disc, grown by margin × its size, clipped."""
    out = []
    for c, n in zip(centre, SHAPE):
        lo, hi = int(np.floor(c - radius)), int(np.ceil(c + radius)) + 1
        pad = margin * (hi - lo)
        out.append(slice(max(0, int(lo - pad)), min(n, int(np.ceil(hi + pad)))))
    return out[0], out[1]


@pytest.mark.parametrize("centre", [(24.0, 44.0), (34.0, 26.0), (12.0, 60.0)])
def test_pulsating_disc_is_found(centre):
    r_mean, r_amp, margin = 7.0, 2.5, 0.15
    roi = detect_heart_roi(phantom(centre, r_mean, r_amp), margin=margin)
    r_max = r_mean + r_amp
    truth = expected_roi(centre, r_max, margin)
    # the ROI contains the whole disc at its largest ...
    covered = disc(centre, r_max)
    assert covered[roi].sum() == pytest.approx(covered.sum())
    # ... and is not much larger than the true box + margin
    assert box_iou(roi, truth) > 0.5


def test_three_dimensional_input_and_small_distractor():
    """(X, Y, T) input; a smaller moving blob elsewhere is not the largest component."""
    centre = (26.0, 40.0)
    cine = phantom(centre, 7.0, 2.5, slices=1, distractor=(54.0, 12.0))[:, :, 0]
    roi = detect_heart_roi(cine)
    assert box_iou(roi, expected_roi(centre, 9.5, 0.15)) > 0.5
    assert not (roi[0].start <= 54 < roi[0].stop and roi[1].start <= 12 < roi[1].stop)


def test_margin_grows_the_box_and_is_clipped():
    cine = phantom((24.0, 44.0), 7.0, 2.5)
    tight, wide = detect_heart_roi(cine, margin=0.0), detect_heart_roi(cine, margin=0.5)
    for t, w, n in zip(tight, wide, SHAPE):
        assert w.start <= t.start and w.stop >= t.stop and (w.stop - w.start) > (t.stop - t.start)
        assert 0 <= w.start and w.stop <= n
    huge = detect_heart_roi(cine, margin=100.0)
    assert huge == (slice(0, SHAPE[0]), slice(0, SHAPE[1]))


def test_static_cine_gives_whole_field_of_view():
    cine = np.repeat(phantom((24.0, 44.0), 7.0, 0.0)[..., :1], 5, axis=-1)  # no motion, no noise change
    assert detect_heart_roi(cine) == (slice(0, SHAPE[0]), slice(0, SHAPE[1]))


@pytest.mark.parametrize("bad", [np.zeros((8, 8)), np.zeros((8, 8, 2, 3, 4)), np.zeros((8, 8, 1)),
                                 np.full((8, 8, 4), np.nan)])
def test_bad_input_is_rejected(bad):
    with pytest.raises(ValueError):
        detect_heart_roi(bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_cine_roi_contains_ground_truth_labels(tmp_path, seed):
    """On the datasets engineer's synthetic ACDC stand-in, written in the ACDC layout:
    the ROI detected on the 4D image contains every LV/MYO/RV voxel of the ED and ES
    ground-truth label files."""
    synth_cine = pytest.importorskip("mrisr.datasets.synth_cine")
    from mrisr.io import read_nifti

    params = {"size": [64, 64], "slices": 3, "frames": 12}
    subject = synth_cine.generate_cine(np.random.default_rng(seed), params)
    synth_cine.write_cine_subject(tmp_path, "patient001", subject)
    folder = tmp_path / "patient001"
    image, _ = read_nifti(folder / "patient001_4d.nii.gz", ndim=4)
    gt_files = sorted(folder.glob("patient001_frame*_gt.nii.gz"))
    assert len(gt_files) == 2  # ED and ES
    roi = detect_heart_roi(image)
    heart_area = 0
    for path in gt_files:
        labels, _ = read_nifti(path, ndim=3)
        heart = labels > 0  # RV=1, MYO=2, LV=3
        for value in (1, 2, 3):
            assert (labels == value).any(), f"label {value} missing from {path.name}"
        assert heart[roi].sum() == heart.sum()
        heart_area = max(heart_area, int(heart.any(axis=2).sum()))
    roi_area = (roi[0].stop - roi[0].start) * (roi[1].stop - roi[1].start)
    assert roi_area < 0.5 * image.shape[0] * image.shape[1]  # a heart box, not the whole image
    assert roi_area < 4 * heart_area
