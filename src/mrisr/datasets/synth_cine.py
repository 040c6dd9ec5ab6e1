"""Synthetic short-axis cine (ACDC stand-in): a beating heart inside a torso.

Per subject: a body ellipse with a subcutaneous fat ring, dark lungs, spine and aorta,
pericardial fat, and a heart whose left ventricle (bright blood pool inside a myocardial
ring, two papillary muscles) and right-ventricular crescent follow a cardiac cycle:
end-diastole (ED, largest cavity) at a random frame, contraction to end-systole (ES,
smallest) over about a third of the cycle, then rapid filling and diastasis. The
myocardial wall keeps its area (incompressible muscle), so it thickens in systole.
Slices run base → apex and shrink towards the apex. Texture, a coil bias field and
Rician noise make the images look acquired rather than drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from mrisr.datasets import phantom as ph
from mrisr.datasets.synth_params import int_tuple, merge_params, non_negative, positive_floats
from mrisr.io import atomic_path, write_nifti

DEFAULTS = {"size": [96, 96], "slices": 4, "frames": 30, "spacing": [1.8, 1.8, 8.0], "noise": 0.03}

# ACDC label values of the ground-truth maps.
LABEL_BG, LABEL_RV, LABEL_MYO, LABEL_LV = 0, 1, 2, 3

# bSSFP-like relative intensities (blood and fat bright, myocardium dark, lungs black).
INTENSITY = {"fat": 0.85, "tissue": 0.38, "lung": 0.05, "bone": 0.18, "marrow": 0.55, "blood": 0.92, "myo": 0.27}
GAIN = 1000.0  # scanner-like integer range; prepare rescales anyway


@dataclass
class CineSubject:
    image: np.ndarray  # (X,Y,Z,T) float32
    labels: np.ndarray  # (X,Y,Z,T) uint8, ACDC labels
    affine: np.ndarray  # 4x4, RAS
    ed: int  # 0-based frame index
    es: int  # 0-based frame index
    info: dict  # Info.cfg extras: Group, Height, Weight


def resolve_params(params: dict | None) -> dict:
    p = merge_params("cine", DEFAULTS, params)
    size = int_tuple("size", p["size"], 2, minimum=8)
    return {
        "size": list(size),
        "slices": int_tuple("slices", p["slices"], 1)[0],
        "frames": int_tuple("frames", p["frames"], 1, minimum=2)[0],
        "spacing": list(positive_floats("spacing", p["spacing"], 3)),
        "noise": non_negative("noise", p["noise"]),
    }


def contraction(t: int, ed: int, n_systole: int, frames: int) -> float:
    """Fraction of the ED→ES shortening at frame t: 0 only at ED, 1 only at ES.

    Systole follows half a cosine; diastole relaxes on a warped cosine (s**0.6) so
    that most refilling happens early (rapid filling) and little at the end (diastasis).
    """
    tau = (t - ed) % frames
    if tau <= n_systole:
        return 0.5 * (1.0 - np.cos(np.pi * tau / n_systole))
    s = (tau - n_systole) / (frames - n_systole)
    return 0.5 * (1.0 + np.cos(np.pi * s**0.6))


def _draw_anatomy(rng: np.random.Generator, frames: int) -> dict:
    """All random per-subject choices, drawn in a fixed order (determinism)."""
    a: dict = {}
    a["body_centre"] = rng.normal(0.0, 0.03, size=2)
    a["body_semi"] = (rng.uniform(0.88, 0.98), rng.uniform(0.66, 0.76))
    a["body_angle"] = rng.uniform(-0.08, 0.08)
    a["fat"] = rng.uniform(0.04, 0.08)
    a["heart_centre"] = np.array([rng.uniform(-0.18, 0.02), rng.uniform(-0.06, 0.08)])
    a["r_ed"] = rng.uniform(0.20, 0.25)  # LV endocardial radius at ED (base)
    a["wall"] = rng.uniform(0.07, 0.10)  # LV wall thickness at ED
    a["shortening"] = rng.uniform(0.28, 0.40)  # radial fractional shortening ED→ES
    a["rv_angle"] = np.pi / 4 + rng.uniform(-0.6, 0.6)  # RV lies right-anterior of the LV
    a["rv_dist"] = rng.uniform(0.45, 0.6)
    a["rv_radius"] = rng.uniform(1.05, 1.2)
    a["rv_shortening"] = rng.uniform(0.18, 0.28)
    a["apex_taper"] = rng.uniform(0.30, 0.45)
    a["slice_drift"] = rng.normal(0.0, 0.03, size=2)
    a["systolic_shift"] = rng.normal(0.0, 0.015, size=2)
    a["papillary_angle"] = rng.uniform(0.5, 0.9)
    n_systole = int(np.clip(round(frames * rng.uniform(0.30, 0.37)), 1, frames - 1))
    a["n_systole"] = n_systole
    a["ed"] = int(rng.integers(0, frames - n_systole))  # ES = ED + n_systole stays in range
    a["intensity"] = {k: ph.jitter(rng, v, 0.06) for k, v in INTENSITY.items()}
    a["info"] = {
        "Group": "NOR",
        "Height": float(round(rng.uniform(155.0, 195.0))),
        "Weight": float(round(rng.uniform(50.0, 105.0))),
    }
    return a


def _static_layers(a: dict, coords: ph.Coords, width: float) -> list[tuple[str, np.ndarray]]:
    """Torso structures that do not beat: body, fat ring, lungs, spine, aorta."""
    bx, by = a["body_centre"]
    sx, sy = a["body_semi"]
    ang, fat = a["body_angle"], a["fat"]
    body = ph.soft(ph.ellipsoid_sdf(coords, (bx, by, 0.0), (sx, sy, 1e6), ang), width)
    inner = ph.soft(ph.ellipsoid_sdf(coords, (bx, by, 0.0), (sx - fat, sy - fat, 1e6), ang), width)
    hx, hy = a["heart_centre"]
    lung_l = ph.soft(ph.ellipsoid_sdf(coords, (hx - 0.42, hy - 0.05, 0.0), (0.30, 0.46, 1e6), 0.15), width)
    lung_r = ph.soft(ph.ellipsoid_sdf(coords, (hx + 0.55, hy - 0.05, 0.0), (0.30, 0.48, 1e6), -0.15), width)
    spine_y = by - (sy - fat) + 0.16
    spine = ph.soft(ph.disk_sdf(coords, (bx, spine_y), 0.10), width)
    marrow = ph.soft(ph.disk_sdf(coords, (bx, spine_y), 0.075), width)
    aorta = ph.soft(ph.disk_sdf(coords, (bx - 0.13, spine_y + 0.14), 0.06), width)
    return [
        ("fat", body),
        ("tissue", inner),
        ("lung", lung_l * inner),
        ("lung", lung_r * inner),
        ("bone", spine),
        ("marrow", marrow),
        ("blood", aorta),
    ]


def _heart_geometry(a: dict, c: float, zn: np.ndarray) -> dict:
    """Centres and radii (per slice, shape (1,1,Z)) of the heart at contraction c."""
    taper = 1.0 - a["apex_taper"] * zn**2
    centre = (a["heart_centre"][0] + a["slice_drift"][0] * zn + c * a["systolic_shift"][0],
              a["heart_centre"][1] + a["slice_drift"][1] * zn + c * a["systolic_shift"][1])
    r_ed = a["r_ed"] * taper
    r_endo = r_ed * (1.0 - a["shortening"] * c)
    wall_area = (r_ed + a["wall"] * taper) ** 2 - r_ed**2  # /π, constant over the cycle
    r_epi = np.sqrt(r_endo**2 + wall_area)
    r_epi_ed = r_ed + a["wall"] * taper
    rv_r = a["rv_radius"] * r_epi_ed * taper**0.5 * (1.0 - a["rv_shortening"] * c)
    rv_d = a["rv_dist"] * r_epi_ed * (1.0 - 0.3 * a["rv_shortening"] * c)
    rv_centre = (centre[0] + rv_d * np.cos(a["rv_angle"]), centre[1] + rv_d * np.sin(a["rv_angle"]))
    return {"centre": centre, "r_endo": r_endo, "r_epi": r_epi, "rv_centre": rv_centre, "rv_r": rv_r}


def _heart_layers(a: dict, g: dict, coords: ph.Coords, width: float) -> tuple[list, dict[str, np.ndarray]]:
    """Soft masks of the heart (painted over the torso) and the label masks (soft)."""
    centre, rv_centre = g["centre"], g["rv_centre"]
    peri = np.minimum(
        ph.disk_sdf(coords, centre, g["r_epi"] + 0.05), ph.disk_sdf(coords, rv_centre, g["rv_r"] + 0.07)
    )
    rv_wall = ph.soft(ph.disk_sdf(coords, rv_centre, g["rv_r"] + 0.03), width)
    rv_blood = ph.soft(ph.disk_sdf(coords, rv_centre, g["rv_r"]), width)
    epi = ph.soft(ph.disk_sdf(coords, centre, g["r_epi"]), width)
    endo = ph.soft(ph.disk_sdf(coords, centre, g["r_endo"]), width)
    papillary = []
    for sign in (-1.0, 1.0):
        ang = a["rv_angle"] + np.pi + sign * a["papillary_angle"]
        dist = g["r_endo"] * 0.72
        pc = (centre[0] + dist * np.cos(ang), centre[1] + dist * np.sin(ang))
        papillary.append(ph.soft(ph.disk_sdf(coords, pc, g["r_endo"] * 0.16), width))
    layers = [
        ("fat", ph.soft(peri, width)),
        ("myo", rv_wall),
        ("blood", rv_blood),
        ("myo", epi),
        ("blood", endo),
        ("myo", papillary[0] * endo),
        ("myo", papillary[1] * endo),
    ]
    return layers, {"rv": rv_blood, "epi": epi, "endo": endo}


def _labels(masks: dict[str, np.ndarray]) -> np.ndarray:
    """ACDC labels by painter's order on the half-voxel masks: RV, then MYO over it, LV
    cavity (papillary muscles included, as in ACDC) over both."""
    lab = np.zeros(masks["epi"].shape, dtype=np.uint8)
    lab[masks["rv"] > 0.5] = LABEL_RV
    lab[masks["epi"] > 0.5] = LABEL_MYO
    lab[masks["endo"] > 0.5] = LABEL_LV
    return lab


def generate_cine(rng: np.random.Generator, params: dict | None = None) -> CineSubject:
    """One synthetic cine subject (all randomness from `rng`)."""
    p = resolve_params(params)
    nx, ny = p["size"]
    nz, nt = p["slices"], p["frames"]
    spacing = p["spacing"]
    shape = (nx, ny, nz)
    length = 0.5 * min(nx * spacing[0], ny * spacing[1])  # normalised units: half the in-plane FOV
    coords = ph.normalised_coords(shape, spacing, length)
    coords = (coords[0], coords[1], np.zeros_like(coords[2]))  # shapes are extruded along slices
    width = 0.35 * min(spacing[0], spacing[1]) / length  # edge ≈ partial volume of one voxel
    zn = (np.arange(nz, dtype=np.float64) / max(nz - 1, 1)).reshape(1, 1, nz)  # 0 = base, 1 = apex

    a = _draw_anatomy(rng, nt)
    texture = 1.0 + 0.07 * ph.smooth_field(rng, shape, (1.2, 1.2, 0.3)) + 0.04 * ph.smooth_field(
        rng, shape, (4.0, 4.0, 0.5)
    )
    bias = ph.bias_field(rng, ph.normalised_coords(shape, spacing, length), strength=0.3)
    static = _static_layers(a, coords, width)

    image = np.empty((nx, ny, nz, nt), dtype=np.float32)
    labels = np.empty((nx, ny, nz, nt), dtype=np.uint8)
    for t in range(nt):
        geom = _heart_geometry(a, contraction(t, a["ed"], a["n_systole"], nt), zn)
        heart, masks = _heart_layers(a, geom, coords, width)
        fractions = ph.composite(static + heart)
        clean = sum(fractions[k] * a["intensity"][k] for k in fractions if k != "background")
        image[..., t] = ph.rician(rng, clean * texture * bias, p["noise"]) * GAIN
        labels[..., t] = _labels(masks)
    affine = ph.centred_affine(shape, spacing)
    return CineSubject(image, labels, affine, a["ed"], a["ed"] + a["n_systole"], a["info"])


def info_cfg_text(ed: int, es: int, frames: int, info: dict) -> str:
    """ACDC's Info.cfg, byte for byte in its format (ED/ES are 1-based frame numbers)."""
    return (
        f"ED: {ed + 1}\nES: {es + 1}\nGroup: {info['Group']}\nHeight: {info['Height']:.1f}\n"
        f"NbFrame: {frames}\nWeight: {info['Weight']:.1f}\n"
    )


def write_labels(path: Path, labels: np.ndarray, affine: np.ndarray) -> None:
    """uint8 label map, atomically (ACDC ships its _gt files as integers)."""
    img = nib.Nifti1Image(np.asarray(labels, dtype=np.uint8), affine)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def write_cine_subject(out_dir: Path, subject: str, s: CineSubject) -> None:
    """ACDC layout: {subject}/{subject}_4d.nii.gz, Info.cfg, ED/ES frames and _gt maps."""
    folder = Path(out_dir) / subject
    write_nifti(folder / f"{subject}_4d.nii.gz", s.image, s.affine)
    for frame in sorted({s.ed, s.es}):
        stem = folder / f"{subject}_frame{frame + 1:02d}"
        write_nifti(f"{stem}.nii.gz", s.image[..., frame], s.affine)
        write_labels(Path(f"{stem}_gt.nii.gz"), s.labels[..., frame], s.affine)
    with atomic_path(folder / "Info.cfg") as tmp:  # last: it marks the subject for the reader
        tmp.write_text(info_cfg_text(s.ed, s.es, s.image.shape[-1], s.info))
