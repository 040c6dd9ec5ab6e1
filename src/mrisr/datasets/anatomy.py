"""Built-in subjects from real anatomy (`params: {anatomy: mni152}`), in the spirit of SynthSR.

The geometry is a real brain: the ICBM152 2009a (symmetric) grey- and white-matter
probability maps shipped inside the `nilearn` wheel, read as data files (nilearn itself is
never imported). Their intensities are never used as images: the 152-subject average is far
too smooth to be a super-resolution target. Per subject, all randomness from one
numpy Generator (so a subject is a function of its seed):

* a random smooth deformation of the atlas — rotation, anisotropic scale, shear, shift and a
  nonlinear displacement on a ~30 mm control grid — evaluated only at the output voxels
  (a slab of slices costs the slab, not a volume);
* tissue fractions with partial volume at every edge: the maps are cut at spatially
  varying thresholds (cortical thickness and sulcal width vary), and each cut becomes a
  one-voxel ramp of (value − threshold) / |gradient|, the box-integrated partial volume
  of a locally straight edge; CSF fills the intracranial volume around the brain, and head
  shells (dura, skull tables, diploë, fat, skin) of random, varying thickness follow its
  distance map (the maps are skull-stripped); optional lesions (a core in an oedema halo);
* per contrast, random per-tissue intensities around a T1w / T2w / PD / PD-FS / FLAIR table,
  a shared within-tissue texture and coil bias (one anatomy, one session), and per scan a
  Gaussian PSF and Rician noise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline

from mrisr.datasets import phantom as ph
from mrisr.datasets.synth_params import ANATOMIES  # noqa: F401 -- re-exported
from mrisr.errors import InputError

PACKAGE = "nilearn"
PIN = "nilearn==0.13.1"  # as in requirements.txt; the files are the same in 0.13.1 and 0.14.1
MNI_DIR = ("datasets", "data")
MNI_FILES = {  # map -> (file inside the package, sha256)
    "gm": ("mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
           "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed"),
    "wm": ("mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
           "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db"),
}

TISSUES = ("background", "csf", "gm", "wm", "bone", "marrow", "fat", "skin", "oedema", "lesion")
# Relative mean intensity of each tissue per contrast (background 0); jittered per subject.
CONTRASTS = {
    "t1": dict(csf=0.12, gm=0.55, wm=0.88, bone=0.05, marrow=0.85, fat=0.95, skin=0.45, oedema=0.42, lesion=0.32),
    "t2": dict(csf=1.00, gm=0.55, wm=0.35, bone=0.04, marrow=0.55, fat=0.60, skin=0.40, oedema=0.80, lesion=0.90),
    "pd": dict(csf=0.90, gm=0.80, wm=0.65, bone=0.05, marrow=0.80, fat=0.85, skin=0.60, oedema=0.85, lesion=0.88),
    "pdfs": dict(csf=0.90, gm=0.70, wm=0.55, bone=0.04, marrow=0.12, fat=0.10, skin=0.50, oedema=0.80, lesion=0.85),
    "flair": dict(csf=0.06, gm=0.75, wm=0.55, bone=0.04, marrow=0.50, fat=0.60, skin=0.45, oedema=0.95, lesion=0.70),
}
SHELLS = ("csf", "bone", "marrow", "bone", "fat", "skin")  # outwards from the intracranial surface (dura: csf)
SHELL_MM = ((0.5, 2.0), (1.0, 2.5), (1.0, 4.0), (1.0, 2.5), (1.5, 6.0), (1.5, 3.5))  # thickness ranges
# Slab planes: output axes (x, y, slice normal) -> atlas axes (R, A, S), proper rotations.
PLANES = {
    "axial": np.eye(3),
    "coronal": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),  # x->R, y->S, normal->-A
    "sagittal": np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]),  # x->A, y->S, normal->R
}
# Half extents (mm) of the intracranial volume about the brain's centre of mass, per output
# in-plane axis of each plane, and the span of slab centres along its normal (S, −A, R).
HALF = {"axial": (70.0, 85.0), "coronal": (70.0, 55.0), "sagittal": (85.0, 55.0)}
NORMAL_SPAN = {"axial": (-40.0, 55.0), "coronal": (-45.0, 60.0), "sagittal": (-55.0, 55.0)}
VOLUME_HALF = (70.0, 85.0, 55.0)
GAIN = 1000.0


class MissingAnatomyError(InputError):
    """The atlas files are not installed (one line naming the package and how to install it)."""


@dataclass(frozen=True)
class Atlas:
    tissue: np.ndarray  # GM + WM probability, float32, on the MNI 1 mm grid (RAS)
    contrast: np.ndarray  # WM − GM probability
    to_voxel: np.ndarray  # 4x4 world mm -> voxel of tissue / contrast
    sd: np.ndarray  # signed distance (mm) to the intracranial surface, > 0 outside, on a 2 mm grid
    sd_to_voxel: np.ndarray  # 4x4 world mm -> voxel of sd
    centre: np.ndarray  # brain centre of mass, world mm


def mni_file(name: str) -> Path:
    """Path of one MNI152 map inside the installed nilearn, checked against its sha256."""
    spec = find_spec(PACKAGE)  # locates the package without importing it (nilearn imports sklearn)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAnatomyError(
            PACKAGE, f"not installed: anatomy 'mni152' reads the MNI152 grey/white-matter maps shipped in the "
                     f"{PACKAGE} package; install it with `python -m pip install {PIN}` (it is in requirements.txt)")
    fname, sha = MNI_FILES[name]
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MNI_DIR, fname)
    if not path.is_file():
        raise MissingAnatomyError(path, f"missing from the installed {PACKAGE}; reinstall `{PIN}`")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha:
        raise MissingAnatomyError(path, f"sha256 {digest[:12]}… is not the MNI152 map of {PIN} ({sha[:12]}…)")
    return path


@lru_cache(maxsize=1)
def atlas() -> Atlas:
    """The MNI152 maps and what is derived from them, built once per process (~1 CPU-s).

    The intracranial volume (brain, closed and filled, plus 2 mm of CSF) and its signed
    distance map live on a 2 mm grid: they place the CSF and the head shells, whose
    thicknesses are random anyway, and the distance transform costs 8× less there.
    """
    import nibabel as nib

    maps, affine = {}, None
    for name in MNI_FILES:
        img = nib.as_closest_canonical(nib.load(str(mni_file(name))))
        maps[name] = np.asarray(img.dataobj, dtype=np.float32) / np.float32(255.0)
        affine = img.affine
    tissue = maps["gm"] + maps["wm"]
    even = tissue[tuple(slice(0, n - n % 2) for n in tissue.shape)]
    coarse = even.reshape([v for n in even.shape for v in (n // 2, 2)]).mean(axis=(1, 3, 5))  # 2x2x2 blocks
    brain = coarse > 0.2
    icv = ndimage.binary_fill_holes(ndimage.binary_closing(brain, iterations=2))
    icv = ndimage.binary_dilation(icv, iterations=1)  # sulcal and subarachnoid CSF around the brain
    sd = ndimage.distance_transform_edt(~icv, sampling=2.0).astype(np.float32)
    sd -= ndimage.distance_transform_edt(icv, sampling=2.0).astype(np.float32)
    coarse_affine = affine @ np.array([[2.0, 0, 0, 0.5], [0, 2, 0, 0.5], [0, 0, 2, 0.5], [0, 0, 0, 1]])
    centre = coarse_affine[:3, :3] @ np.array(ndimage.center_of_mass(brain)) + coarse_affine[:3, 3]
    return Atlas(tissue, maps["wm"] - maps["gm"], np.linalg.inv(affine), sd, np.linalg.inv(coarse_affine), centre)


@dataclass
class Anatomy:
    """One subject's tissue fractions on the output grid; fractions sum to one per voxel."""

    fractions: dict[str, np.ndarray]  # tissue -> (X, Y, Z) float32
    texture_amp: dict[str, float]  # tissue -> relative within-tissue texture
    plane: str


