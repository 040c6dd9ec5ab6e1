"""The workflow's layout (issue 16): rules by stage, functions in common.smk, kinds defined once,
`all` asking for every model, conda envs in step with requirements.txt, the .test config.

Static checks read the rule files; the rest run Snakemake on dry runs only (seconds each).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mrisr import kinds
from mrisr.degrade.pipeline import CONVENTION_OF_MODE, MODES

REPO = Path(__file__).resolve().parents[1]
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
STAGE_FILES = {"common", "data", "degrade", "patches", "train", "evaluate", "report", "batched"}
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
# A config with no scale-sweep dataset, so batched.smk generates nothing (from test_pipeline).
from test_pipeline import TINY  # noqa: E402


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"snakemake {' '.join(args)}\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def listed_rules(*args: str) -> list[str]:
    """Rule names of `snakemake --list-rules` (docstrings continue on indented lines)."""
    out = snakemake("--list-rules", *args).stdout
    return [line.split()[0] for line in out.splitlines() if line and not line[0].isspace()]


def literal_rules() -> list[str]:
    """Rules and checkpoints written out at column 0 of the Snakefile and the rule files."""
    pattern = re.compile(r"^(?:rule|checkpoint) (\w+):", re.M)
    return [name for f in RULE_FILES for name in pattern.findall(f.read_text())]


def test_rule_files_are_the_stages() -> None:
    assert {f.stem for f in RULE_FILES[1:]} == STAGE_FILES


@pytest.mark.parametrize("path", [f for f in RULE_FILES if f.name != "common.smk"], ids=lambda p: p.name)
def test_rule_files_define_no_functions(path: Path) -> None:
    defs = re.findall(r"^\s*def (\w+)", path.read_text(), re.M)
    assert defs == [], f"{path.name} defines {defs}: functions belong in common.smk"


def test_rule_input_and_param_functions_are_get_star() -> None:
    """Every common.smk function handed to a rule directive (input, params, threads, ...) is get_*."""
    defined = set(re.findall(r"^def (\w+)", (REPO / "workflow/rules/common.smk").read_text(), re.M))
    text = "".join(f.read_text() for f in RULE_FILES if f.name != "common.smk")
    passed = set(re.findall(r"^\s+(?:\w+=|threads: )?(\w+),?$", text, re.M)) & defined
    assert len(passed) > 20 and all(n.startswith("get_") for n in passed), sorted(passed)


def test_every_listed_rule_is_written_out_except_the_batched_ones() -> None:
    """Default config: `grep -c '^rule \\|^checkpoint '` + batched.smk's generated rules = --list-rules."""
    listed = listed_rules()
    literal = literal_rules()
    assert len(literal) == len(set(literal))
    generated = [r for r in listed if r not in literal]
    assert sorted(literal) == sorted(set(listed) - set(generated))
    # the scale-sweep datasets: synth_brain_slices and its transfer check on real scans
    assert generated and all(re.match(r"(degrade_scales|evaluate_scales|figures|scale_sweep)_(synth_brain_slices|"
                                      r"transfer_slices)", r) for r in generated), generated
    assert len(literal) + len(generated) == len(listed)


