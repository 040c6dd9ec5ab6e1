"""The paper configs (config/{acdc_dsb,fastmri,brats,brats_meta_srgan,hcp,udean_hcp}.yaml) build their full
DAG; all six validate against the schema.

Each config's `raw` entries are pointed at fixture data in the real formats (test-side
override: `raw: {dir: ...}`, and for one dataset a hand-fetched `archive` so the download
rule runs inside Snakemake). The inventory rule is run for real (it only lists subjects), then
`snakemake -n all` must plan every stage for every method and scale, with the per-subject stages
(prepare, degrade, motion, register) as one job per dataset (× scale) whatever the subject count.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from div2k_fixture import write_div2k
from mrisr.cli import main
from mrisr.datasets import write_synth

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "1"]
TINY = {  # fixture generators: (kind, n_subjects, params)
    "acdc": ("cine", 4, {"size": [24, 24], "slices": 2, "frames": 6}),
    "dsb": ("cine", 3, {"format": "dsb", "size": [24, 24], "slices": 2, "frames": 6}),
    "fastmri_knee": ("multicontrast", 5, {"format": "fastmri", "size": [16, 16], "slices": 2, "coils": 2}),
    "brats": ("multicontrast", 5, {"size": [24, 24], "slices": 2}),
    "hcp": ("volume", 5, {"shape": [16, 16, 16]}),
    "brats_slices": ("multicontrast", 5, {"size": [24, 24], "slices": 2}),
    "div2k": None,  # PNGs in DIV2K's layout (div2k_fixture), not a generator's
    "hcp_udean_volume": ("volume", 10, {"shape": [16, 16, 16]}),  # 8 train = 4 target + 4 source
}
# The fixture generator writes BraTS-style t1/t2 files; a config reading another contrast gets the t1
# files under its name (only the file layout matters to the inventory and the plan).
RENAME = {"brats_slices": ("_t1.nii.gz", "_t1ce.nii.gz")}


def job_counts(text: str) -> dict[str, int]:
    """Rule -> count from Snakemake's 'Job stats' table."""
    block = text.split("Job stats:", 1)
    assert len(block) == 2, text[-3000:]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block[1], re.M)}


def run(workdir: Path, cfg: Path, *args: str) -> str:
    # --configfile takes several values: it goes last, after the targets.
    proc = subprocess.run(SNAKEMAKE + ["--directory", str(workdir), *args, "--configfile", str(cfg)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def zip_folder(folder: Path, archive: Path) -> str:
    """Zip `folder` under its own name (as ACDC's zip holds database/...); return the sha256."""
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, Path(folder.name) / p.relative_to(folder))
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def fixture_config(name: str, tmp_path: Path, archive_for: str | None = None) -> tuple[Path, dict]:
    """The paper config with every dataset's raw pointed at fresh fixture data."""
    cfg = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text(encoding="utf-8"))
    for ds, d in cfg["datasets"].items():
        raw = tmp_path / "fixtures" / ds
        if d["reader"] == "div2k":  # 4 train + 1 valid image; the published split names all 900
            write_div2k(raw, {"DIV2K_train_HR": [1, 2, 3, 4], "DIV2K_valid_HR": [801]}, height=100, width=100)
            d["split"] = [4, 1, 0]
        else:
            kind, n, params = TINY[ds]
            write_synth(kind, raw, n, 1, params)
        if ds in RENAME:
            old_suffix, new_suffix = RENAME[ds]
            for f in sorted(raw.glob(f"*/*{old_suffix}")):
                f.rename(f.with_name(f.name.removesuffix(old_suffix) + new_suffix))
        if ds == archive_for:  # fetched by hand: the download rule verifies and extracts it
            digest = zip_folder(raw, tmp_path / f"{ds}.zip")
            d["raw"] = {"archive": str(tmp_path / f"{ds}.zip"), "sha256": digest}
        else:
            d["raw"] = {"dir": str(raw)}
        if d["reader"] == "fastmri":  # the fixture's own pair list, split by ratios (not MINet's published lists)
            d["reader_options"]["pairs"] = "pairs.csv"
            d["split"] = [3, 1, 1]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def inventory_in_process(work: Path, cfg: dict) -> None:
    """What the inventory rule writes, via the same CLI but without a Snakemake start
    (each start costs seconds; the rule itself runs for real in the acdc_dsb test)."""
    for ds, d in cfg["datasets"].items():
        out = work / "results" / ds / "inventory.json"
        assert main(["inventory", "--reader", d["reader"], "--reader-options", json.dumps(d.get("reader_options", {})),
                     "--raw", d["raw"]["dir"], "--out", str(out)]) == 0


