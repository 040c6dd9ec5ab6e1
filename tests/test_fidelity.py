"""The paper configs are the papers: docs/fidelity.yaml against config/*.yaml and docs/fidelity.md.

* every config value a row names must be what the row says (FAITHFUL rows are the paper's value;
  the others document what the config holds, so the table cannot drift from the config either);
* DEVIATES / MISSING / READING rows must state their reason; FAITHFUL rows must point at a config
  value or at the code that implements the element;
* docs/fidelity.md is the rendering of the YAML (scripts/fidelity.py), and `grep -c DEVIATES` on it
  counts exactly the deviation rows, each with its reason;
* parameter counts: the networks the paper configs build through the model registry have the
  published sizes (Meta-SRGAN Table 1: 0.561M / 0.565M; EDSR at ×2: 40.7M).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from mrisr.models.registry import build_model, count_parameters

REPO = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("fidelity_script", REPO / "scripts" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fid = _load_script()
TABLE = fid.load_table()
ROWS = [(paper["short"], i, row) for paper in TABLE["papers"] for i, row in enumerate(paper["rows"], 1)]
CHECKS = [(f"{short} #{i} {row['element']} [{j}]", row, check)
          for short, i, row in ROWS for j, check in enumerate(row.get("checks", []))]
VALUE_CHECKS = [c for c in CHECKS if "params" not in c[2]]
PARAM_CHECKS = [c for c in CHECKS if "params" in c[2]]
PAPER_CONFIGS = ("acdc_dsb", "fastmri", "brats", "brats_meta_srgan", "hcp", "udean_hcp")


def same(a, b) -> bool:
    """Equal values; floats compared to 1e-12 relative (1e-4 written two ways is one value)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def params_of(cfg: dict, method: str, dataset: str | None, scale: float, dims: int = 2) -> int:
    """Trainable parameters of the model the train rule would build (merged args, registry)."""
    block = fid.model_block(cfg, method, dataset)
    model = build_model(block["arch"], scale=scale, dims=dims, grid_convention="center", **block.get("args", {}))
    return count_parameters(model)


# ------------------------------------------------------------------------------ table shape
def test_every_paper_config_is_covered_and_exists():
    named = {c for paper in TABLE["papers"] for c in paper["configs"]}
    assert named == set(PAPER_CONFIGS)
    configs = {paper["short"]: set(paper["configs"]) for paper in TABLE["papers"]}
    for short, _, row in ROWS:
        for check in row.get("checks", []):
            # A row checks its own paper's configs: a Meta-SRGAN row that a merge left inside the UDEAN
            # section (it happened) would otherwise pass as a UDEAN row.
            assert check["config"] in configs[short], f"{short}: {row['element']}: config {check['config']!r} " \
                                                      f"is not one of this paper's {sorted(configs[short])}"


def test_each_paper_and_each_element_once():
    for field in ("short", "title"):
        values = [paper[field] for paper in TABLE["papers"]]
        assert len(values) == len(set(values)), f"a paper {field} appears twice: {values}"
    for paper in TABLE["papers"]:
        elements = [row["element"] for row in paper["rows"]]
        twice = sorted({e for e in elements if elements.count(e) > 1})
        assert not twice, f"{paper['short']}: elements listed twice: {twice}"


@pytest.mark.parametrize("short,i,row", ROWS, ids=[f"{s}#{i}" for s, i, _ in ROWS])
def test_row_is_well_formed(short, i, row):
    where = f"{short} row {i} ({row.get('element')})"
    assert set(row) <= {"element", "paper", "status", "reason", "source", "checks", "code"}, where
    assert str(row.get("element", "")).strip() and str(row.get("paper", "")).strip(), where
    assert row["status"] in fid.STATUSES, f"{where}: status {row['status']!r}"
    if row["status"] in fid.NEEDS_REASON:
        assert len(str(row.get("reason") or "").strip()) >= 10, f"{where}: {row['status']} needs a reason"
    if row["status"] == "FAITHFUL":
        assert row.get("checks") or row.get("code"), f"{where}: FAITHFUL needs a config value or a code pointer"
    for path in row.get("code", []):
        assert (REPO / path).is_file(), f"{where}: code pointer {path} does not exist"
    for field in ("element", "paper", "reason", "source"):
        # the status word appears in the md only in status cells (grep -c counts rows)
        assert "DEVIATES" not in str(row.get(field) or ""), f"{where}: {field} says DEVIATES"


# ------------------------------------------------------------------------------ values
@pytest.mark.parametrize("label,row,check", VALUE_CHECKS, ids=[c[0] for c in VALUE_CHECKS])
def test_config_holds_the_tabled_value(label, row, check):
    cfg = fid.load_config(check["config"])
    value = fid.resolve(cfg, check["key"], check.get("dataset"))
    if "contains" in check:
        assert any(same(item, check["contains"]) for item in value), \
            f"{label}: {check['config']}: {check['key']} lacks {check['contains']!r} ({row['status']})"
    else:
        assert same(value, check["value"]), \
            f"{label}: {check['config']}: {check['key']} = {value!r}, table says {check['value']!r} ({row['status']})"