def test_without_a_scale_sweep_dataset_every_rule_is_literal(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    assert sorted(listed_rules("--configfile", str(cfg))) == sorted(literal_rules())


def test_schema_enums_are_the_kind_tables() -> None:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    deg = schema["$defs"]["dataset"]["properties"]["degradation"]["properties"]
    assert deg["mode"]["enum"] == list(kinds.DEGRADATIONS)
    assert deg["window"]["enum"] == list(kinds.WINDOWS)
    assert schema["$defs"]["model"]["properties"]["store"]["enum"] == list(kinds.STORES)
    # the degrade package agrees on modes and sample conventions
    assert list(MODES) == list(kinds.DEGRADATIONS)
    assert CONVENTION_OF_MODE == {m: d.convention for m, d in kinds.DEGRADATIONS.items()}
    assert kinds.GROUP_STORES == ("misaligned_pairs", "registered_pairs", "nearest_pairs",
                                  "udean_misaligned", "udean_unpaired")
    assert kinds.degradation_name("lowpass_bicubic", "hamming") == "lowpass_bicubic-hamming"
    assert kinds.degradation_name("truncate", "none") == "truncate"


def test_cli_degrade_modes_are_the_kind_table() -> None:
    from mrisr.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.choices and "degrade" in a.choices).choices
    mode = lambda cmd: next(a for a in sub[cmd]._actions if a.dest == "mode").choices  # noqa: E731
    assert list(mode("degrade")) == list(kinds.DEGRADATIONS)
    assert list(mode("degrade-scales")) == [m for m, d in kinds.DEGRADATIONS.items() if d.batched]


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


ENVS = sorted((REPO / "envs").glob("*.yaml"))


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_conda_envs_pin_the_requirements_versions(env: Path) -> None:
    spec = yaml.safe_load(env.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    pins = dict(p.lower().split("==") for p in pip if not p.startswith("-"))
    req = requirement_pins()
    assert pins and all(req.get(name) == version for name, version in pins.items()), \
        {n: (v, req.get(n)) for n, v in pins.items() if req.get(n) != v}
    # the runtime is complete: everything but the test runner and Snakemake itself
    tooling = {"pytest", "snakemake"} | {n for n in req if n.startswith("snakemake-executor-plugin")}
    assert set(pins) == set(req) - tooling
    assert any(re.fullmatch(r"python=3\.\d+", d) for d in spec["dependencies"] if isinstance(d, str))


def test_every_rule_has_a_conda_env_that_exists() -> None:
    text = "".join(f.read_text() for f in RULE_FILES)
    n_rules = len(re.findall(r"^\s*(?:rule|checkpoint)\b.*:", text, re.M)) - 1  # `all` runs nothing
    envs = re.findall(r"^\s+conda:\n\s+(.+)$", text, re.M)
    assert len(envs) == n_rules, (len(envs), n_rules)
    for e in envs:
        if e.startswith('"'):
            assert (REPO / "workflow/rules" / e.strip('"')).resolve().is_file(), e
    assert (REPO / "envs/train-cuda.yaml").is_file()


def test_all_requests_every_trained_model(tmp_path: Path) -> None:
    """`all` lists each model's weights and card, so a deleted model folder is retrained."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = snakemake("-n", "all", "--directory", str(tmp_path / "w"), "--configfile", str(cfg), "--cores", "1").stdout
    inputs = re.search(r"^(?:local)?rule all:\n\s+input: (.*)$", out, re.M).group(1).split(", ")
    for d in TINY["datasets"]:
        for f in ("model.pt", "card.md"):
            assert f"results/models/{d}/edsr/x2/{f}" in inputs


def test_dot_test_config_dry_runs(tmp_path: Path) -> None:
    """.test/config/config.yaml: the tiny config of the snakemake-workflows layout, checked in CI."""
    out = snakemake("-n", "all", "--directory", str(tmp_path), "--configfile",
                    str(REPO / ".test/config/config.yaml"), "--cores", "1").stdout
    assert "synth" in out and "Job stats" in out


def schema_keys(node: object) -> set[str]:
    """Every property name anywhere in the config schema."""
    keys: set[str] = set()
    if isinstance(node, dict):
        for k, v in (node.get("properties") or {}).items():
            keys.add(k)
            keys |= schema_keys(v)
        for k, v in node.items():
            if k != "properties":
                keys |= schema_keys(v)
    elif isinstance(node, list):
        for v in node:
            keys |= schema_keys(v)
    return keys


def test_config_readme_documents_every_key() -> None:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    documented = set(re.findall(r"^\| `(\w+)` \|", (REPO / "config/README.md").read_text(), re.M))
    keys = schema_keys(schema)
    assert len(keys) > 50 and keys <= documented, sorted(keys - documented)