def plan(name: str, tmp_path: Path, archive_for: str | None = None, real_inventory: bool = False) -> tuple[dict, dict]:
    cfg_path, cfg = fixture_config(name, tmp_path, archive_for)
    work = tmp_path / "work"
    work.mkdir()
    if real_inventory:
        run(work, cfg_path, *[f"results/{ds}/inventory.json" for ds in cfg["datasets"]])
    else:
        inventory_in_process(work, cfg)
    return job_counts(run(work, cfg_path, "-n", "all")), cfg


def method_scales(d: dict) -> list[tuple[str, int]]:
    """(method, number of scales it runs at): a bare name runs at every scale of the dataset,
    an entry {name, scales} (ablations) at its own."""
    return [(m, len(d["scales"])) if isinstance(m, str) else (m["name"], len(m.get("scales", d["scales"])))
            for m in d["methods"]]


def expected_experiments(cfg: dict) -> tuple[int, int]:
    """(trainings, evaluations) the config asks for: learned methods × scales of datasets
    that train; every method × scale of every dataset is evaluated, except a train_only one's."""
    interp = {"bicubic", "tricubic"}
    train = sum(n for d in cfg["datasets"].values() if not d.get("train_from")
                for m, n in method_scales(d) if m not in interp)
    evaluate = sum(n for d in cfg["datasets"].values() if not d.get("train_only") for _, n in method_scales(d))
    return train, evaluate


def test_acdc_dsb_plans_external_test_set_and_download(tmp_path: Path) -> None:
    counts, cfg = plan("acdc_dsb", tmp_path, archive_for="acdc", real_inventory=True)
    train, evaluate = expected_experiments(cfg)
    assert counts["prepare"] == 2  # one job per dataset, not per subject (issue 15)
    # Table 1 (edsr, phase_vsr at ×2/×3/×4), the Table 2 ladder (5 rungs) and the n / Ω studies (7 more models) at ×4
    assert counts["train"] == train == 6 + 5 + 7
    assert counts["evaluate"] == evaluate == 9 + 12 + 9  # acdc Table 1 + ×4 studies, dsb (external) Table 1
    # DSB is test-only: it is degraded at every scale but has no patch stores or models.
    assert counts["degrade"] == 2 * 3  # one job per dataset × scale
    assert counts["split"] == 2 and "download" not in counts  # the download already ran, for real
    extracted = tmp_path / "work/resources/raw/acdc"
    assert (extracted / "download.json").is_file() and (extracted / "acdc/patient001/Info.cfg").is_file()


@pytest.mark.parametrize("name", ["fastmri", "brats", "hcp"])
def test_paper_config_plans_every_stage(name: str, tmp_path: Path) -> None:
    counts, cfg = plan(name, tmp_path)
    (ds, d), = cfg["datasets"].items()
    train, evaluate = expected_experiments(cfg)
    assert counts["prepare"] == 1 and counts["degrade"] == len(d["scales"])
    assert counts["train"] == train and counts["evaluate"] == evaluate
    assert counts["patches"] >= 2 * len(d["scales"])  # train + val store per scale
    assert counts["tables"] == 1 and "inventory" not in counts  # its output is newer than the raw dir


def test_paper_configs_validate_against_the_schema() -> None:
    """Every paper config is valid as shipped (raw as a user would give it)."""
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text(encoding="utf-8"))
    for name in ("acdc_dsb", "fastmri", "brats", "brats_meta_srgan", "hcp", "udean_hcp"):
        cfg = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text(encoding="utf-8"))
        jsonschema.validate(cfg, schema)
    bad = {"kind": "cine", "reader": "acdc", "target": "cine", "scales": [2], "methods": ["bicubic"],
           "raw": {"url": "https://example.org/a.zip"}}
    with pytest.raises(jsonschema.ValidationError, match="sha256"):
        jsonschema.validate({"datasets": {"x": bad}}, schema)
    bad["raw"] = {"url": "https://example.org/a.zip", "sha256": "0" * 64, "auth_env": "bad name"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"datasets": {"x": bad}}, schema)