@pytest.mark.parametrize("label,row,check", PARAM_CHECKS, ids=[c[0] for c in PARAM_CHECKS])
def test_config_builds_the_tabled_parameter_count(label, row, check):
    cfg = fid.load_config(check["config"])
    n = params_of(cfg, check["params"], check.get("dataset"), check["scale"], check.get("dims", 2))
    target, rtol = float(check["value"]), float(check.get("rtol", 0.01))
    assert abs(n - target) <= rtol * target, f"{label}: {n} parameters, table says {target:.0f} ± {rtol:.0%}"


def test_resolve_merges_dataset_overrides_and_names_missing_keys():
    cfg = {"models": {"m": {"arch": "edsr", "args": {"n_feats": 8, "n_blocks": 2}}},
           "datasets": {"d": {"overrides": {"m": {"args": {"n_feats": 16}}}}, "e": {}}}
    assert fid.resolve(cfg, "models.m.args.n_feats", "d") == 16
    assert fid.resolve(cfg, "models.m.args.n_blocks", "d") == 2
    assert fid.resolve(cfg, "models.m.args.n_feats", "e") == 8
    assert fid.resolve(cfg, "models.m.args.n_feats") == 8
    assert cfg["models"]["m"]["args"]["n_feats"] == 8  # the merge copies
    with pytest.raises(KeyError, match="models.m.args.width"):
        fid.resolve(cfg, "models.m.args.width", "d")


# ------------------------------------------------------------------------------ rendering
def test_markdown_is_the_rendering_of_the_yaml():
    text = (REPO / "docs" / "fidelity.md").read_text(encoding="utf-8")
    assert text == fid.render(TABLE), "docs/fidelity.md is out of date: run .venv/bin/python scripts/fidelity.py"


def test_grep_deviates_counts_deviation_rows_with_reasons():
    lines = [ln for ln in (REPO / "docs" / "fidelity.md").read_text(encoding="utf-8").splitlines() if "DEVIATES" in ln]
    deviating = [row for _, _, row in ROWS if row["status"] == "DEVIATES"]
    assert len(lines) == len(deviating) > 0
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[4] == "DEVIATES" and len(cells[5]) >= 10 and cells[5] != "—", line


def test_render_refuses_a_pipe_inside_a_cell():
    table = {"intro": "x", "papers": [{"short": "p", "title": "t", "configs": [], "about": "a",
                                       "rows": [{"element": "a | b", "paper": "p", "status": "FAITHFUL"}]}]}
    with pytest.raises(ValueError, match="'|'"):
        fid.render(table)


# ------------------------------------------------------------------------------ published sizes
# Independent of the table: the numbers the papers print, against the paper configs.
def test_meta_srgan_and_srgan_generators_have_table_1_sizes():
    cfg = fid.load_config("brats_meta_srgan")
    meta = params_of(cfg, "meta_srgan", "brats_slices", 2.0)
    srgan = params_of(cfg, "srgan", "brats_slices", 2)
    assert abs(meta - 0.561e6) <= 0.01 * 0.561e6, meta
    assert abs(srgan - 0.565e6) <= 0.01 * 0.565e6, srgan
    assert meta < srgan  # Table 1's order: Meta-Upscale is smaller than the ×2 sub-pixel head + tail


@pytest.mark.parametrize("config,dataset", [("acdc_dsb", "acdc"), ("fastmri", "fastmri_knee"), ("brats", "brats"),
                                            ("brats_meta_srgan", "brats_slices")])
def test_edsr_baseline_is_edsr_paper_size_at_x2(config, dataset):
    """EDSR (256 feats, 32 blocks, res-scale 0.1): 40.7M parameters for its ×2 model."""
    cfg = fid.load_config(config)
    args = fid.model_block(cfg, "edsr", dataset)["args"]
    assert args == {"n_feats": 256, "n_blocks": 32, "res_scale": 0.1}
    n = params_of(cfg, "edsr", dataset, 2)
    assert abs(n - 40.7e6) <= 0.02 * 40.7e6, n


@pytest.mark.parametrize("config", PAPER_CONFIGS)
def test_no_paper_config_trains_one_model_twice_under_two_names(config):
    """An ablation rung or study point equal to another entry would cost a second training of the same net."""
    import json

    cfg = fid.load_config(config)
    seen: dict[str, str] = {}
    for name, block in cfg["models"].items():
        key = json.dumps(block, sort_keys=True)
        assert key not in seen, f"{config}: models {seen.get(key)} and {name} are the same model"
        seen[key] = name
