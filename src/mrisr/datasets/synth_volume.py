"""Synthetic 3D head-like T1w volume at 0.7 mm isotropic (HCP stand-in).

Skin and scalp fat, a three-layer skull (dark tables around bright diploic marrow), CSF,
a folded cerebral cortex (grey ribbon lining every sulcus, white-matter fingers in the
gyri), a finely foliated cerebellum, brainstem, lateral ventricles and deep grey nuclei.
MPRAGE-like T1w contrast (WM bright, GM darker, CSF dark, fat bright), tissue texture,
a coil bias field and Rician noise. Anatomy is defined relative to the field of view,
so a small test volume is a small head, not a crop of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrisr.datasets import phantom as ph
from mrisr.datasets.synth_params import ANATOMIES, choice, int_tuple, merge_params, non_negative, positive_floats
from mrisr.io import write_nifti

DEFAULTS = {"shape": [96, 120, 96], "spacing": [0.7, 0.7, 0.7], "noise": 0.02, "anatomy": "phantom"}
# MPRAGE-like relative T1w intensities.
INTENSITY = {"skin": 0.45, "fat": 0.95, "skull": 0.06, "csf": 0.12, "gm": 0.55, "deep_gm": 0.70, "wm": 0.88}
GAIN = 1000.0


@dataclass
class VolumeSubject:
    image: np.ndarray  # (X, Y, Z) float32
    affine: np.ndarray
    fractions: dict[str, np.ndarray] = field(default_factory=dict)  # tissue -> partial-volume fraction


def resolve_params(params: dict | None) -> dict:
    p = merge_params("volume", DEFAULTS, params)
    return {
        "shape": list(int_tuple("shape", p["shape"], 3, minimum=8)),
        "spacing": list(positive_floats("spacing", p["spacing"], 3)),
        "noise": non_negative("noise", p["noise"]),
        "anatomy": choice("anatomy", p["anatomy"], ANATOMIES),
    }


def head_layers(rng: np.random.Generator, coords: ph.Coords, shape, spacing, length, width) -> list:
    """Soft tissue layers of the head, bottom layer first (x: left→right, y: post→ant, z: inf→sup)."""
    extent = [n * s / (2.0 * length) for n, s in zip(shape, spacing)]  # half-FOV per axis, normalised
    c = np.array([rng.normal(0.0, 0.02), rng.normal(0.0, 0.02), rng.uniform(-0.12, -0.04)])
    head = np.array([0.92 * extent[0], 0.95 * extent[1], 1.02 * extent[2]]) * rng.uniform(0.95, 1.0, 3)
    angle = rng.normal(0.0, 0.04)

    def shell(depth: float) -> np.ndarray:
        return ph.soft(ph.ellipsoid_sdf(coords, c, head - depth, angle), width)

    layers = [("skin", shell(0.0)), ("fat", shell(0.025)), ("skull", shell(0.07)), ("fat", shell(0.085)),
              ("skull", shell(0.10)), ("csf", shell(0.12))]
    brain = head - rng.uniform(0.15, 0.17)
    # a small head drawn at 0.7 mm: ribbon and gyri proportionally thicker so they span voxels
    layers += ph.folded_cortex(rng, coords, c, brain, angle, shape, spacing, length, fold_scale=0.07, width=width,
                               thickness=(0.11, 0.14), depth=(0.25, 0.32), sulcus_width=0.3)
    # cerebellum under the occipital lobes, behind the brainstem; finer folds (folia)
    cb_c = c + np.array([0.0, -0.50 * brain[1], -0.55 * brain[2]])
    cb = np.array([0.60 * brain[0], 0.38 * brain[1], 0.30 * brain[2]])
    layers.append(("csf", ph.soft(ph.ellipsoid_sdf(coords, cb_c, cb + 0.03, angle), width)))
    layers += ph.folded_cortex(rng, coords, cb_c, cb, angle, shape, spacing, length, fold_scale=0.03, width=width,
                               thickness=(0.2, 0.25), depth=(0.3, 0.4), sulcus_width=0.3)
    stem_c = c + np.array([0.0, -0.15 * brain[1], -0.60 * brain[2]])
    layers.append(("wm", ph.soft(ph.ellipsoid_sdf(coords, stem_c, (0.13, 0.15, 0.40 * brain[2]), angle), width)))
    for side in (-1.0, 1.0):  # deep grey nuclei, then the lateral ventricles beside the midline
        dc = c + np.array([side * 0.22 * brain[0], 0.0, 0.0])
        layers.append(("deep_gm", ph.soft(ph.ellipsoid_sdf(coords, dc, (0.10, 0.17, 0.11), side * 0.2), width)))
    for side in (-1.0, 1.0):
        vc = c + np.array([side * rng.uniform(0.08, 0.11), rng.uniform(0.0, 0.08), 0.15 * brain[2]])
        semi = (rng.uniform(0.04, 0.07), rng.uniform(0.28, 0.36), rng.uniform(0.09, 0.13))
        layers.append(("csf", ph.soft(ph.ellipsoid_sdf(coords, vc, semi, side * 0.12), width)))
    return layers


def generate_volume(rng: np.random.Generator, params: dict | None = None) -> VolumeSubject:
    """One synthetic T1w head (all randomness from `rng`)."""
    p = resolve_params(params)
    shape, spacing = tuple(p["shape"]), p["spacing"]
    if p["anatomy"] == "mni152":
        return generate_volume_from_anatomy(rng, shape, spacing, p["noise"])
    length = 0.5 * min(shape[0] * spacing[0], shape[2] * spacing[2])  # head width sets the scale
    coords = ph.normalised_coords(shape, spacing, length)
    width = 0.35 * min(spacing) / length
    fractions = ph.composite(head_layers(rng, coords, shape, spacing, length, width))
    intensity = {k: ph.jitter(rng, v, 0.05) for k, v in INTENSITY.items()}
    clean = sum(fractions[k] * intensity[k] for k in fractions if k != "background")
    texture = 1.0 + 0.04 * ph.smooth_field(rng, shape, (1.2, 1.2, 1.2)) + 0.03 * ph.smooth_field(rng, shape, (4, 4, 4))
    clean = clean * texture * ph.bias_field(rng, coords, strength=0.2)
    image = ph.rician(rng, clean, p["noise"] * intensity["wm"]) * GAIN
    return VolumeSubject(image.astype(np.float32), ph.centred_affine(shape, spacing), fractions)


def generate_volume_from_anatomy(rng: np.random.Generator, shape, spacing, noise: float) -> VolumeSubject:
    """A T1w block of real brain anatomy (MNI152 labels, see anatomy.py): the whole head when
    the field of view holds it, else a random block of it."""
    from mrisr.datasets import anatomy

    anat = anatomy.sample_anatomy(rng, shape, spacing, slab=False)
    image = anatomy.render(rng, anat, ["t1"], spacing, noise, slab=False)["t1"]
    return VolumeSubject(image, ph.centred_affine(shape, spacing), anat.fractions)


def write_volume_subject(out_dir: Path, subject: str, s: VolumeSubject) -> None:
    """HCP layout: {subject}/T1w/T1w_acpc_dc_restore.nii.gz."""
    write_nifti(Path(out_dir) / subject / "T1w" / "T1w_acpc_dc_restore.nii.gz", s.image, s.affine)
