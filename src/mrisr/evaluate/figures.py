"""Figures: visual comparison of methods on one example image, and metric plots.

Uses matplotlib's object API with the Agg canvas (no pyplot global state, no
display needed on cluster nodes). Every PNG is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mrisr.errors import InputError
from mrisr.evaluate.tables import LOWER_IS_BETTER, method_order, read_summary
from mrisr.io import atomic_path, read_json

EXAMPLE_KEYS = ("lr", "sr", "hr")
ERROR_CMAP = "inferno"  # errors are not intensities: a distinct map avoids confusion
MAX_COLS = 6  # panels per row: 6 × PANEL_IN inches at 120 dpi ≈ 1500 px, a page (or report) width
PANEL_IN = 2.0


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # attaches itself: layout and savefig need a real canvas
    return fig


def _save(fig: Figure, out_png: Path) -> None:
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def _load_example(eval_dir: Path) -> tuple[str, dict[str, np.ndarray]]:
    """(method, {lr, sr, hr}) of one eval folder."""
    method = str(read_json(eval_dir / "meta.json").get("method", eval_dir.name)).lower()
    path = eval_dir / "example.npz"
    try:
        with np.load(path) as npz:
            missing = [k for k in EXAMPLE_KEYS if k not in npz.files]
            if missing:
                raise InputError(path, f"lacks arrays {missing}")
            return method, {k: np.asarray(npz[k], dtype=np.float32) for k in EXAMPLE_KEYS}
    except FileNotFoundError:
        raise InputError(path, "file not found") from None


def _show(ax, img: np.ndarray, title: str, **kw):
    """Array axes (a, b) shown as a horizontal, b vertical (RAS: patient left→right, up)."""
    im = ax.imshow(img.T, origin="lower", interpolation="nearest", **kw)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def panel_grid(n_panels: int, max_cols: int = MAX_COLS) -> tuple[int, int]:
    """(rows, columns) that hold n panels in rows of at most max_cols (a page-wide figure)."""
    cols = max(1, min(max_cols, n_panels))
    return -(-n_panels // cols), cols


def comparison_figure(eval_dirs: list[Path], out_png: Path, title: str = "") -> None:
    """LR | bicubic | each model | HR, then |SR−HR| per method (shared error scale), wrapped into
    rows of at most MAX_COLS panels so the figure fits a page (≤ ~1600 px at 120 dpi)."""
    examples = dict(_load_example(Path(d)) for d in eval_dirs)
    if not examples:
        raise InputError(out_png, "no evaluation folders given")
    methods = method_order(examples)
    first = examples[methods[0]]
    for m in methods:
        if examples[m]["hr"].shape != first["hr"].shape:
            raise InputError(out_png, f"{m}: example shape {examples[m]['hr'].shape} != {first['hr'].shape}")
    hr = first["hr"]
    errors = {m: np.abs(np.clip(examples[m]["sr"], 0, 1) - hr) for m in methods}
    err_max = max(float(max(e.max() for e in errors.values())), 1e-6)
    # Images (LR, methods, HR) start a row block and the error maps start the next one, so an
    # error map never sits beside an image it is not the error of.
    img_rows, cols = panel_grid(len(methods) + 2)
    err_rows = -(-len(methods) // cols)
    fig = _figure((PANEL_IN * cols + 0.6, (PANEL_IN + 0.35) * (img_rows + err_rows)))
    grid = fig.subplots(img_rows + err_rows, cols, squeeze=False)
    img_axes = list(grid[:img_rows].ravel())
    err_axes = list(grid[img_rows:].ravel())
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    _show(img_axes[0], first["lr"], "LR", **gray)
    for ax, m in zip(img_axes[1:], methods):
        _show(ax, examples[m]["sr"], m, **gray)
    _show(img_axes[len(methods) + 1], hr, "HR", **gray)
    im = None
    for ax, m in zip(err_axes, methods):
        im = _show(ax, errors[m], f"|{m} − HR|", cmap=ERROR_CMAP, vmin=0.0, vmax=err_max)
        ax.title.set_fontsize(7)
    for ax in img_axes[len(methods) + 2:] + err_axes[len(methods):]:
        ax.set_visible(False)
    # the colour bar takes its width from every column alike, so images and their error maps stay aligned
    fig.colorbar(im, ax=list(grid.ravel()), fraction=0.02, pad=0.02, label="|SR − HR| (error maps)")
    if title:
        fig.suptitle(title)
    _save(fig, out_png)


def metric_plot(summary_csv: Path, out_png: Path, metric: str = "psnr") -> None:
    """Mean ± std against scale, one panel per dataset (and task), one series per method, from summary.csv.

    One panel per dataset keeps the figure readable when a dataset sweeps many scales
    (the arbitrary-scale experiment evaluates 30): the figure grows with the number of
    datasets, not with datasets × scales × methods.
    """
    df = read_summary(Path(summary_csv))
    df = df[df["metric"] == metric]
    if df.empty:
        raise InputError(summary_csv, f"no rows for metric {metric!r}")
    panels = list(dict.fromkeys(zip(df["task"], df["dataset"])))
    methods = method_order(df["method"])
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = _figure((4.2 * ncols, 3.2 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    for ax, (task, dataset) in zip(axes, panels):
        sub = df[(df["task"] == task) & (df["dataset"] == dataset)]
        scales = sorted({float(s) for s in sub["scale"]})
        many = len(scales) > 4  # a sweep: lines; a few scales: offset markers
        step = min(np.diff(scales)) if len(scales) > 1 else 1.0
        present = [m for m in methods if m in set(sub["method"])]
        for j, m in enumerate(present):
            rows = sub[sub["method"] == m].assign(s=lambda d: d["scale"].astype(float)).sort_values("s")
            offset = 0.0 if many else (j - (len(present) - 1) / 2) * 0.08 * step
            ax.errorbar(rows["s"] + offset, rows["mean"], yerr=rows["std"], fmt="o-" if many else "o",
                        markersize=3 if many else 5, capsize=0 if many else 3, label=m)
        if not many:
            ax.set_xticks(scales)
            ax.set_xticklabels([f"×{s:g}" for s in scales])
        ax.set_title(f"{dataset} ({task})", fontsize=9)
        ax.set_xlabel("scale")
        ax.set_ylabel(f"{metric.upper()} ({better} is better)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    _save(fig, out_png)
