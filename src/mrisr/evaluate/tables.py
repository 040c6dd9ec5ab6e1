"""Summary tables: summary.csv (the one table) and a paper-style summary.md built from it.

summary.csv is long form (dataset,task,scale,method,metric,mean,std,n); every
other table, plot and the report read it back rather than recomputing, so the
numbers can never disagree between outputs.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from mrisr.errors import InputError
from mrisr.evaluate.udean_tables import udean_markdown
from mrisr.grid import format_scale
from mrisr.io import atomic_path, read_json

SUMMARY_COLUMNS = ["dataset", "task", "scale", "method", "metric", "mean", "std", "n"]
KEY_COLUMNS = ["dataset", "task", "scale", "method"]
BASELINES = ("bicubic", "tricubic")  # listed first in every table
LOWER_IS_BETTER = frozenset({"nmse", "mse", "rmse", "mae"})
DECIMALS = {"psnr": 2, "ssim": 4, "nmse": 4}
STR_DTYPES = {"dataset": str, "task": str, "scale": str, "method": str, "metric": str}


def _read_eval_dir(eval_dir: Path) -> pd.DataFrame:
    """Per-subject long rows (keys, subject, metric, value) of one eval folder."""
    meta_path, csv_path = eval_dir / "meta.json", eval_dir / "metrics.csv"
    meta = read_json(meta_path)
    missing = [k for k in ("dataset", "task", "scale", "method") if k not in meta]
    if missing:
        raise InputError(meta_path, f"lacks keys {missing}")
    try:
        wide = pd.read_csv(csv_path, dtype={"subject": str})
    except FileNotFoundError:
        raise InputError(csv_path, "file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(csv_path, f"unreadable CSV ({err})") from None
    if "subject" not in wide.columns or len(wide.columns) < 2:
        raise InputError(csv_path, "needs a 'subject' column and at least one metric column")
    if wide.empty:
        raise InputError(csv_path, "no subject rows")
    long = wide.melt(id_vars="subject", var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    if long["value"].isna().any():
        raise InputError(csv_path, "non-numeric metric values")
    long.insert(0, "dataset", str(meta["dataset"]))
    long.insert(1, "task", str(meta["task"]))
    long.insert(2, "scale", format_scale(meta["scale"]))
    long.insert(3, "method", str(meta["method"]).lower())
    return long


def collect(eval_dirs: list[Path]) -> pd.DataFrame:
    """Per-subject long rows: dataset,task,scale,method,subject,metric,value."""
    frames, seen = [], {}
    for d in map(Path, eval_dirs):
        frame = _read_eval_dir(d)
        key = tuple(frame.iloc[0][KEY_COLUMNS]) if len(frame) else None
        if key in seen:  # two folders for one experiment would silently pool subjects
            raise InputError(d, f"duplicates experiment {key} of {seen[key]}")
        seen[key] = d
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "subject", "metric", "value"])
    return pd.concat(frames, ignore_index=True)


def _sort(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by dataset, task, numeric scale, method, metric."""
    order = df.assign(_scale=df["scale"].astype(float))
    order = order.sort_values(["dataset", "task", "_scale", "method", "metric"], kind="stable")
    return order.drop(columns="_scale").reset_index(drop=True)


def summarize(eval_dirs: list[Path]) -> pd.DataFrame:
    """mean, sample std (ddof=1; 0 for a single subject) and n per experiment × metric."""
    rows = collect(eval_dirs)
    if rows.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    g = rows.groupby([*KEY_COLUMNS, "metric"], sort=False)["value"]
    out = g.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["n"] = out["n"].astype(int)
    return _sort(out)[SUMMARY_COLUMNS]


def read_summary(summary_csv: Path) -> pd.DataFrame:
    """summary.csv with the key columns kept as text (scale '2', not 2.0)."""
    try:
        df = pd.read_csv(summary_csv, dtype=STR_DTYPES)
    except FileNotFoundError:
        raise InputError(summary_csv, "file not found") from None
    if list(df.columns) != SUMMARY_COLUMNS:
        raise InputError(summary_csv, f"columns {list(df.columns)} != {SUMMARY_COLUMNS}")
    return df


def method_order(methods) -> list[str]:
    """Baselines first, then the others in their order of appearance."""
    uniq = list(dict.fromkeys(methods))
    return [m for m in BASELINES if m in uniq] + [m for m in uniq if m not in BASELINES]


def format_cell(mean: float, std: float, metric: str) -> str:
    # ROI variants (cardiac_psnr, ...) share the precision of the metric they restrict.
    d = DECIMALS.get(metric, DECIMALS.get(metric.rsplit("_", 1)[-1], 4))
    return f"{mean:.{d}f} ± {std:.{d}f}"


def column_label(dataset: str, scale: str) -> str:
    return f"{dataset} ×{scale}"


def metric_table(df: pd.DataFrame, metric: str) -> str:
    """One Markdown table for one task × metric: methods × (dataset ×scale), best bold."""
    sub = df[df["metric"] == metric]
    cols = list(dict.fromkeys(zip(sub["dataset"], sub["scale"])))
    methods = method_order(sub["method"])
    cells = {(r.method, r.dataset, r.scale): (float(r.mean), float(r.std)) for r in sub.itertuples()}
    pick = min if metric in LOWER_IS_BETTER else max
    best = {}
    for c in cols:
        means = [cells[(m, *c)][0] for m in methods if (m, *c) in cells and not math.isnan(cells[(m, *c)][0])]
        best[c] = pick(means) if means else None
    lines = ["| method | " + " | ".join(column_label(*c) for c in cols) + " |"]
    lines.append("|---|" + "---:|" * len(cols))
    for m in methods:
        row = []
        for c in cols:
            if (m, *c) not in cells:
                row.append("–")
                continue
            mean, std = cells[(m, *c)]
            text = format_cell(mean, std, metric)
            row.append(f"**{text}**" if mean == best[c] else text)
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def summary_markdown(df: pd.DataFrame) -> str:
    """Per task, per metric: a paper-style table (mean ± std over test subjects)."""
    parts = ["# Results", "", "Mean ± sample std over test subjects; best per column in bold.", ""]
    arrow = {True: "lower is better", False: "higher is better"}
    for task in dict.fromkeys(df["task"]):
        tdf = df[df["task"] == task]
        for metric in dict.fromkeys(tdf["metric"]):
            parts += [f"## {task}: {metric.upper()} ({arrow[metric in LOWER_IS_BETTER]})", ""]
            parts += [metric_table(tdf, metric), ""]
    parts += udean_markdown(df)  # the UDEAN paper's Tables I and II, where its methods ran
    return "\n".join(parts)


def write_tables(eval_dirs: list[Path], out_dir: Path) -> None:
    """summary.csv, then summary.md built from summary.csv as read back (atomic writes)."""
    out_dir = Path(out_dir)
    summary_csv = out_dir / "summary.csv"
    with atomic_path(summary_csv) as tmp:
        summarize(eval_dirs).to_csv(tmp, index=False)
    md = summary_markdown(read_summary(summary_csv))
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text(md)
