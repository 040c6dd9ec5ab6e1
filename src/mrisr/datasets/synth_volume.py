"""Synthetic 3D head-like T1w volume at 0.7 mm (HCP stand-in).

Scalp fat, skull, CSF, a folded cortical grey-matter ribbon (sulci from a band-pass
random field), white matter, lateral ventricles and deep grey nuclei; T1w contrast
(WM bright, GM darker, CSF dark), texture, a coil bias field and Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrisr.datasets import phantom as ph
from mrisr.datasets.synth_params import int_tuple, merge_params, non_negative, positive_floats
from mrisr.io import write_nifti

DEFAULTS = {"shape": [96, 120, 96], "spacing": [0.7, 0.7, 0.7], "noise": 0.02}
# MPRAGE-like relative T1w intensities.
INTENSITY = {"fat": 0.95, "skull": 0.08, "csf": 0.12, "gm": 0.55, "wm": 0.85, "deep": 0.65}
GAIN = 1000.0


@dataclass
class VolumeSubject:
    image: np.ndarray  # (X, Y, Z) float32
    affine: np.ndarray


def resolve_params(params: dict | None) -> dict:
    p = merge_params("volume", DEFAULTS, params)
    return {"shape": list(int_tuple("shape", p["shape"], 3, minimum=8)),
            "spacing": list(positive_floats("spacing", p["spacing"], 3)),
            "noise": non_negative("noise", p["noise"])}


def generate_volume(rng: np.random.Generator, params: dict | None = None) -> VolumeSubject:
    p = resolve_params(params)
    shape, spacing = tuple(p["shape"]), p["spacing"]
    length = 0.5 * min(n * s for n, s in zip(shape, spacing))
    c = ph.normalised_coords(shape, spacing, length)
    width = 0.35 * min(spacing) / length
    centre = tuple(rng.normal(0, 0.02, 3))
    semi = np.array([rng.uniform(0.86, 0.94), rng.uniform(0.95, 1.05), rng.uniform(0.86, 0.94)])
    semi = semi * np.array([1.0, max(shape[1] * spacing[1], 1) / max(shape[0] * spacing[0], 1), 1.0]) ** 0.5
    folds = ph.bandpass_field(rng, shape, (2.5, 2.5, 2.5))
    brain = ph.ellipsoid_sdf(c, centre, semi * 0.84)
    layers = [("fat", ph.soft(ph.ellipsoid_sdf(c, centre, semi), width)),
              ("skull", ph.soft(ph.ellipsoid_sdf(c, centre, semi * 0.94), width)),
              ("csf", ph.soft(ph.ellipsoid_sdf(c, centre, semi * 0.88), width)),
              ("gm", ph.soft(brain + 0.03 * np.maximum(folds, 0), width)),
              ("wm", ph.soft(brain + 0.1 + 0.04 * folds, width))]
    for sign in (-1, 1):
        vc = (centre[0] + sign * rng.uniform(0.06, 0.1), centre[1] + rng.uniform(-0.05, 0.05), centre[2] + 0.05)
        layers.append(("deep", ph.soft(ph.ellipsoid_sdf(c, (vc[0] + sign * 0.12, vc[1], vc[2] - 0.12),
                                                         (0.08, 0.12, 0.08)), width)))
        layers.append(("csf", ph.soft(ph.ellipsoid_sdf(c, vc, (rng.uniform(0.04, 0.06), rng.uniform(0.22, 0.3),
                                                                rng.uniform(0.08, 0.12))), width)))
    fractions = ph.composite(layers)
    intensity = {k: ph.jitter(rng, v, 0.05) for k, v in INTENSITY.items()}
    clean = sum(fractions[k] * intensity[k] for k in fractions if k != "background")
    clean = clean * (1.0 + 0.05 * ph.smooth_field(rng, shape, (1.5, 1.5, 1.5)))
    clean = clean * ph.bias_field(rng, c, strength=0.2)
    image = ph.rician(rng, clean, p["noise"]) * GAIN
    return VolumeSubject(image.astype(np.float32), ph.centred_affine(shape, spacing))


def write_volume_subject(out_dir: Path, subject: str, s: VolumeSubject) -> None:
    """HCP layout: {subject}/T1w/T1w_acpc_dc_restore.nii.gz."""
    write_nifti(Path(out_dir) / subject / "T1w" / "T1w_acpc_dc_restore.nii.gz", s.image, s.affine)
