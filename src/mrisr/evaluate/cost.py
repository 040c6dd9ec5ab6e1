"""Model cost: trainable parameters and inference speed (frames per second), the
paper's Fig. 4a for cine video SR.

Speed is measured the way evaluation runs the model: whole-volume `super_resolve` on
the first test subject's LR cine (video models see every slice as one clip with their
cyclic warm-up frames), so a frame's cost includes its share of warm-up and Ω stages.
One untimed run first (lazy allocations, oneDNN kernel choice), then the median of
`repeats` timed runs; frames = every 2D image of the cine (slices × time frames).
CPU timings depend on the machine and its load: compare rows of one table only.

    dataset,scale,method,n_params,frames,seconds,frames_per_s,repeats,device
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mrisr.errors import InputError
from mrisr.evaluate.inference import CUBIC_METHODS, super_resolve
from mrisr.evaluate.table_format import Table, write_table_files
from mrisr.evaluate.run import Subject, load_subject, read_split_test
from mrisr.grid import format_scale
from mrisr.io import atomic_path

COST_COLUMNS = ("dataset", "scale", "method", "n_params", "frames", "seconds", "frames_per_s", "repeats", "device")


@dataclass(frozen=True)
class MethodSpec:
    """A method name and its model file (None for an interpolation)."""

    method: str
    model: Path | None


def parse_method_spec(text: str) -> MethodSpec:
    """'bicubic' or 'name=path/to/model.pt'."""
    name, sep, path = text.partition("=")
    if not name:
        raise ValueError(f"expected METHOD or METHOD=MODEL_PATH, got {text!r}")
    if not sep and name.lower() not in CUBIC_METHODS:
        raise ValueError(f"method {name!r} needs a model file: {name}=path/to/model.pt")
    return MethodSpec(name.lower(), Path(path) if sep else None)


def n_images(lr: np.ndarray, axes: tuple[int, ...]) -> int:
    """2D images in a volume: the product of the non-image axes (slices × frames)."""
    return int(np.prod([n for a, n in enumerate(lr.shape) if a not in axes], dtype=np.int64))


def load_for_timing(spec: MethodSpec, device: str):
    """(model or None, trainable parameters) of one method."""
    if spec.model is None:
        return None, 0
    from mrisr.models import count_parameters, load_model  # torch only when a model runs

    model = load_model(spec.model, device=device)  # InputError naming the file if missing
    return model, int(count_parameters(model))


def time_inference(subject: Subject, method: str, model, device: str, repeats: int) -> float:
    """Median wall seconds of one whole-volume super-resolution (after one untimed run)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")

    def once() -> float:
        t0 = time.perf_counter()
        super_resolve(subject.lr, subject.grid, method, model=model, ref=subject.ref, device=device,
                      cycle=subject.cycle)
        if device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return time.perf_counter() - t0

    once()
    return float(np.median([once() for _ in range(repeats)]))


def measure_costs(specs: list[MethodSpec], split_file: Path, lr_dir: Path, dataset: str, scale: float,
                  device: str = "cpu", repeats: int = 3) -> list[dict]:
    """One row per method: parameters and frames/s on the first test subject."""
    subject = load_subject(read_split_test(Path(split_file))[0], Path(lr_dir), None)
    frames = n_images(subject.lr, tuple(subject.grid.axes))
    rows = []
    for spec in specs:
        model, n_params = load_for_timing(spec, device)
        seconds = time_inference(subject, spec.method, model, device, repeats)
        rows.append({"dataset": dataset, "scale": format_scale(scale), "method": spec.method, "n_params": n_params,
                     "frames": frames, "seconds": seconds, "frames_per_s": frames / seconds if seconds > 0 else float("inf"),
                     "repeats": repeats, "device": device})
    return rows


def cost_table(rows: list[dict]) -> Table:
    """Parameters and speed per method (fewest parameters / most frames per second in bold)."""
    first = rows[0] if rows else {"dataset": "?", "scale": "?", "frames": 0, "repeats": 0, "device": "?"}
    table = Table(f"{first['dataset']} ×{first['scale']}: parameters and inference speed",
                  ["method", "parameters", "seconds / cine", "frames / s"],
                  note=f"Whole-cine super-resolution of the first test subject ({first['frames']} frames), median of "
                       f"{first['repeats']} timed runs on {first['device']}; compare rows of this table only.")
    for r in rows:
        table.rows.append([str(r["method"]), f"{int(r['n_params']):,}", f"{float(r['seconds']):.3f}",
                           f"{float(r['frames_per_s']):.1f}"])
    models = [int(r["n_params"]) if int(r["n_params"]) > 0 else None for r in rows]  # interpolations: no parameters
    table.mark_best(1, models, lower_is_better=True)
    table.mark_best(3, [float(r["frames_per_s"]) for r in rows], lower_is_better=False, digits=1)
    return table


def write_cost_csv(path: Path, rows: list[dict]) -> None:
    """The cost CSV, then its Markdown and HTML renderings beside it (same stem; atomic writes)."""
    path = Path(path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    write_table_files([cost_table(rows)], "Model cost", "Trainable parameters and inference frames per second.",
                      path.with_suffix(".md"), path.with_suffix(".html"))


def cost_plot(rows: list[dict], out_png: Path, title: str = "") -> None:
    """Parameters (log x) against frames/s (log y), one labelled point per model."""
    models = [r for r in rows if int(r["n_params"]) > 0]  # interpolations have no parameters to place
    if not models:
        raise InputError(Path(out_png), "no trained model to plot (only interpolations)")
    fig = Figure(figsize=(5.0, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for r in models:
        ax.scatter(int(r["n_params"]), float(r["frames_per_s"]))
        ax.annotate(r["method"], (int(r["n_params"]), float(r["frames_per_s"])), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("frames / s (inference)")
    ax.set_title(title, fontsize=9)
    with atomic_path(Path(out_png)) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
