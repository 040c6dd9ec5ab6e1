"""Tiny DIV2K fixtures in the official layout (DIV2K_train_HR/0001.png …), shared by the div2k tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def random_rgb(seed: int, height: int = 20, width: int = 30) -> np.ndarray:
    """8-bit RGB noise (image number = seed)."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def write_div2k(root: Path, numbers: dict[str, list[int]], height: int = 20, width: int = 30) -> dict[str, np.ndarray]:
    """8-bit RGB PNGs {folder: [image numbers]} under root; returns subject -> the RGB pixels written."""
    pixels = {}
    for folder, nums in numbers.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in nums:
            rgb = random_rgb(n, height, width)
            Image.fromarray(rgb, "RGB").save(root / folder / f"{n:04d}.png")
            pixels[f"{n:04d}"] = rgb
    return pixels
