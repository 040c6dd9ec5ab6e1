"""Synthetic paired contrasts (BraTS-like brain T1/T2, or knee PD/FS-PD) from ONE tissue map.

Each subject gets one random anatomy as soft tissue fractions (partial volume at every
edge); every contrast is rendered from the same fractions through the spin-echo signal
equation S = PD·(1−exp(−TR/T1))·exp(−TE/T2) with per-tissue PD, T1, T2 (jittered per
subject). The contrasts therefore share every boundary but not their intensities —
exactly what a multi-contrast SR network can exploit. Texture, a coil bias field and
Rician noise are added per contrast (noise independently, as in separate acquisitions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrisr.datasets import phantom as ph
from mrisr.datasets.synth_params import choice, int_tuple, merge_params, non_negative, positive_floats
from mrisr.io import write_nifti

DEFAULTS = {"size": [128, 128], "slices": 8, "spacing": [1.0, 1.0, 4.0], "flavour": "brain", "noise": 0.02}

# (PD, T1 ms, T2 ms, is_fat) at 1.5 T, textbook values.
TISSUES = {
    "brain": {
        "fat": (0.9, 350, 80, True), "skull": (0.1, 500, 30, False), "csf": (1.0, 4000, 2000, False),
        "gm": (0.85, 1300, 100, False), "wm": (0.70, 800, 80, False), "lesion": (0.9, 1500, 250, False),
    },
    "knee": {
        "fat": (0.9, 350, 80, True), "muscle": (0.7, 1100, 35, False), "marrow": (0.85, 370, 90, True),
        "cortex": (0.05, 500, 1, False), "cartilage": (0.75, 1000, 40, False), "fluid": (1.0, 3000, 1500, False),
    },
}
# Protocols: (TR, TE) in ms; "fs" suppresses fat (FS-PD).
PROTOCOLS = {"t1": (500.0, 15.0, False), "t2": (4000.0, 100.0, False), "pd": (3000.0, 30.0, False),
             "pdfs": (3000.0, 30.0, True)}
CONTRASTS = {"brain": ("t1", "t2"), "knee": ("pd", "pdfs")}
FAT_SUPPRESSION = 0.08  # residual fat signal after suppression
GAIN = 1000.0


@dataclass
class MultiContrastSubject:
    images: dict[str, np.ndarray]  # contrast -> (X, Y, Z) float32
    affine: np.ndarray


def resolve_params(params: dict | None) -> dict:
    p = merge_params("multicontrast", DEFAULTS, params)
    return {
        "size": list(int_tuple("size", p["size"], 2, minimum=8)),
        "slices": int_tuple("slices", p["slices"], 1)[0],
        "spacing": list(positive_floats("spacing", p["spacing"], 3)),
        "flavour": choice("flavour", p["flavour"], tuple(TISSUES)),
        "noise": non_negative("noise", p["noise"]),
    }


def _brain_layers(rng: np.random.Generator, c: ph.Coords, width: float) -> list[tuple[str, np.ndarray]]:
    """Head: scalp fat, skull, CSF, folded cortex (GM), WM, ventricles, a few lesions."""
    shape = np.broadcast_shapes(*(a.shape for a in c))
    centre = (*rng.normal(0, 0.02, 2), 0.0)
    semi = np.array([rng.uniform(0.78, 0.86), rng.uniform(0.9, 0.97), 50.0])
    angle = rng.uniform(-0.1, 0.1)
    folds = ph.bandpass_field(rng, shape, (2.5, 2.5, 0.6))
    layers = [("fat", ph.soft(ph.ellipsoid_sdf(c, centre, semi, angle), width)),
              ("skull", ph.soft(ph.ellipsoid_sdf(c, centre, semi * [0.93, 0.94, 1], angle), width)),
              ("csf", ph.soft(ph.ellipsoid_sdf(c, centre, semi * [0.86, 0.87, 1], angle), width))]
    brain = ph.ellipsoid_sdf(c, centre, semi * [0.83, 0.84, 1], angle)
    layers.append(("gm", ph.soft(brain + 0.025 * np.maximum(folds, 0), width)))  # sulci: CSF dips in
    layers.append(("wm", ph.soft(brain + 0.09 + 0.035 * folds, width)))  # GM ribbon of varying depth
    for sign in (-1, 1):  # lateral ventricles
        vc = (centre[0] + sign * rng.uniform(0.07, 0.11), centre[1] + rng.uniform(-0.05, 0.05), 0.0)
        layers.append(("csf", ph.soft(ph.ellipsoid_sdf(c, vc, (rng.uniform(0.04, 0.07), rng.uniform(0.18, 0.26), 50.0),
                                                      sign * rng.uniform(0.1, 0.3)), width)))
    for _ in range(int(rng.integers(0, 4))):  # white-matter lesions (bright on T2)
        lc = (*(np.array(centre[:2]) + rng.uniform(-0.35, 0.35, 2)), 0.0)
        layers.append(("lesion", ph.soft(ph.ellipsoid_sdf(c, lc, (*rng.uniform(0.03, 0.08, 2), 50.0)), width)
                       * ph.soft(brain + 0.12, width)))
    return layers


def _knee_layers(rng: np.random.Generator, c: ph.Coords, width: float) -> list[tuple[str, np.ndarray]]:
    """Sagittal-ish knee: subcutaneous fat, muscle, femur and tibia (cortex + fatty marrow),
    cartilage caps on both, joint fluid between them."""
    gap = rng.uniform(0.05, 0.09)
    layers = [("fat", ph.soft(ph.ellipsoid_sdf(c, (0, 0, 0), (rng.uniform(0.85, 0.95), rng.uniform(0.9, 0.98), 50)), width)),
              ("muscle", ph.soft(ph.ellipsoid_sdf(c, (0, 0, 0), (rng.uniform(0.72, 0.8), rng.uniform(0.8, 0.88), 50)), width)),
              ("fluid", ph.soft(ph.ellipsoid_sdf(c, (0, 0, 0), (0.5, gap + 0.08, 50)), width))]
    for sign in (-1, 1):  # femur above (y>0), tibia below
        bc = (rng.uniform(-0.05, 0.05), sign * (gap + rng.uniform(0.35, 0.42)), 0.0)
        semi = (rng.uniform(0.38, 0.45), rng.uniform(0.36, 0.42), 50.0)
        layers.append(("cartilage", ph.soft(ph.ellipsoid_sdf(c, bc, semi), width)))
        layers.append(("cortex", ph.soft(ph.ellipsoid_sdf(c, bc, (semi[0] - 0.03, semi[1] - 0.03, 50)), width)))
        layers.append(("marrow", ph.soft(ph.ellipsoid_sdf(c, bc, (semi[0] - 0.06, semi[1] - 0.06, 50)), width)))
    return layers


def render(fractions: dict[str, np.ndarray], tissues: dict, protocol: str) -> np.ndarray:
    """Signal of every voxel: tissue fractions weighted by their spin-echo signal."""
    tr, te, fat_sat = PROTOCOLS[protocol]
    out = np.zeros(next(iter(fractions.values())).shape)
    for name, frac in fractions.items():
        if name == "background":
            continue
        pd, t1, t2, is_fat = tissues[name]
        out += frac * ph.spin_echo(pd, t1, t2, tr, te) * (FAT_SUPPRESSION if fat_sat and is_fat else 1.0)
    return out


def generate_multicontrast(rng: np.random.Generator, params: dict | None = None) -> MultiContrastSubject:
    p = resolve_params(params)
    nx, ny = p["size"]
    shape = (nx, ny, p["slices"])
    spacing = p["spacing"]
    length = 0.5 * min(nx * spacing[0], ny * spacing[1])
    coords = ph.normalised_coords(shape, spacing, length)
    width = 0.35 * min(spacing[:2]) / length
    flavour = p["flavour"]
    tissues = {k: (ph.jitter(rng, v[0], 0.05), ph.jitter(rng, v[1], 0.08), ph.jitter(rng, v[2], 0.08), v[3])
               for k, v in TISSUES[flavour].items()}
    layers = (_brain_layers if flavour == "brain" else _knee_layers)(rng, coords, width)
    fractions = ph.composite([(n, np.broadcast_to(m, shape)) for n, m in layers])
    texture = 1.0 + 0.06 * ph.smooth_field(rng, shape, (1.5, 1.5, 0.3))  # shared tissue micro-structure
    images = {}
    for contrast in CONTRASTS[flavour]:
        clean = render(fractions, tissues, contrast) * texture
        bias = ph.bias_field(rng, coords, strength=0.2)
        clean = clean / max(float(np.percentile(clean, 99.5)), 1e-6)
        images[contrast] = (ph.rician(rng, clean * bias, p["noise"]) * GAIN).astype(np.float32)
    return MultiContrastSubject(images, ph.centred_affine(shape, spacing))


def write_multicontrast_subject(out_dir: Path, subject: str, s: MultiContrastSubject) -> None:
    """BraTS layout: {subject}/{subject}_{contrast}.nii.gz."""
    for contrast, image in s.images.items():
        write_nifti(Path(out_dir) / subject / f"{subject}_{contrast}.nii.gz", image, s.affine)