def _grid_field(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], ctrl_mm: float,
                sigma: float) -> np.ndarray:
    """Smooth random field on the output grid: N(0, sigma) on a control grid of about
    ctrl_mm spacing (a little beyond the field of view), cubic-spline interpolated as a
    tensor product (cost ∝ voxels × control points per axis)."""
    weights = []
    for n, s in zip(shape, spacing):
        half = (n - 1) * s / 2.0
        m = max(2, int(np.ceil(2 * half / ctrl_mm)) + 2)
        ctrl = np.linspace(-half - ctrl_mm / 2, half + ctrl_mm / 2, m)
        out = np.linspace(-half, half, n)
        weights.append(CubicSpline(ctrl, np.eye(m), axis=0)(out).astype(np.float32))
    field = rng.normal(0.0, sigma, size=tuple(w.shape[1] for w in weights)).astype(np.float32)
    # one axis at a time, as elementwise multiply-adds (no BLAS: the same bits on any thread count)
    for axis, w in enumerate(weights):
        moved = np.moveaxis(field, axis, 0)
        out = np.zeros((w.shape[0],) + moved.shape[1:], np.float32)
        for c in range(w.shape[1]):
            out += w[:, c].reshape((-1,) + (1,) * (moved.ndim - 1)) * moved[c]
        field = np.moveaxis(out, 0, axis)
    return np.ascontiguousarray(field)