def test_meta_srgan_config_plans_one_arbitrary_scale_model_and_the_sweep(tmp_path: Path) -> None:
    counts, cfg = plan("brats_meta_srgan", tmp_path)
    d = cfg["datasets"]["brats_slices"]
    assert len(d["scales"]) == 30
    # one `train` rule: meta_srgan ONCE for every scale (models/.../any/), edsr and srgan at ×2 (Table 1),
    # and the DIV2K pretraining of meta_srgan (any/) and srgan (×2)
    assert counts["train"] == 3 + 2 and counts["evaluate"] == 2  # div2k (train_only) is never evaluated
    assert counts["prepare"] == 2 and counts["degrade_scales_brats_slices"] == 1  # every subject × 30 scales
    assert counts["degrade"] == 1  # div2k ×2, for srgan's pairs
    assert counts["patches_hr"] == 2 + 2 and counts["patches"] == 2 + 2  # HR-only train/val; ×2 pair train/val
    # bicubic and meta_srgan evaluated at every scale, one job each; the Fig. 8 sweep table
    assert counts["evaluate_scales_brats_slices_bicubic"] == counts["evaluate_scales_brats_slices_meta_srgan"] == 1
    assert counts["scale_sweep_brats_slices"] == 1 and counts["tables"] == 1
    assert not any("div2k" in rule for rule in counts)  # no sweep, figure or evaluation rules for it


def test_meta_srgan_config_pretrains_on_div2k_first(tmp_path: Path) -> None:
    """brats_slices' meta_srgan and srgan train after, and from, the div2k ones (init_from); the
    div2k models start from a seeded init (the overrides are brats_slices' only)."""
    cfg_path, cfg = fixture_config("brats_meta_srgan", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    inventory_in_process(work, cfg)
    text = run(work, cfg_path, "-n", "-p", "all")  # -p: each job's shell command
    jobs = train_jobs(text)
    for method, scale_dir in (("meta_srgan", "any"), ("srgan", "x2")):
        source = f"results/models/div2k/{method}/{scale_dir}/model.pt"
        order = [out for out, _cmd in jobs]
        pre, fine = order.index(source), order.index(f"results/models/brats_slices/{method}/{scale_dir}/model.pt")
        assert pre < fine, order
        assert f"--init-from {source}" in jobs[fine][1]
        assert "--init-from" not in jobs[pre][1]
    assert "--init-from" not in dict(jobs)["results/models/brats_slices/edsr/x2/model.pt"]


def train_jobs(text: str) -> list[tuple[str, str]]:
    """(model.pt output, shell command) of every `train` job of a `snakemake -n -p` listing, in plan order."""
    out = []
    for block in re.split(r"\n(?=rule |localrule )", text):
        if block.startswith("rule train:"):
            model = re.search(r"output: (\S*model\.pt)", block)
            cmd = re.search(r"^\s*(?:Shell command: )?(python -m mrisr train .*)$", block, re.M)
            assert model and cmd, block
            out.append((model.group(1).rstrip(","), cmd.group(1)))
    return out


def test_udean_config_plans_the_five_learned_benchmarks(tmp_path: Path) -> None:
    """Every stage is planned before groups.json exists: motion, nearest LR and registration take
    the group lists at run time, one job each for the dataset (× scale)."""
    counts, cfg = plan("udean_hcp", tmp_path)
    train, evaluate = expected_experiments(cfg)
    assert counts["train"] == train == 5 and counts["evaluate"] == evaluate == 6
    assert counts["prepare"] == 1 and counts["degrade"] == 1 and counts["groups"] == 1
    assert counts["motion"] == counts["register"] == counts["degrade_nearest"] == 1
    assert counts["group_patches"] == 5  # one train store per learned method's `store`
