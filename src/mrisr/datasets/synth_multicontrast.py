"""Synthetic multi-contrast subjects (BraTS / fastMRI-knee stand-ins).

One tissue map per subject — partial-volume fractions of each tissue — is imaged with
several spin-echo protocols, S = PD·(1 − exp(−TR/T1))·exp(−TE/T2), so that the contrasts
differ (CSF dark on T1w, bright on T2w; fat gone with fat suppression) while sharing
every anatomical boundary, which is what a reference-guided SR model exploits.

Flavour "brain": scalp fat, skull, CSF, folded cortical grey matter, white matter,
ventricles, deep grey nuclei and occasional lesions (oedema around a core), axial slices.
Flavour "knee": sagittal-like knee — femur and tibia (fatty marrow in a cortical rim),
patella, articular cartilage, joint fluid and suprapatellar bursa, Hoffa's fat pad,
patellar tendon, muscle and subcutaneous fat. Slices run along axis 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrisr.datasets import phantom as ph
from mrisr.datasets.synth_params import ANATOMIES, choice, int_tuple, merge_params, non_negative, positive_floats
from mrisr.io import write_nifti

DEFAULTS = {"size": [128, 128], "slices": 8, "spacing": [1.0, 1.0, 4.0], "flavour": "brain", "noise": 0.02,
            "anatomy": "phantom", "microstructure": False}
FLAVOURS = ("brain", "knee")
GAIN = 1000.0

# (PD, T1 ms, T2 ms) at 1.5 T, textbook orders of magnitude.
BRAIN_TISSUES = {
    "fat": (0.90, 260.0, 80.0),
    "bone": (0.05, 250.0, 2.0),
    "csf": (1.00, 3500.0, 1800.0),
    "gm": (0.82, 1100.0, 95.0),
    "deep_gm": (0.80, 1000.0, 85.0),
    "wm": (0.70, 650.0, 75.0),
    "oedema": (0.86, 1300.0, 180.0),
    "lesion": (0.90, 1700.0, 260.0),
}
KNEE_TISSUES = {
    "fat": (0.95, 260.0, 80.0),
    "marrow": (0.90, 300.0, 70.0),
    "bone": (0.03, 300.0, 2.0),
    "cartilage": (0.75, 1000.0, 40.0),
    "muscle": (0.70, 900.0, 32.0),
    "fluid": (1.00, 3000.0, 800.0),
    "tendon": (0.15, 600.0, 8.0),
}
FATTY = ("fat", "marrow")  # what fat suppression removes

# contrast -> (TR ms, TE ms, fat suppressed)
PROTOCOLS = {
    "t1": (500.0, 15.0, False),
    "t2": (4000.0, 100.0, False),
    "pd": (3000.0, 30.0, False),
    "pdfs": (3000.0, 30.0, True),
}
CONTRASTS = {"brain": ("t1", "t2"), "knee": ("pd", "pdfs")}
FAT_RESIDUAL = 0.06  # fat suppression is never perfect


@dataclass
class MultiContrastSubject:
    images: dict[str, np.ndarray]  # contrast -> (X,Y,Z) float32
    affine: np.ndarray
    fractions: dict[str, np.ndarray] = field(default_factory=dict)  # tissue -> partial-volume fraction
    flavour: str = "brain"


def resolve_params(params: dict | None) -> dict:
    p = merge_params("multicontrast", DEFAULTS, params)
    return {
        "size": list(int_tuple("size", p["size"], 2, minimum=8)),
        "slices": int_tuple("slices", p["slices"], 1)[0],
        "spacing": list(positive_floats("spacing", p["spacing"], 3)),
        "flavour": choice("flavour", p["flavour"], FLAVOURS),
        "noise": non_negative("noise", p["noise"]),
        "anatomy": anatomy_param(p["anatomy"], p["flavour"]),
        "microstructure": microstructure_param(p["microstructure"], p["flavour"]),
    }


def microstructure_param(value, flavour: str) -> bool:
    """`microstructure`: knee only; trabecular bone in the marrow and fatty streaks in the muscle."""
    if not isinstance(value, bool):
        raise ValueError(f"synth param 'microstructure' must be true or false, got {value!r}")
    if value and flavour != "knee":
        raise ValueError(f"synth param 'microstructure' is for the knee flavour, not {flavour!r}")
    return value


def anatomy_param(value, flavour: str) -> str:
    """`anatomy`: "phantom" (the drawn anatomy above) or "mni152" (real brain anatomy, brain only)."""
    value = choice("anatomy", value, ANATOMIES)
    if value != "phantom" and flavour != "brain":
        raise ValueError(f"synth param 'anatomy': {value!r} is a brain; the {flavour} flavour has only 'phantom'")
    return value


def brain_layers(rng: np.random.Generator, coords: ph.Coords, shape, spacing, length, width) -> list:
    """Soft tissue layers of an axial brain slab, bottom layer first."""
    level = rng.uniform(-0.05, 0.30)  # which axial level of the head the slab cuts
    c = (rng.normal(0.0, 0.02), rng.normal(0.0, 0.02), -level)
    head = np.array([rng.uniform(0.74, 0.80), rng.uniform(0.90, 0.96), rng.uniform(0.80, 0.90)])
    scalp, skull, csf = rng.uniform(0.06, 0.09), rng.uniform(0.06, 0.09), rng.uniform(0.025, 0.04)
    angle = rng.normal(0.0, 0.05)
    inner = head - scalp - skull
    brain = inner - csf
    layers = [
        ("fat", ph.soft(ph.ellipsoid_sdf(coords, c, head, angle), width)),
        ("bone", ph.soft(ph.ellipsoid_sdf(coords, c, head - scalp, angle), width)),
        ("csf", ph.soft(ph.ellipsoid_sdf(coords, c, inner, angle), width)),
    ]
    layers += ph.folded_cortex(rng, coords, c, brain, angle, shape, spacing, length, fold_scale=0.05, width=width)
    for side in (-1.0, 1.0):  # deep grey nuclei, then the lateral ventricles
        centre = (c[0] + side * 0.12, c[1] - 0.10, c[2] + 0.02)
        layers.append(("deep_gm", ph.soft(ph.ellipsoid_sdf(coords, centre, (0.08, 0.11, 0.10), side * 0.2), width)))
    for side in (-1.0, 1.0):
        centre = (c[0] + side * rng.uniform(0.08, 0.11), c[1] + 0.06, c[2] + 0.15)
        semi = (rng.uniform(0.04, 0.07), rng.uniform(0.22, 0.30), 0.12)
        layers.append(("csf", ph.soft(ph.ellipsoid_sdf(coords, centre, semi, side * 0.15), width)))
    layers += lesion_layers(rng, coords, c, brain, shape, width)
    return layers


def lesion_layers(rng, coords, c, brain, shape, width) -> list:
    """0–2 lesions: an irregular oedema halo around a core, inside the white matter."""
    layers = []
    tex = ph.smooth_field(rng, shape, (3.0, 3.0, 0.7))
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction)
        r = rng.uniform(0.25, 0.6)
        centre = (c[0] + r * brain[0] * direction[0], c[1] + r * brain[1] * direction[1], rng.uniform(-0.1, 0.1))
        core = rng.uniform(0.05, 0.10)
        halo = core * rng.uniform(1.5, 2.2)
        wobble = 0.015 * tex
        layers.append(("oedema", ph.soft(ph.ellipsoid_sdf(coords, centre, (halo, halo, halo)) + wobble, width)))
        layers.append(("lesion", ph.soft(ph.ellipsoid_sdf(coords, centre, (core, core, core)) + wobble, width)))
    return layers


def _box_sdf(u: np.ndarray, v: np.ndarray, u0: float, half_width, v_top: float) -> np.ndarray:
    """A vertical column |u − u0| < half_width below v_top (unbounded downwards)."""
    return np.maximum(np.abs(u - u0) - half_width, v - v_top)


def knee_layers(rng: np.random.Generator, coords: ph.Coords, width: float) -> list:
    """Soft tissue layers of a sagittal-like knee (u: anterior →, v: superior ↑), bottom first."""
    u, v, w = coords
    wn = w / max(float(np.abs(w).max()), 1e-9)  # −1…1 across the slab (medial → lateral)
    uc = rng.normal(0.0, 0.03)
    leg = rng.uniform(0.70, 0.80)
    fat_t = rng.uniform(0.05, 0.08)
    vj = rng.uniform(-0.15, 0.05)  # joint line
    rf = rng.uniform(0.26, 0.32) * (1.0 - 0.15 * wn**2)  # femoral condyle radius, smaller off-centre
    uf = uc + rng.uniform(0.0, 0.08)
    shaft = rng.uniform(0.15, 0.19)
    cart = rng.uniform(0.035, 0.05)
    gap = cart * 2.0 + rng.uniform(0.01, 0.03)
    cortex = rng.uniform(0.03, 0.045)
    ut, tib = uf + rng.normal(0.0, 0.02), rng.uniform(0.32, 0.38)
    vt = vj - gap
    fc = (uf - 0.03, vj + rf)  # condyle centre

    def femur_sdf(grow: float) -> np.ndarray:
        column = np.maximum(np.abs(u - uf) - (shaft - grow), fc[1] - v)
        return np.minimum(column, np.hypot(u - fc[0], v - fc[1]) - (rf - grow))

    def tibia_sdf(grow: float) -> np.ndarray:
        half = 0.2 + (tib - 0.2) * np.exp(-np.maximum(vt - v, 0.0) / 0.25)
        return _box_sdf(u, v, ut, half - grow, vt - grow)

    pc = (fc[0] + rf + rng.uniform(0.10, 0.14), fc[1] + rng.uniform(-0.05, 0.05))
    psemi = (0.075, rng.uniform(0.15, 0.19) * (1.0 - 0.3 * wn**2), 1e6)
    soft = lambda sdf: ph.soft(sdf, width)  # noqa: E731
    pc3 = (pc[0], pc[1], 0.0)
    tendon_c = (pc[0] - 0.02, (pc[1] - psemi[1] + vt) / 2.0 - 0.05, 0.0)
    tendon_len = (pc[1] - psemi[1] - vt) / 2.0 + 0.1
    return [
        ("fat", soft(np.abs(u - uc) - leg)),
        ("muscle", soft(np.abs(u - uc) - (leg - fat_t))),
        ("fat", soft(ph.ellipsoid_sdf(coords, (uf + rf * 0.75, vt + 0.06, 0.0), (0.14, 0.11, 1e6)))),  # Hoffa
        ("fat", soft(ph.ellipsoid_sdf(coords, (uf - rf - 0.12, vj, 0.0), (0.12, 0.22, 1e6)))),  # popliteal fossa
        ("fluid", soft(ph.disk_sdf(coords, (uf - rf - 0.12, vj), 0.035))),  # popliteal vessel
        ("tendon", soft(ph.ellipsoid_sdf(coords, tendon_c, (0.03, np.maximum(tendon_len, 0.05), 1e6), -0.15))),
        ("fluid", soft(ph.ellipsoid_sdf(coords, (uf + shaft + 0.05, fc[1] + 0.22, 0.0), (0.04, 0.20, 1e6)))),
        ("fluid", soft(ph.ellipsoid_sdf(coords, (fc[0], vj - gap / 2, 0.0), (0.9 * rf, 0.6 * gap, 1e6)))),
        ("cartilage", soft(np.maximum(np.hypot(u - fc[0], v - fc[1]) - (rf + cart), v - fc[1] - 0.05))),
        ("cartilage", soft(_box_sdf(u, v, ut, tib - 0.04, vt + cart))),
        ("cartilage", soft(np.maximum(ph.ellipsoid_sdf(coords, pc3, (psemi[0] + cart, psemi[1], 1e6)), u - pc[0]))),
        ("bone", soft(femur_sdf(0.0))),
        ("marrow", soft(femur_sdf(cortex))),
        ("bone", soft(tibia_sdf(0.0))),
        ("marrow", soft(tibia_sdf(cortex))),
        ("bone", soft(ph.ellipsoid_sdf(coords, pc3, psemi))),
        ("marrow", soft(ph.ellipsoid_sdf(coords, pc3, (psemi[0] - cortex, psemi[1] - cortex, 1e6)))),
    ]


def knee_microstructure(rng: np.random.Generator, fractions: dict, shape, spacing) -> None:
    """Texture with an anatomical origin, in place, fractions still summing to one: a maze of
    thin trabeculae (bone) through the marrow (~2 mm lattice, the zero-crossings of a band-pass
    field) and fatty streaks along the muscle fibres (an elongated field, fibres running
    superior–inferior, thresholded)."""
    px = [max(0.7, 0.8 / s) for s in spacing[:2]]
    lattice = ph.bandpass_field(rng, shape, (px[0], px[1], 0.3))
    trabeculae = np.float32(rng.uniform(0.15, 0.3)) * np.exp(-((lattice / 0.3) ** 2)).astype(np.float32)
    moved = fractions["marrow"] * trabeculae
    fractions["marrow"] -= moved
    fractions["bone"] += moved
    fibres = ph.smooth_field(rng, shape, (max(0.5, 0.6 / spacing[0]), max(3.0, 8.0 / spacing[1]), 0.3))
    streaks = np.clip((fibres - rng.uniform(1.0, 1.6)) / 0.6, 0.0, 1.0).astype(np.float32)
    moved = fractions["muscle"] * np.float32(0.7) * streaks
    fractions["muscle"] -= moved
    fractions["fat"] += moved


def tissue_signal(tissues: dict, contrast: str) -> dict[str, float]:
    """Spin-echo signal of each tissue under one protocol."""
    tr, te, fat_sat = PROTOCOLS[contrast]
    out = {}
    for name, (pd, t1, t2) in tissues.items():
        s = ph.spin_echo(pd, t1, t2, tr, te)
        out[name] = s * FAT_RESIDUAL if fat_sat and name in FATTY else s
    return out


def generate_multicontrast(rng: np.random.Generator, params: dict | None = None) -> MultiContrastSubject:
    """One subject: a tissue map and its images under the flavour's protocols."""
    p = resolve_params(params)
    nx, ny = p["size"]
    shape = (nx, ny, p["slices"])
    spacing = p["spacing"]
    if p["anatomy"] == "mni152":
        return generate_from_anatomy(rng, shape, spacing, p["noise"])
    length = 0.5 * min(nx * spacing[0], ny * spacing[1])
    coords = ph.normalised_coords(shape, spacing, length)
    width = 0.35 * min(spacing[0], spacing[1]) / length
    flavour = p["flavour"]
    base = BRAIN_TISSUES if flavour == "brain" else KNEE_TISSUES
    tissues = {
        k: (ph.jitter(rng, pd, 0.04), ph.jitter(rng, t1, 0.05), ph.jitter(rng, t2, 0.05))
        for k, (pd, t1, t2) in base.items()
    }
    if flavour == "brain":
        layers = brain_layers(rng, coords, shape, spacing, length, width)
    else:
        layers = knee_layers(rng, coords, width)
    fractions = {k: np.broadcast_to(f, shape).astype(np.float32) for k, f in ph.composite(layers).items()}
    if p["microstructure"]:
        knee_microstructure(rng, fractions, shape, spacing)
    # Texture modulates proton density, so it is the same anatomy in every contrast;
    # the receive-coil bias is shared too (one session, one coil). Noise is per scan.
    texture = (1.0 + 0.05 * ph.smooth_field(rng, shape, (1.0, 1.0, 0.3))
               + 0.03 * ph.smooth_field(rng, shape, (5.0, 5.0, 1.0)))
    bias = ph.bias_field(rng, coords, strength=0.25)
    images = {}
    for contrast in CONTRASTS[flavour]:
        signal = tissue_signal(tissues, contrast)
        clean = sum(fractions[k] * signal[k] for k in fractions if k != "background")
        ref = max(signal.values())  # noise relative to the brightest tissue
        noisy = ph.rician(rng, clean * texture * bias, p["noise"] * ref)
        images[contrast] = (noisy * GAIN).astype(np.float32)
    return MultiContrastSubject(images, ph.centred_affine(shape, spacing), fractions, flavour)


def generate_from_anatomy(rng: np.random.Generator, shape, spacing, noise: float) -> MultiContrastSubject:
    """A slab of real brain anatomy (MNI152 labels, see anatomy.py) imaged as T1w and T2w."""
    from mrisr.datasets import anatomy

    anat = anatomy.sample_anatomy(rng, shape, spacing, slab=True, lesions=True)
    images = anatomy.render(rng, anat, CONTRASTS["brain"], spacing, noise, slab=True)
    return MultiContrastSubject(images, ph.centred_affine(shape, spacing), anat.fractions, "brain")


def write_multicontrast_subject(out_dir: Path, subject: str, s: MultiContrastSubject) -> None:
    """BraTS layout: {subject}/{subject}_{contrast}.nii.gz."""
    for contrast, image in s.images.items():
        write_nifti(Path(out_dir) / subject / f"{subject}_{contrast}.nii.gz", image, s.affine)
