"""One table structure, rendered as Markdown (summary.md, …) and as HTML (the Snakemake report).

Every results table (main comparison, ablations, scale sweeps, hyper-parameter sweeps, cost)
is built once as a `Table` and written by the same two renderers, so a number cannot read
differently in the Markdown file and in the report. Snakemake's report shows HTML and images
inline but CSV/Markdown only as download links, hence the HTML rendering.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from mrisr.io import atomic_path

BASELINES = ("bicubic", "tricubic")  # listed first in every table
LOWER_IS_BETTER = frozenset({"nmse", "mse", "rmse", "mae"})
DECIMALS = {"psnr": 2, "ssim": 4, "nmse": 4}
LABELS = {"psnr": "PSNR", "ssim": "SSIM", "nmse": "NMSE", "cardiac_psnr": "cardiac PSNR", "cardiac_ssim": "cardiac SSIM"}
STD_NA = "n/a"  # the sample std of one subject is undefined, not 0


def method_order(methods) -> list[str]:
    """Baselines first, then the others in their order of appearance."""
    uniq = list(dict.fromkeys(methods))
    return [m for m in BASELINES if m in uniq] + [m for m in uniq if m not in BASELINES]


def decimals(metric: str) -> int:
    # ROI variants (cardiac_psnr, ...) share the precision of the metric they restrict.
    return DECIMALS.get(metric, DECIMALS.get(metric.rsplit("_", 1)[-1], 4))


def format_cell(mean: float, std: float, metric: str, n: int | None = None) -> str:
    """'mean ± std' at the metric's precision; the std reads 'n/a' for a single subject (n = 1)."""
    d = decimals(metric)
    single = n is not None and int(n) < 2
    if single or std is None or math.isnan(float(std)):
        return f"{mean:.{d}f} ± {STD_NA}"
    return f"{mean:.{d}f} ± {std:.{d}f}"


def lower_is_better(metric: str) -> bool:
    """NMSE-like metrics (and their ROI variants, cardiac_nmse) are better when lower."""
    return metric.rsplit("_", 1)[-1] in LOWER_IS_BETTER


def metric_label(metric: str) -> str:
    """Column label with the direction of better: 'PSNR ↑', 'NMSE ↓'."""
    return f"{LABELS.get(metric, metric.upper())} {'↓' if lower_is_better(metric) else '↑'}"


def n_text(values) -> str:
    """The n of a row: one number, or the distinct ones joined by '/' when cells differ."""
    uniq = sorted({int(v) for v in values})
    return "/".join(map(str, uniq)) if uniq else "–"


@dataclass
class Table:
    """A titled grid of text cells; `bold` holds (row, column) indices of best values."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    bold: set[tuple[int, int]] = field(default_factory=set)
    note: str = ""

    def mark_best(self, col: int, values: list[float | None], lower_is_better: bool, digits: int | None = None) -> None:
        """Bold the best of `values` (one per row; None = empty cell) in column `col`, when ≥ 2 compete.
        Values are compared as shown (rounded to `digits`), so cells that read the same are bold alike."""
        present = [(v if digits is None else round(v, digits), i) for i, v in enumerate(values)
                   if v is not None and not math.isnan(v)]
        if len(present) < 2:
            return
        best = (min if lower_is_better else max)(v for v, _ in present)
        self.bold |= {(i, col) for v, i in present if v == best}


def to_markdown(table: Table, level: int = 3) -> str:
    """'### title', optional note, then a pipe table (first column left-, others right-aligned)."""
    lines = [f"{'#' * level} {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|---|" + "---:|" * (len(table.columns) - 1))
    for i, row in enumerate(table.rows):
        cells = [f"**{c}**" if (i, j) in table.bold else c for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_html(table: Table, level: int = 3) -> str:
    """The same table as an HTML fragment (<hN> title, note, <table>)."""
    esc = html.escape
    out = [f"<h{level}>{esc(table.title)}</h{level}>"]
    if table.note:
        out.append(f'<p class="note">{esc(table.note)}</p>')
    out.append("<table>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in table.columns) + "</tr></thead><tbody>")
    for i, row in enumerate(table.rows):
        cells = []
        for j, c in enumerate(row):
            text = f"<b>{esc(c)}</b>" if (i, j) in table.bold else esc(c)
            cells.append(f"<td>{text}</td>" if j == 0 else f'<td class="num">{text}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out) + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.0em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; margin-bottom: 0.8em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; white-space: nowrap; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; font-size: 0.85em; margin: 0.2em 0 0.5em; }
"""


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page (inline CSS; no external resources, so it renders offline)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head>\n<body>\n{body}</body></html>\n")


def write_table_files(tables: list[Table], title: str, note: str, out_md: Path, out_html: Path) -> None:
    """One titled document of tables as Markdown and as a self-contained HTML page (atomic writes)."""
    md = "\n".join([f"# {title}", "", note, ""] + [to_markdown(t) for t in tables])
    body = f'<h1>{html.escape(title)}</h1>\n<p class="note">{html.escape(note)}</p>\n' + "\n".join(to_html(t) for t in tables)
    with atomic_path(Path(out_md)) as tmp:
        tmp.write_text(md, encoding="utf-8")
    with atomic_path(Path(out_html)) as tmp:
        tmp.write_text(html_page(title, body), encoding="utf-8")
