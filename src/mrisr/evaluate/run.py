"""Per-subject evaluation of one method on one dataset × scale.

Reads only published contracts: the degraded LR NIfTI + sidecar (lr/...), the
prepared HR NIfTI its sidecar names (hr_source) and split.json. Writes
sr/{subject}.nii.gz, example.npz, meta.json and, LAST, metrics.csv — the file
Snakemake treats as the job's output, so its presence means the job finished.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrisr.errors import InputError
from mrisr.evaluate.inference import CUBIC_METHODS, image_axes, super_resolve
from mrisr.evaluate.metrics import nmse, psnr, ssim_over
from mrisr.grid import Grid
from mrisr.io import atomic_path, read_json, read_nifti, write_json, write_nifti

SIDECAR_KEYS = ("hr_source", "hr_shape", "lr_shape", "grid")
METRIC_COLUMNS = ("psnr", "ssim", "nmse")
CARDIAC_COLUMNS = ("cardiac_psnr", "cardiac_ssim")


@dataclass
class Subject:
    """One test subject's arrays, validated against its sidecar."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    hr_affine: np.ndarray
    grid: Grid
    ref: np.ndarray | None
    cycle: tuple[int, int] | None  # (ED, ES) 0-based for cine


def read_split_test(split_file: Path) -> list[str]:
    """Sorted test subjects of split.json (sorted: row order never depends on the split's order)."""
    split = read_json(split_file)
    if not isinstance(split, dict) or not isinstance(split.get("test"), list):
        raise InputError(split_file, "no 'test' list")
    if not split["test"]:
        raise InputError(split_file, "'test' list is empty")
    return sorted(str(s) for s in split["test"])


def _check_shape(path: Path, what: str, got, expected) -> None:
    if tuple(got) != tuple(int(n) for n in expected):
        raise InputError(path, f"{what} shape {tuple(got)} does not match expected {tuple(expected)}")


