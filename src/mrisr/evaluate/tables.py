"""Summary tables: summary.csv (the one table) and paper-style tables built from it.

summary.csv is long form (dataset,task,scale,method,metric,mean,std,n); every
other table, plot and the report read it back rather than recomputing, so the
numbers can never disagree between outputs. summary.md / summary.html hold one
section per experiment family — main comparison (per dataset: methods × scales,
PSNR and SSIM side by side), ablations, scale sweeps, external test sets and the
transfer check on real scans (with each model's PSNR gain over the cubic baseline),
the UDEAN paper tables —
with n shown and the std given as n/a for a single test subject.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mrisr.errors import InputError
from mrisr.evaluate.table_format import (BASELINES, DECIMALS, LABELS, LOWER_IS_BETTER, Table, decimals, format_cell,
                                         html_page, lower_is_better, method_order, metric_label, n_text, to_html,
                                         to_markdown)
from mrisr.evaluate.udean_tables import udean_tables
from mrisr.grid import format_scale
from mrisr.io import atomic_path, read_json

__all__ = ["BASELINES", "DECIMALS", "LOWER_IS_BETTER", "Families", "format_cell", "method_order", "read_summary",
           "summarize", "summary_html", "summary_markdown", "write_tables"]

SUMMARY_COLUMNS = ["dataset", "task", "scale", "method", "metric", "mean", "std", "n"]
KEY_COLUMNS = ["dataset", "task", "scale", "method"]
PAIRED = (("psnr", "ssim"), ("cardiac_psnr", "cardiac_ssim"))
MAIN, ABLATIONS, SCALE_SWEEPS, UDEAN = ("Main comparison", "Ablations", "Scale sweeps",
                                        "UDEAN paper tables (Tables I and II)")
EXTERNAL = "Transfer to real scans and external test sets (models trained on another dataset)"
GAIN_NOTE = ("PSNR of each model minus that of the cubic baseline on the same test subjects (the mean of the "
             "per-subject gains); > 0: the model beats interpolation on data it was not trained on.")
NOTE = ("Mean ± sample std over the n test subjects (std n/a when n = 1); best per column in bold "
        "(per scale in the sweeps); ↑ higher / ↓ lower is better. Inference-time hyper-parameter sweeps and "
        "model cost are separate tables (sweeps.*, cost_*.*).")
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


@dataclass(frozen=True)
class Families:
    """Which summary rows belong to which experiment family (the workflow knows, from the config).

    ablations: dataset -> {ablation method: the full method it is a rung of};
    scale_sweeps: dataset -> the methods evaluated at every scale (interpolation + arbitrary-scale);
    external: external test set (config `train_from`, e.g. the transfer check on real scans) -> the
    dataset its models were trained on: all its tables go to their own section, with a PSNR-gain table.
    Everything else is the main comparison. Without families every row is main comparison.
    """

    ablations: dict[str, dict[str, str]] = field(default_factory=dict)
    scale_sweeps: dict[str, list[str]] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: dict | None) -> "Families":
        obj = obj or {}
        unknown = set(obj) - {"ablations", "scale_sweeps", "external"}
        if unknown:
            raise ValueError(f"families: unknown keys {sorted(unknown)} (expected ablations, scale_sweeps, external)")
        return cls({d: dict(m) for d, m in (obj.get("ablations") or {}).items()},
                   {d: list(m) for d, m in (obj.get("scale_sweeps") or {}).items()},
                   {d: str(src) for d, src in (obj.get("external") or {}).items()})


def metric_groups(metrics) -> list[tuple[str, ...]]:
    """Metrics shown side by side: (psnr, ssim), (cardiac_psnr, cardiac_ssim), then each other one alone."""
    present = list(dict.fromkeys(metrics))
    groups = [g for g in PAIRED if any(m in present for m in g)]
    groups = [tuple(m for m in g if m in present) for g in groups]
    paired = {m for g in groups for m in g}
    return groups + [(m,) for m in present if m not in paired]


def _cells(df: pd.DataFrame) -> dict[tuple[str, str, str], tuple[float, float, int]]:
    return {(r.method, r.scale, r.metric): (float(r.mean), float(r.std), int(r.n)) for r in df.itertuples()}


def _row_n(scale_n: list[tuple[str, int]]) -> str:
    """n of a table row: one number when every scale has the same test subjects, else 'n (×s)' per scale."""
    per_scale = dict(scale_n)
    if len(set(per_scale.values())) <= 1:
        return n_text(per_scale.values())
    return " / ".join(f"{n} (×{s})" for s, n in per_scale.items())


def methods_by_scale_table(df: pd.DataFrame, title: str, methods: list[str], scales: list[str],
                           metrics: tuple[str, ...], note: str = "") -> Table:
    """Rows = methods; columns = n, then for every scale the metrics side by side; best per column bold."""
    cells = _cells(df)
    cols = [(s, k) for s in scales for k in metrics]
    table = Table(title, ["method", "n"] + [f"×{s} {metric_label(k)}" for s, k in cols], note=note)
    for m in methods:
        hits = [cells.get((m, s, k)) for s, k in cols]
        table.rows.append([m, _row_n([(s, h[2]) for h, (s, _k) in zip(hits, cols) if h])]
                          + ["–" if h is None else format_cell(h[0], h[1], k, h[2]) for h, (_s, k) in zip(hits, cols)])
    for j, (s, k) in enumerate(cols):
        values = [cells[(m, s, k)][0] if (m, s, k) in cells else None for m in methods]
        table.mark_best(j + 2, values, lower_is_better(k), decimals(k))
    return table


def scales_by_method_table(df: pd.DataFrame, title: str, methods: list[str], metrics: tuple[str, ...] = ("psnr", "ssim"),
                           note: str = "") -> Table:
    """A scale sweep: rows = scales (ascending, those every method ran at); columns = n, then per method
    the metrics side by side; best per row bold."""
    cells = _cells(df)
    scales = sorted(set.intersection(*(set(df[df["method"] == m]["scale"]) for m in methods)), key=float) if methods else []
    cols = [(m, k) for m in methods for k in metrics]
    table = Table(title, ["scale", "n"] + [f"{m} {metric_label(k)}" for m, k in cols], note=note)
    for i, s in enumerate(scales):
        hits = [cells.get((m, s, k)) for m, k in cols]
        table.rows.append([f"×{s}", n_text(h[2] for h in hits if h)]
                          + ["–" if h is None else format_cell(h[0], h[1], k, h[2]) for h, (_m, k) in zip(hits, cols)])
        for k in metrics:  # best method per scale and metric
            idx = [j for j, (_m, kk) in enumerate(cols) if kk == k]
            vals = {j: round(hits[j][0], decimals(k)) for j in idx if hits[j] is not None}  # as shown
            if len(vals) >= 2:
                best = (min if lower_is_better(k) else max)(vals.values())
                table.bold |= {(i, j + 2) for j, v in vals.items() if v == best}
    return table


def _dataset_tables(df: pd.DataFrame, dataset: str, methods: list[str], scales: list[str], heading: str) -> list[Table]:
    sub = df[(df["dataset"] == dataset) & df["method"].isin(methods) & df["scale"].isin(scales)]
    if sub.empty:
        return []
    task = str(sub["task"].iloc[0])
    present = [m for m in methods if m in set(sub["method"])]
    return [methods_by_scale_table(sub, f"{dataset} ({task}){heading}: {' / '.join(LABELS.get(k, k.upper()) for k in g)}",
                                   present, [s for s in scales if s in set(sub["scale"])], g)
            for g in metric_groups(sub["metric"])]


def gain_table(df: pd.DataFrame, title: str) -> Table | None:
    """Rows = the learned methods of one dataset; columns = n, then the PSNR gain (dB) over the cubic
    baseline at each scale where both ran (difference of the means over the same subjects); best bold."""
    psnr = df[df["metric"] == "psnr"]
    cells = {(r.method, r.scale): (float(r.mean), int(r.n)) for r in psnr.itertuples()}
    base = {s: cells[(b, s)] for (b, s) in cells if b in BASELINES}
    methods = [m for m in method_order(psnr["method"]) if m not in BASELINES]
    scales = sorted({s for (m, s) in cells if m in methods and s in base}, key=float)
    if not methods or not scales:
        return None
    table = Table(title, ["method", "n"] + [f"×{s} ΔPSNR (dB)" for s in scales], note=GAIN_NOTE)
    for m in methods:
        hits = [cells.get((m, s)) for s in scales]
        table.rows.append([m, n_text(h[1] for h in hits if h)]
                          + ["–" if h is None else f"{h[0] - base[s][0]:+.2f}" for h, s in zip(hits, scales)])
    for j, s in enumerate(scales):
        values = [cells[(m, s)][0] - base[s][0] if (m, s) in cells else None for m in methods]
        table.mark_best(j + 2, values, False, 2)
    return table


def family_tables(df: pd.DataFrame, families: Families) -> dict[str, list[Table]]:
    """{family title: tables} from summary.csv rows: main comparison, ablations, scale sweeps, external
    test sets (every table of a `train_from` dataset, and its PSNR gains over the cubic baseline)."""
    out: dict[str, list[Table]] = {MAIN: [], ABLATIONS: [], SCALE_SWEEPS: [], EXTERNAL: []}
    for dataset in dict.fromkeys(df["dataset"]):
        ddf = df[df["dataset"] == dataset]
        if dataset in families.external:
            # every scale in one table (a transfer set's few scales), sweep models included
            src = families.external[dataset]
            out[EXTERNAL] += _dataset_tables(df, dataset, method_order(ddf["method"]),
                                             sorted(set(ddf["scale"]), key=float), f", models trained on {src}")
            gain = gain_table(ddf, f"{dataset} ({ddf['task'].iloc[0]}), models trained on {src}: PSNR gain over "
                                   f"the cubic baseline")
            if gain is not None:
                out[EXTERNAL].append(gain)
            continue
        ablations = families.ablations.get(dataset, {})
        sweep = families.scale_sweeps.get(dataset, [])
        all_scales = sorted(set(ddf["scale"]), key=float)
        main_methods = [m for m in method_order(ddf["method"]) if m not in ablations]
        if sweep:  # the sweep methods' many scales go to the sweep table; main = scales of the other methods
            others = ddf[~ddf["method"].isin(sweep) & ~ddf["method"].isin(list(ablations))]
            main_scales = sorted(set(others["scale"]), key=float)
        else:
            main_scales = all_scales
        out[MAIN] += _dataset_tables(df, dataset, main_methods, main_scales, "")
        if ablations:
            rungs = [m for m in ablations if m in set(ddf["method"])]
            scales = sorted(set(ddf[ddf["method"].isin(rungs)]["scale"]), key=float)
            full = list(dict.fromkeys(ablations[m] for m in rungs))
            out[ABLATIONS] += _dataset_tables(df, dataset, rungs + full, scales, " ablations")
        if sweep:
            sub = ddf[ddf["method"].isin(sweep)]
            present = [m for m in sweep if m in set(sub["method"])]
            if present:
                title = f"{dataset} ({sub['task'].iloc[0]}): one model per method at every scale"
                out[SCALE_SWEEPS].append(scales_by_method_table(sub, title, present))
    return out


def summary_tables(df: pd.DataFrame, families: Families | None = None) -> list[tuple[str, list[Table]]]:
    """[(section title, tables)] in document order; empty sections left out."""
    families = families or Families()
    sections = list(family_tables(df, families).items())
    sections.append((UDEAN, udean_tables(df[~df["dataset"].isin(list(families.external))])))
    return [(t, tables) for t, tables in sections if tables]


def summary_markdown(df: pd.DataFrame, families: Families | None = None) -> str:
    """Paper-style tables per experiment family (PSNR and SSIM side by side, n shown)."""
    parts = ["# Results", "", NOTE, ""]
    for title, tables in summary_tables(df, families):
        parts += [f"## {title}", ""] + [to_markdown(t) for t in tables]
    return "\n".join(parts)


def summary_html(df: pd.DataFrame, families: Families | None = None) -> str:
    """The same tables as one self-contained HTML page (shown inline by `snakemake --report`)."""
    body = ["<h1>Results</h1>", f'<p class="note">{html.escape(NOTE)}</p>']
    for title, tables in summary_tables(df, families):
        body += [f"<h2>{html.escape(title)}</h2>"] + [to_html(t) for t in tables]
    return html_page("mrisr results", "\n".join(body) + "\n")


def write_tables(eval_dirs: list[Path], out_dir: Path, families: Families | None = None) -> None:
    """summary.csv, then summary.md and summary.html built from summary.csv as read back (atomic writes)."""
    out_dir = Path(out_dir)
    summary_csv = out_dir / "summary.csv"
    with atomic_path(summary_csv) as tmp:
        summarize(eval_dirs).to_csv(tmp, index=False)
    df = read_summary(summary_csv)
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text(summary_markdown(df, families), encoding="utf-8")
    with atomic_path(out_dir / "summary.html") as tmp:
        tmp.write_text(summary_html(df, families), encoding="utf-8")
