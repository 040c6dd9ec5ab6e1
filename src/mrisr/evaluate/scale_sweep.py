"""Scale sweep: one arbitrary-scale model (and the interpolation baseline) at many scales.

Every scale is an ordinary evaluation — `evaluate.run.evaluate` writing the standard eval
folder `{out_root}/x{scale}/` from `{lr_root}/x{scale}/` — run in ONE process per method so
that 30 scales cost one interpreter start, not 30. The sweep table and plot (the Meta-SRGAN
paper's Fig. 8) are then read back from `tables/summary.csv`, like every other table, and a
fixed-scale comparison table (the paper's Table 1) adds the parameter count of each method
from its eval folder's meta.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from mrisr.errors import InputError
from mrisr.evaluate.figures import _figure, _save, comparison_figure
from mrisr.evaluate.run import evaluate
from mrisr.evaluate.table_format import Table, decimals, format_cell, method_order, metric_label, n_text, write_table_files
from mrisr.evaluate.tables import scales_by_method_table, read_summary
from mrisr.grid import format_scale
from mrisr.io import atomic_path, read_json

SWEEP_METRICS = ("psnr", "ssim")
SWEEP_NOTE = "Mean ± sample std over the n test subjects (std n/a when n = 1); best in bold."


def evaluate_scales(method: str, model_path: Path | None, split_file: Path, lr_root: Path, out_root: Path,
                    dataset: str, task: str, scales: Sequence[float], device: str = "cpu",
                    save_sr: bool = True) -> list[Path]:
    """`evaluate` at each scale: lr from {lr_root}/x{s}, results in {out_root}/x{s}."""
    out = []
    for s in scales:
        tag = f"x{format_scale(s)}"
        evaluate(method, model_path, split_file, Path(lr_root) / tag, Path(out_root) / tag, dataset, task,
                 float(s), device=device, save_sr=save_sr)
        out.append(Path(out_root) / tag)
        print(f"{method} {tag} -> {Path(out_root) / tag}", flush=True)
    return out


def sweep_frame(summary_csv: Path, dataset: str, methods: Sequence[str]) -> pd.DataFrame:
    """Wide table: one row per scale (ascending), `{method}_{metric}_mean/std` columns, and n."""
    df = read_summary(Path(summary_csv))
    df = df[(df["dataset"] == dataset) & df["method"].isin(methods) & df["metric"].isin(SWEEP_METRICS)]
    missing = [m for m in methods if m not in set(df["method"])]
    if missing:
        raise InputError(summary_csv, f"no rows for dataset {dataset!r}, methods {missing}")
    # Scales every sweep method was evaluated at (others are fixed-scale extras).
    scales = set.intersection(*(set(df[df["method"] == m]["scale"]) for m in methods))
    rows = []
    for s in sorted(scales, key=float):
        row: dict = {"scale": s}
        for m in methods:
            for metric in SWEEP_METRICS:
                hit = df[(df["scale"] == s) & (df["method"] == m) & (df["metric"] == metric)]
                if len(hit) == 1:
                    row[f"{m}_{metric}_mean"] = float(hit["mean"].iloc[0])
                    row[f"{m}_{metric}_std"] = float(hit["std"].iloc[0])
                    row["n"] = int(hit["n"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_table(summary_csv: Path, dataset: str, methods: Sequence[str]) -> Table:
    """The sweep as a table (rows = scales), rendered by the same code as summary.md's sweep section."""
    df = read_summary(Path(summary_csv))
    sub = df[(df["dataset"] == dataset) & df["method"].isin(methods) & df["metric"].isin(SWEEP_METRICS)]
    return scales_by_method_table(sub, f"{dataset}: one model per method at every scale", list(methods))


def sweep_plot(wide: pd.DataFrame, out_png: Path, dataset: str, methods: Sequence[str]) -> None:
    """PSNR and SSIM against scale, one line per method (mean ± std band)."""
    fig = _figure((9.0, 3.4))
    axes = fig.subplots(1, len(SWEEP_METRICS))
    x = wide["scale"].astype(float)
    for ax, metric in zip(axes, SWEEP_METRICS):
        for m in methods:
            mean, std = wide[f"{m}_{metric}_mean"], wide[f"{m}_{metric}_std"]
            ax.plot(x, mean, marker="o", markersize=3, label=m)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("scale")
        ax.set_ylabel(metric.upper() + (" (dB)" if metric == "psnr" else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{dataset}: one model, every scale", fontsize=10)
    fig.tight_layout()
    _save(fig, out_png)


def write_scale_sweep(summary_csv: Path, dataset: str, methods: Sequence[str], out_csv: Path, out_md: Path,
                      out_png: Path) -> pd.DataFrame:
    wide = sweep_frame(summary_csv, dataset, methods)
    with atomic_path(Path(out_csv)) as tmp:
        wide.to_csv(tmp, index=False)
    write_table_files([sweep_table(summary_csv, dataset, methods)], f"Scale sweep: {dataset}", SWEEP_NOTE,
                      Path(out_md), Path(out_md).with_suffix(".html"))
    sweep_plot(wide, Path(out_png), dataset, methods)
    return wide


def fixed_scale_table(summary_csv: Path, eval_dirs: Sequence[Path], out_md: Path) -> str:
    """Methods at one dataset × scale (the paper's Table 1): n, PSNR, SSIM mean ± std and the
    parameter count from each eval folder's meta.json (0 for interpolations); Markdown at out_md,
    HTML beside it. Returns the Markdown."""
    df = read_summary(Path(summary_csv))
    metas = [read_json(Path(d) / "meta.json") for d in eval_dirs]
    if not metas:
        raise InputError(out_md, "no evaluation folders given")
    dataset, scale = str(metas[0]["dataset"]), format_scale(metas[0]["scale"])
    params = {str(m["method"]).lower(): int(m.get("n_params", 0)) for m in metas}
    sub = df[(df["dataset"] == dataset) & (df["scale"] == scale)]
    table = Table(f"{dataset} ×{scale}", ["method", "n", metric_label("psnr"), metric_label("ssim"), "parameters"])
    best: dict[str, list[float]] = {metric: [] for metric in SWEEP_METRICS}
    for m in method_order(params):
        cells, ns = [], []
        for metric in SWEEP_METRICS:
            hit = sub[(sub["method"] == m) & (sub["metric"] == metric)]
            if len(hit) != 1:
                raise InputError(summary_csv, f"no {metric} row for {dataset} ×{scale} {m}")
            mean, std, n = float(hit["mean"].iloc[0]), float(hit["std"].iloc[0]), int(hit["n"].iloc[0])
            cells.append(format_cell(mean, std, metric, n))
            best[metric].append(mean)
            ns.append(n)
        table.rows.append([m, n_text(ns), *cells, f"{params[m]:,}"])
    for j, metric in enumerate(SWEEP_METRICS):
        table.mark_best(j + 2, best[metric], lower_is_better=False, digits=decimals(metric))
    write_table_files([table], f"{dataset} ×{scale}: every method", SWEEP_NOTE, Path(out_md),
                      Path(out_md).with_suffix(".html"))
    return Path(out_md).read_text(encoding="utf-8")


def comparison_figures(jobs: dict[str, dict]) -> None:
    """Many `comparison_figure`s in one process: {out_png: {"eval_dirs": [...], "title": str}}."""
    for out_png, job in jobs.items():
        comparison_figure([Path(d) for d in job["eval_dirs"]], Path(out_png), job.get("title", ""))

