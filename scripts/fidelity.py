"""Render docs/fidelity.md from docs/fidelity.yaml (the paper-fidelity table), or check it.

    .venv/bin/python scripts/fidelity.py           # rewrite docs/fidelity.md
    .venv/bin/python scripts/fidelity.py --check   # exit 1 if docs/fidelity.md is out of date

The YAML is the source of truth: per paper, rows of
`{element, paper, status, reason, source, checks, code}`. tests/test_fidelity.py reads the
paper configs and checks every row's `checks` against them (and builds the networks of
`params` checks through the model registry), so the table and the configs cannot drift apart.

Check forms (each names a paper config, `config: acdc_dsb` = config/acdc_dsb.yaml):
* `key: models.phase_vsr.args.n_feats, value: 64` — a dotted path; `models.<m>...` is the model
  block after `datasets.<dataset>.overrides.<m>` is deep-merged into it when `dataset` is given
  (what the train rule receives); integer path parts index lists.
* `key: datasets.acdc.methods, contains: {name: phase_vsr_nomem, scales: [4]}` — list membership.
* `params: meta_srgan, scale: 2, value: 561000, rtol: 0.01` — trainable parameters of the model
  built from the config's (merged) args at that scale (2D unless `dims` is given).

The word for the deviation status appears in the rendered file only in deviation rows, so
`grep -c DEVIATES docs/fidelity.md` counts exactly the deviations (each with its reason).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "docs" / "fidelity.yaml"
OUTPUT = REPO / "docs" / "fidelity.md"
STATUSES = ("FAITHFUL", "DEVIATES", "MISSING", "READING")
NEEDS_REASON = ("DEVIATES", "MISSING", "READING")


def load_table(path: Path = TABLE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_config(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text(encoding="utf-8"))


def deep_merge(base: dict, override: dict) -> dict:
    """As workflow/rules/common.smk: dicts merge recursively, anything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def model_block(cfg: dict, method: str, dataset: str | None) -> dict:
    """models.<method> with the dataset's overrides merged in (the train rule's params)."""
    block = cfg["models"][method]
    if dataset is not None:
        block = deep_merge(block, cfg["datasets"][dataset].get("overrides", {}).get(method, {}))
    return block


def resolve(cfg: dict, key: str, dataset: str | None = None) -> Any:
    """The value at a dotted path; KeyError naming the first missing part."""
    parts = key.split(".")
    if parts[0] == "models" and len(parts) >= 2:
        node: Any = model_block(cfg, parts[1], dataset)
        rest, done = parts[2:], parts[:2]
    else:
        node, rest, done = cfg, parts, []
    for part in rest:
        done.append(part)
        if isinstance(node, list) and part.lstrip("-").isdigit():
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"{'.'.join(done)} is not in the config")
    return node


# ------------------------------------------------------------------------------ rendering
def cell(text: Any) -> str:
    """One table cell: single line, no pipe (it would split the cell)."""
    s = " ".join(str(text).split())
    if "|" in s:
        raise ValueError(f"'|' in a table cell: {s!r}")
    return s


def show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def render_check(check: dict) -> str:
    where = f"{check['config']}" + (f" [{check['dataset']}]" if check.get("dataset") else "")
    if "params" in check:
        tol = float(check.get("rtol", 0.01)) * 100
        return (f"`{where}`: {check['params']} at ×{show(check['scale'])} has "
                f"{check['value'] / 1e6:.3f}M parameters ±{tol:g}%")
    if "contains" in check:
        return f"`{where}`: `{check['key']}` ∋ `{show(check['contains'])}`"
    return f"`{where}`: `{check['key']}` = `{show(check['value'])}`"


def render_row(i: int, row: dict) -> str:
    where = [render_check(c) for c in row.get("checks", [])] + [f"code: `{c}`" for c in row.get("code", [])]
    note = row.get("reason") or ""
    if row.get("source"):
        note = f"{note} (source: {row['source']})" if note else f"source: {row['source']}"
    return "| " + " | ".join(cell(x) for x in (i, row["element"], row["paper"], "<br>".join(where) or "—",
                                               row["status"], note or "—")) + " |"


def summary(rows: list[dict]) -> str:
    words = {"FAITHFUL": "faithful", "DEVIATES": "deviating", "MISSING": "missing", "READING": "reading"}
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    return ", ".join(f"{counts[s]} {words[s]}" for s in STATUSES)


def render(table: dict) -> str:
    lines = [
        "# Paper fidelity of the paper configs",
        "",
        "<!-- Generated from docs/fidelity.yaml by `.venv/bin/python scripts/fidelity.py`; edit the YAML, not this"
        " file. tests/test_fidelity.py fails when the two differ. -->",
        "",
        table["intro"].strip(),
        "",
        "Statuses: **FAITHFUL** — the config (or the code named) holds the published value, and the test checks"
        " the config value; a **deviation** — config or code differs from the paper, for the reason given;"
        " **MISSING** — the paper's element is not available yet, for the reason given; **READING** — the paper"
        " leaves it open (or contradicts itself): what it leaves open and what we chose. Every config key shown"
        " is checked against its paper config by tests/test_fidelity.py, whatever the status.",
        "",
        "| paper | configs | rows |",
        "|---|---|---|",
    ]
    for paper in table["papers"]:
        configs = ", ".join(f"`config/{c}.yaml`" for c in paper["configs"])
        lines.append(f"| {cell(paper['short'])} | {configs} | {summary(paper['rows'])} |")
    for n, paper in enumerate(table["papers"], 1):
        lines += ["", f"## {n}. {cell(paper['title'])}", ""]
        lines += [paper["about"].strip(), ""]
        lines += [f"Rows: {summary(paper['rows'])}.", ""]
        lines += ["| # | element | paper | config key = value / code | status | reason / source |",
                  "|---|---|---|---|---|---|"]
        lines += [render_row(i, row) for i, row in enumerate(paper["rows"], 1)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render(load_table())
    if argv[1:] == ["--check"]:
        if not OUTPUT.is_file() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT}: out of date with {TABLE}; run .venv/bin/python scripts/fidelity.py", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print("usage: scripts/fidelity.py [--check]", file=sys.stderr)
        return 2
    tmp = OUTPUT.with_name(OUTPUT.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(OUTPUT)  # atomic: a reader never sees half a table
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
