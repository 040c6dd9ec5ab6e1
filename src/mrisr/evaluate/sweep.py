"""Inference-time sweep tables: one trained model re-evaluated with one setting changed
(`mrisr evaluate --set key=value`, e.g. the video model's Ω stages or warm-up frames n).

Each sweep folder is an ordinary eval folder whose meta.json records the override in
`overrides` (exactly one key). They are kept out of summary.csv — every folder of one
sweep has the same (dataset, task, scale, method) key and would pool there — and are
summarised here in long form instead:

    dataset,task,scale,method,key,value,metric,mean,std,n
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mrisr.errors import InputError
from mrisr.evaluate.figures import panel_grid
from mrisr.evaluate.table_format import Table, decimals, format_cell, lower_is_better, metric_label, n_text, write_table_files
from mrisr.evaluate.tables import metric_groups
from mrisr.grid import format_scale
from mrisr.io import atomic_path, read_json

SWEEP_COLUMNS = ["dataset", "task", "scale", "method", "key", "value", "metric", "mean", "std", "n"]
PLOT_METRICS = ("psnr", "cardiac_psnr")
SWEEP_NOTE = "Mean ± sample std over the n test subjects (std n/a when n = 1); best per column in bold."


def read_sweep_dir(sweep_dir: Path) -> pd.DataFrame:
    """Per-subject long rows (dataset, task, scale, method, key, value, subject, metric, score)."""
    meta_path, csv_path = sweep_dir / "meta.json", sweep_dir / "metrics.csv"
    meta = read_json(meta_path)
    overrides = meta.get("overrides")
    if not isinstance(overrides, dict) or len(overrides) != 1:
        raise InputError(meta_path, f"a sweep folder needs exactly one inference override, got {overrides!r}")
    (key, value), = overrides.items()
    try:
        wide = pd.read_csv(csv_path, dtype={"subject": str})
    except FileNotFoundError:
        raise InputError(csv_path, "file not found") from None
    if wide.empty or "subject" not in wide.columns:
        raise InputError(csv_path, "needs a 'subject' column and subject rows")
    long = wide.melt(id_vars="subject", var_name="metric", value_name="score")
    for col, v in (("dataset", meta["dataset"]), ("task", meta["task"]), ("scale", format_scale(meta["scale"])),
                   ("method", str(meta["method"]).lower()), ("key", str(key)), ("value", int(value))):
        long[col] = v
    return long


def summarize_sweeps(sweep_dirs: list[Path]) -> pd.DataFrame:
    """mean, sample std (ddof=1; 0 for one subject) and n per sweep point × metric."""
    if not sweep_dirs:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    rows = pd.concat([read_sweep_dir(Path(d)) for d in sweep_dirs], ignore_index=True)
    keys = ["dataset", "task", "scale", "method", "key", "value", "metric"]
    dup = rows.duplicated([*keys, "subject"])
    if dup.any():
        raise InputError(Path(sweep_dirs[0]).parent, f"two sweep folders share the point {tuple(rows[dup].iloc[0][keys])}")
    g = rows.groupby(keys, sort=True)["score"]
    out = g.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["n"] = out["n"].astype(int)
    return out[SWEEP_COLUMNS]


def sweep_plot(df: pd.DataFrame, out_png: Path, metrics: tuple[str, ...] = PLOT_METRICS) -> None:
    """One panel per (experiment, swept key): metric mean ± std against the value."""
    panels = list(dict.fromkeys(zip(df["dataset"], df["method"], df["scale"], df["key"])))
    rows, cols = panel_grid(max(1, len(panels)), max_cols=3)  # ≤ 3 × 4 in at 120 dpi: fits a page
    fig = Figure(figsize=(4.0 * cols, 3.2 * rows))
    FigureCanvasAgg(fig)
    for i, (dataset, method, scale, key) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        sub = df[(df["dataset"] == dataset) & (df["method"] == method) & (df["scale"] == scale) & (df["key"] == key)]
        for metric in metrics:
            m = sub[sub["metric"] == metric].sort_values("value")
            if not m.empty:
                ax.errorbar(m["value"], m["mean"], yerr=m["std"], marker="o", capsize=3, label=metric)
        ax.set_xlabel(key)
        ax.set_ylabel("dB")
        ax.set_xticks(np.unique(sub["value"]))
        ax.set_title(f"{dataset} {method} ×{scale}", fontsize=9)
        ax.legend(fontsize=8)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def sweep_tables(df: pd.DataFrame) -> list[Table]:
    """One table per (experiment, swept key): rows = values, columns = n and every metric (best bold)."""
    tables = []
    for (dataset, method, scale, key), sub in df.groupby(["dataset", "method", "scale", "key"], sort=False):
        metrics = [m for g in metric_groups(sub["metric"]) for m in g]
        values = sorted(set(int(v) for v in sub["value"]))
        cells = {(int(r.value), r.metric): (float(r.mean), float(r.std), int(r.n)) for r in sub.itertuples()}
        table = Table(f"{dataset} {method} ×{scale}: {key}", [key, "n"] + [metric_label(m) for m in metrics],
                      note=f"{method} trained once; re-evaluated with {key} set at inference.")
        for v in values:
            hits = [cells.get((v, m)) for m in metrics]
            table.rows.append([str(v), n_text(h[2] for h in hits if h)]
                              + ["–" if h is None else format_cell(h[0], h[1], m, h[2]) for h, m in zip(hits, metrics)])
        for j, m in enumerate(metrics):
            table.mark_best(j + 2, [cells[(v, m)][0] if (v, m) in cells else None for v in values],
                            lower_is_better(m), decimals(m))
        tables.append(table)
    return tables


def write_sweep_tables(sweep_dirs: list[Path], out_csv: Path, out_png: Path) -> pd.DataFrame:
    """sweeps.csv (long form), then built from it: sweeps.md and sweeps.html beside the CSV (one
    table per swept key) and the plot (atomic writes)."""
    out_csv = Path(out_csv)
    df = summarize_sweeps([Path(d) for d in sweep_dirs])
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    tables = sweep_tables(df)
    write_table_files(tables, "Inference-time hyper-parameter sweeps", SWEEP_NOTE, out_csv.with_suffix(".md"),
                      out_csv.with_suffix(".html"))
    sweep_plot(df, Path(out_png))
    return df