def load_subject(subject: str, lr_dir: Path, reference_series: str | None) -> Subject:
    """LR + sidecar, HR (and reference contrast), all shapes checked against the grid."""
    lr_path = lr_dir / f"{subject}.nii.gz"
    side_path = lr_dir / f"{subject}.json"
    side = read_json(side_path)
    missing = [k for k in SIDECAR_KEYS if k not in side]
    if missing:
        raise InputError(side_path, f"sidecar lacks keys {missing}")
    try:
        grid = Grid.from_json(side["grid"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(side_path, f"malformed 'grid' ({type(err).__name__}: {err})") from None
    # canonical=False: degrade wrote LR in the prepared (already RAS) array layout;
    # reorienting either file on its own would break the voxel correspondence.
    lr, _ = read_nifti(lr_path, canonical=False)
    _check_shape(lr_path, "LR", lr.shape, side["lr_shape"])
    _check_shape(lr_path, "LR", lr.shape, grid.lr_shape)
    hr_path = Path(side["hr_source"])
    hr, hr_affine = read_nifti(hr_path, canonical=False)
    _check_shape(hr_path, "HR", hr.shape, side["hr_shape"])
    _check_shape(hr_path, "HR", hr.shape, grid.hr_shape)
    ref = None
    if reference_series:
        ref_path = hr_path.with_name(f"{reference_series}.nii.gz")
        ref, _ = read_nifti(ref_path, canonical=False)
        _check_shape(ref_path, "reference", ref.shape, hr.shape)
    return Subject(subject, lr, hr, hr_affine, grid, ref, read_cycle(hr_path))


def read_cycle(hr_path: Path) -> tuple[int, int] | None:
    """(ED, ES) from the prepared sidecar of a cine; None for other series."""
    side_path = hr_path.with_name(hr_path.name.removesuffix(".nii.gz") + ".json")
    if not side_path.exists():
        return None
    side = read_json(side_path)
    return (int(side["ed"]), int(side["es"])) if "ed" in side and "es" in side else None


SSIM_MIN_SIZE = 11  # the SSIM window: a smaller ROI is widened to it (about its centre)


def widen(sl: slice, size: int, n: int) -> slice:
    """`sl` grown symmetrically to at least `size` samples, kept inside [0, n)."""
    start, stop = sl.start or 0, n if sl.stop is None else sl.stop
    grow = max(0, size - (stop - start))
    start = max(0, start - grow // 2)
    stop = min(n, max(stop + grow - grow // 2, start + size))
    return slice(max(0, min(start, stop - size)), stop)


def subject_metrics(sr: np.ndarray, hr: np.ndarray, grid: Grid) -> dict[str, float]:
    """PSNR, SSIM (2D per slice/frame for 2D tasks, 3D for volumes), NMSE on clipped SR;
    for a cine (4D) also PSNR/SSIM inside the automatically detected heart ROI."""
    sr = np.clip(sr, 0.0, 1.0)
    axes = image_axes(grid, hr.ndim)
    s = ssim_over(sr, hr, axes)  # == ssim(sr, hr) when the axes span the array
    out = {"psnr": psnr(sr, hr), "ssim": s, "nmse": nmse(sr, hr)}
    if hr.ndim == 4 and tuple(axes) == (0, 1):
        from mrisr.evaluate.roi import detect_heart_roi

        # The ROI comes from the HR cine (the same box for every method), so methods are
        # compared on identical pixels.
        rx, ry = (widen(sl, SSIM_MIN_SIZE, n) for sl, n in zip(detect_heart_roi(hr), hr.shape[:2]))
        out["cardiac_psnr"] = psnr(sr[rx, ry], hr[rx, ry])
        out["cardiac_ssim"] = ssim_over(sr[rx, ry], hr[rx, ry], axes)
    return out


def _nearest_index(grid: Grid, axis: int, hr_idx: np.ndarray, n_lr: int) -> np.ndarray:
    """LR sample nearest to each HR index along `axis` (identity on undegraded axes)."""
    if axis not in grid.axes:
        return hr_idx
    pos = np.asarray(grid.axis(axis).lr_position(hr_idx))
    return np.clip(np.floor(pos + 0.5).astype(np.int64), 0, n_lr - 1)


def central_image_index(grid: Grid, shape) -> list[np.ndarray]:
    """HR index arrays selecting the central 2D image: the first two image axes in
    full, every other axis at its centre (slice / frame)."""
    show = image_axes(grid, len(shape))[:2]
    return [np.arange(n) if a in show else np.array([n // 2]) for a, n in enumerate(shape)]


def example_images(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, grid: Grid) -> dict[str, np.ndarray]:
    """Central 2D image of LR (nearest-upsampled onto HR pixels for display), SR, HR."""
    hr_idx = central_image_index(grid, hr.shape)
    lr_idx = [_nearest_index(grid, a, i, lr.shape[a]) for a, i in enumerate(hr_idx)]
    show = image_axes(grid, hr.ndim)[:2]

    def take(a: np.ndarray, idx) -> np.ndarray:
        img = a[np.ix_(*idx)]
        return img.reshape([img.shape[ax] for ax in sorted(show)]).astype(np.float32)

    return {"lr": take(lr, lr_idx), "sr": take(sr, hr_idx), "hr": take(hr, hr_idx)}


def _load_method(method: str, model_path: Path | None, device: str):
    """(model or None, n_params, model path text or None)."""
    if method.lower() in CUBIC_METHODS:
        return None, 0, None
    if model_path is None:
        raise InputError(f"<{method}>", "method needs a model file (--model)")
    from mrisr.models import count_parameters, load_model  # torch only when a model runs

    if not Path(model_path).exists():
        raise InputError(model_path, "file not found")
    model = load_model(model_path, device=device)
    return model, int(count_parameters(model)), str(model_path)


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    """subject,psnr,ssim,nmse[,cardiac_psnr,cardiac_ssim] with repr floats (full precision),
    rows sorted by subject."""
    columns = [*METRIC_COLUMNS, *(c for c in CARDIAC_COLUMNS if rows and c in rows[0])]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["subject", *columns])
    for row in sorted(rows, key=lambda r: r["subject"]):
        writer.writerow([row["subject"], *(repr(float(row[m])) for m in columns)])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def evaluate(
    method: str,
    model_path: Path | None,
    split_file: Path,
    lr_dir: Path,
    out_dir: Path,
    dataset: str,
    task: str,
    scale: float,
    reference_series: str | None = None,
    device: str = "cpu",
    save_sr: bool = True,
    overrides: dict | None = None,
) -> None:
    """Super-resolve every test subject, score it, write the eval folder (metrics.csv last).

    overrides: model attributes changed at inference without new parameters (e.g. the
    video model's Ω stages `omega` or warm-up frames `n_warmup`) for inference sweeps.
    """
    method = method.lower()
    lr_dir, out_dir = Path(lr_dir), Path(out_dir)
    subjects = read_split_test(Path(split_file))
    model, n_params, model_text = _load_method(method, model_path, device)
    for key, value in (overrides or {}).items():
        if model is None or not hasattr(model, key):
            raise ValueError(f"method {method!r} has no inference-time setting {key!r}")
        setattr(model, key, value)
    rows = []
    for i, name in enumerate(subjects):
        subj = load_subject(name, lr_dir, reference_series)
        if getattr(model, "arbitrary_scale", False):
            # One model for any r: it needs the nominal scale and this image's HR shape.
            from mrisr.upscale import super_resolve_any_scale

            sr = super_resolve_any_scale(model, subj.lr, subj.grid, float(scale), device=device)
        else:
            sr = super_resolve(subj.lr, subj.grid, method, model=model, ref=subj.ref, device=device,
                               cycle=subj.cycle)
        sr = np.clip(sr, 0.0, 1.0)
        rows.append({"subject": name, **subject_metrics(sr, subj.hr, subj.grid)})
        if save_sr:
            write_nifti(out_dir / "sr" / f"{name}.nii.gz", sr, subj.hr_affine)
        if i == 0:
            with atomic_path(out_dir / "example.npz") as tmp:
                np.savez(tmp, **example_images(subj.lr, sr, subj.hr, subj.grid))
    meta = {
        "dataset": dataset,
        "task": task,
        "scale": float(scale),
        "method": method,
        "n_params": n_params,
        "model": model_text,
        "n_subjects": len(rows),
        "overrides": overrides or {},
    }
    write_json(out_dir / "meta.json", meta)
    write_metrics_csv(out_dir / "metrics.csv", rows)