def _rotation(angles_deg: Sequence[float]) -> np.ndarray:
    r = np.eye(3)
    for axis, deg in enumerate(angles_deg):
        a = np.deg2rad(deg)
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        rot = np.eye(3)
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
        r = r @ rot
    return r


def _ramp(g: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Fraction of each voxel where g > 0: a one-voxel ramp of g / |∇g| (gradient in voxel
    units along `axes`), the partial volume of a locally straight edge."""
    grads = np.gradient(g, axis=tuple(axes))
    grads = grads if isinstance(grads, (list, tuple)) else [grads]
    norm = np.sqrt(sum(d * d for d in grads)) + np.float32(1e-3)
    return np.clip(0.5 + g / norm, 0.0, 1.0).astype(np.float32)


def sample_anatomy(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], *, slab: bool,
                   lesions: bool = False) -> Anatomy:
    """Tissue fractions of one random subject on the grid `shape` × `spacing` (mm).

    slab=True: a stack of thin slices along axis 2 (in-plane partial volume only), cut in a
    random plane (mostly axial) at a random level; slab=False: an upright volume, a random
    block of the head when the field of view is smaller than the head.
    """
    at = atlas()
    shape, spacing = tuple(int(n) for n in shape), tuple(float(s) for s in spacing)
    axes = (0, 1) if slab else (0, 1, 2)
    # --- where the field of view lies and how the anatomy is deformed (output mm -> atlas mm)
    if slab:
        plane = str(rng.choice(["axial", "axial", "coronal", "sagittal"]))
        half = [max(0.0, h - (n - 1) * s / 2) for h, n, s in zip(HALF[plane], shape, spacing)]
        lo, hi = NORMAL_SPAN[plane]
        reach = (shape[2] - 1) * spacing[2] / 2
        level = rng.uniform(lo + reach, hi - reach) if hi - lo > 2 * reach else (lo + hi) / 2
        offset = np.array([rng.uniform(-half[0], half[0]), rng.uniform(-half[1], half[1]), level])
        spin = 180.0 if rng.random() < 0.5 else 15.0
        angles = (rng.uniform(-10, 10), rng.uniform(-10, 10), rng.uniform(-spin, spin))
    else:
        plane = "axial"
        half = [max(0.0, h - (n - 1) * s / 2) for h, n, s in zip(VOLUME_HALF, shape, spacing)]
        offset = np.array([rng.uniform(-h, h) for h in half]) + rng.normal(0.0, 3.0, 3)
        angles = tuple(rng.uniform(-10, 10, 3))
    scale = rng.uniform(0.88, 1.12, 3)
    shear = np.eye(3) + rng.uniform(-0.05, 0.05, (3, 3)) * (1 - np.eye(3))
    linear = PLANES[plane] @ _rotation(angles) @ shear @ np.diag(scale)
    nl_sigma = rng.uniform(0.0, 3.0)  # mm
    disp = [_grid_field(rng, shape, spacing, 30.0, nl_sigma) for _ in range(3)]
    # --- sample the atlas at the deformed output voxels
    pos = [((np.arange(n, dtype=np.float32) - (n - 1) / 2) * s) for n, s in zip(shape, spacing)]
    p = [pos[a].reshape([-1 if b == a else 1 for b in range(3)]) + disp[a] for a in range(3)]
    del disp

    def voxels(to_voxel: np.ndarray) -> np.ndarray:  # (3, X, Y, Z) atlas voxel coordinates of the output voxels
        m = to_voxel[:3, :3] @ linear
        base = to_voxel[:3, :3] @ (at.centre + PLANES[plane] @ offset) + to_voxel[:3, 3]
        return np.stack([np.float32(base[i]) + sum(np.float32(m[i, a]) * p[a] for a in range(3)) for i in range(3)])

    vox = voxels(at.to_voxel)
    tissue = ndimage.map_coordinates(at.tissue, vox, order=1, mode="constant")
    contrast = ndimage.map_coordinates(at.contrast, vox, order=1, mode="constant")
    vox = voxels(at.sd_to_voxel)
    sd = ndimage.map_coordinates(at.sd, vox, order=1, mode="nearest")
    limit = np.array(at.sd.shape, np.float32).reshape(3, 1, 1, 1) - 1
    beyond = np.maximum(-vox, 0) ** 2 + np.maximum(vox - limit, 0) ** 2
    sd += 2.0 * np.sqrt(beyond.sum(0))  # outside the atlas grid: the distance keeps growing (2 mm voxels)
    del vox, beyond, p
    # --- tissue fractions: thresholds that wander (thickness, sulcal width), one-voxel edges
    f_tissue = _ramp(tissue - 0.5 - _grid_field(rng, shape, spacing, 18.0, 0.08), axes)
    f_wm = _ramp(contrast - _grid_field(rng, shape, spacing, 18.0, 0.08), axes)
    thick = np.cumsum([rng.uniform(*r) for r in SHELL_MM])
    wobble = np.clip(1.0 + _grid_field(rng, shape, spacing, 35.0, 0.25), 0.5, 1.5)
    d = sd / wobble  # mm outside the intracranial surface, thickness varying around the head
    grads = np.gradient(d, axis=axes)
    norm = np.sqrt(sum(g * g for g in grads)) + np.float32(1e-3)
    inside = [np.clip(0.5 + (e - d) / norm, 0.0, 1.0).astype(np.float32) for e in (0.0, *thick)]
    fr = {k: np.zeros(shape, np.float32) for k in TISSUES}
    fr["wm"] = inside[0] * f_tissue * f_wm
    fr["gm"] = inside[0] * f_tissue * (1 - f_wm)
    fr["csf"] = inside[0] * (1 - f_tissue)
    for k, name in enumerate(SHELLS):
        fr[name] += inside[k + 1] - inside[k]
    fr["background"] = 1 - inside[-1]
    if lesions:
        _add_lesions(rng, fr, shape, spacing, axes)
    amp = {k: (0.0 if k == "background" else float(rng.uniform(0.0, 0.06))) for k in TISSUES}
    return Anatomy(fr, amp, plane)


def _add_lesions(rng: np.random.Generator, fr: dict, shape, spacing, axes) -> None:
    """0–2 lesions: an irregular oedema halo around a core, centred in white matter."""
    count = int(rng.choice([0, 0, 1, 2]))
    candidates = np.flatnonzero(fr["wm"] > 0.9)
    if count == 0 or candidates.size == 0:
        return
    mm = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    wobble = _grid_field(rng, shape, spacing, 12.0, 1.5)
    for _ in range(count):
        centre = np.unravel_index(candidates[rng.integers(candidates.size)], shape)
        dist = np.sqrt(sum((mm[a] - mm[a][centre[a]]).reshape([-1 if b == a else 1 for b in range(3)]) ** 2
                           for a in range(3))) + wobble
        core = rng.uniform(4.0, 12.0)
        halo = core * rng.uniform(1.5, 2.2)
        brain = fr["gm"] + fr["wm"]
        f_halo, f_core = _ramp(halo - dist, axes), _ramp(core - dist, axes)
        fr["lesion"] += brain * f_core
        fr["oedema"] += brain * (f_halo - f_core)
        fr["gm"] *= 1 - f_halo
        fr["wm"] *= 1 - f_halo


def render(rng: np.random.Generator, anatomy: Anatomy, contrasts: Sequence[str], spacing: Sequence[float],
           noise: float, slab: bool) -> dict[str, np.ndarray]:
    """Images of one anatomy under each contrast (float32, ×GAIN): texture and bias shared,
    tissue intensities, PSF and noise per contrast. `noise` is the mean Rician sigma
    relative to the brightest tissue (drawn uniformly in [0, 2·noise])."""
    fr = anatomy.fractions
    shape = fr["background"].shape
    axes = (0, 1) if slab else (0, 1, 2)
    sig = [rng.uniform(0.7, 2.0) if a in axes else 0.0 for a in range(3)]
    texture = ph.smooth_field(rng, shape, sig).astype(np.float32)
    texture += 0.5 * ph.smooth_field(rng, shape, [3 * s for s in sig]).astype(np.float32)
    length = 0.5 * min(n * s for n, s in zip(shape[:2], spacing[:2]))
    bias = ph.bias_field(rng, ph.normalised_coords(shape, spacing, length), rng.uniform(0.0, 0.3))
    images = {}
    for name in contrasts:
        table = CONTRASTS[name]
        mean = {k: ph.jitter(rng, v, 0.08) for k, v in table.items()}
        clean = sum(fr[k] * np.float32(mean[k]) for k in table)
        tex = sum(fr[k] * np.float32(mean[k] * anatomy.texture_amp[k]) for k in table)
        img = (clean + tex * texture) * bias
        psf = rng.uniform(0.0, 0.6)
        if psf > 0.05:
            img = ndimage.gaussian_filter(img, [psf if a in axes else 0.0 for a in range(3)])
        img = ph.rician(rng, img, rng.uniform(0.0, 2.0 * noise) * max(mean.values()))
        images[name] = (img * GAIN).astype(np.float32)
    return images
