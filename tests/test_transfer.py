"""The transfer check on real scans (issue 17): external test sets (`train_from`) whose kind and
reader differ from the training dataset's, their start-up checks, the summary section with the
gains over the cubic baseline, a dry run and a small real pipeline run on the scans that ship
inside nibabel and dipy."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake_runner import REPO, run_snakemake

from mrisr.config_check import check_config
from mrisr.errors import ConfigError

DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())
TRANSFER = ("transfer_slices", "transfer_slices_mc", "transfer_volume", "transfer_volume_udean")


def test_default_config_has_the_transfer_datasets_and_passes() -> None:
    check_config(copy.deepcopy(DEFAULT))
    for name in TRANSFER:
        d = DEFAULT["datasets"][name]
        src = DEFAULT["datasets"][d["train_from"]]
        assert d["reader"] == "nifti" and "installed" in d["raw"] and "patches" not in d
        assert d["degradation"] == src["degradation"]  # the models' own degradation
        assert all(e["package"] in ("nibabel", "dipy") for e in d["raw"]["installed"])
        assert len(d["raw"]["installed"]) >= 2  # n >= 2 test subjects: the std is defined
    # every single-image 2D model of synth_brain_slices, and the volume models
    names = lambda n: {m if isinstance(m, str) else m["name"] for m in DEFAULT["datasets"][n]["methods"]}  # noqa: E731
    assert names("transfer_slices") == names("synth_brain_slices")
    assert names("transfer_volume_udean") == names("udean_volume")
    assert names("transfer_volume") == names("synth_volume")


def _edit(edit) -> dict:
    cfg = copy.deepcopy(DEFAULT)
    edit(cfg["datasets"])
    return cfg


@pytest.mark.parametrize("edit, key, problem", [
    (lambda d: d["transfer_volume"].update(overrides={"edsr": {"args": {"n_feats": 8}}}),
     "datasets.transfer_volume.overrides", "set overrides there"),
    (lambda d: d["transfer_slices"]["degradation"].update(mode="truncate"),
     "datasets.transfer_slices.degradation.mode", "trained with mode 'lowpass_bicubic'"),
    (lambda d: d["transfer_slices_mc"].update(train_from="synth_volume"),
     "datasets.transfer_slices_mc.kind", "the models of 'synth_volume' (kind 'volume') are 3D"),
    (lambda d: d["transfer_slices_mc"]["methods"].append("minet"),
     "datasets.transfer_slices_mc.methods[2]", "reads an HR reference contrast"),
    (lambda d: d["transfer_slices"]["methods"].append({"name": "edsr", "scales": [3]}),
     "datasets.transfer_slices.methods[4].scales", "trains it only at 2"),
], ids=["overrides", "degradation", "dims", "reference", "untrained_scale"])
def test_transfer_config_errors_name_the_key(edit, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_config(_edit(edit))
    assert str(err.value).startswith(f"config: {key}: ") and problem in str(err.value), str(err.value)


def test_a_multicontrast_transfer_set_may_run_minet() -> None:
    """With a real paired reference (a multicontrast external set), MINet is allowed."""
    cfg = copy.deepcopy(DEFAULT)
    mc = copy.deepcopy(cfg["datasets"]["synth_multicontrast"])
    mc.pop("patches")
    cfg["datasets"]["paired_ext"] = {**mc, "train_from": "synth_multicontrast", "methods": ["bicubic", "minet"],
                                     "raw": {"dir": "somewhere"}}
    check_config(cfg)


def test_summary_has_a_transfer_section_with_gains() -> None:
    from mrisr.evaluate.tables import EXTERNAL, SUMMARY_COLUMNS, Families, summary_markdown

    rows = []
    for m, p in (("tricubic", 30.0), ("edsr", 31.25), ("udean_unpaired", 29.5)):
        for ds in ("vol", "real_vol"):
            rows += [(ds, "sisr3d", "2", m, "psnr", p + (ds == "vol"), 0.5, 2), (ds, "sisr3d", "2", m, "ssim", 0.9, 0.01, 2)]
    fam = Families.from_json({"external": {"real_vol": "vol"}})
    md = summary_markdown(pd.DataFrame(rows, columns=SUMMARY_COLUMNS), fam)
    section = md[md.index(f"## {EXTERNAL}"):]
    assert md.index("## Main comparison") < md.index(f"## {EXTERNAL}")
    assert "### real_vol (sisr3d), models trained on vol: PSNR / SSIM" in section
    gain = section[section.index("PSNR gain over the cubic baseline"):].splitlines()
    rows_md = [line for line in gain if line.startswith("| ")]
    assert rows_md[0] == "| method | n | ×2 ΔPSNR (dB) |"
    assert rows_md[1:3] == ["| edsr | 2 | **+1.25** |", "| udean_unpaired | 2 | -0.50 |"]
    assert "real_vol" not in md[:md.index(f"## {EXTERNAL}")]  # not in the main comparison
    udean = md[md.index("UDEAN paper tables"):]
    assert "vol ×2" in udean and "real_vol" not in udean  # Tables I/II only for the training protocol


# ------------------------------------------------------------------ the pipeline
TINY = {
    "seed": 3,
    "device": "cpu",
    "datasets": {
        "tiny_slices": {
            "kind": "slices", "reader": "brats", "reader_options": {"contrasts": ["t2"]},
            "raw": {"synth": {"kind": "multicontrast", "n_subjects": 4,
                              "params": {"flavour": "brain", "size": [48, 48], "slices": 2}}},
            "target": "t2",
            "degradation": {"mode": "lowpass_bicubic", "axes": [0, 1]},
            "scales": [2],
            "patches": {"hr_patch": [24, 24], "train_per_subject": 16, "val_per_subject": 4},
            "methods": ["bicubic", "edsr"],
        },
        "tiny_real": {
            "kind": "slices", "reader": "nifti",
            "reader_options": {"series": {"epi": "{subject}/*.nii*"}, "volume": 0},
            "raw": {"installed": DEFAULT["datasets"]["transfer_slices"]["raw"]["installed"]},
            "target": "epi",
            "train_from": "tiny_slices",
            "degradation": {"mode": "lowpass_bicubic", "axes": [0, 1]},
            "scales": [2],
            "methods": ["bicubic", "edsr"],
        },
        "tiny_volume": {
            "kind": "volume", "reader": "hcp",
            "raw": {"synth": {"kind": "volume", "n_subjects": 4, "params": {"shape": [36, 36, 36]}}},
            "target": "t1w", "prepare": {"crop_axes": [0, 1, 2]},
            "degradation": {"mode": "truncate", "axes": [0, 1, 2]},
            "scales": [2], "patches": {"hr_patch": [12, 12, 12], "train_per_subject": 4, "val_per_subject": 2},
            "methods": ["tricubic", "edsr"],
        },
        "tiny_real_volume": {
            "kind": "volume", "reader": "nifti",
            "reader_options": {"series": {"vol": "{subject}/*.nii*"}, "volume": 0},
            "raw": {"installed": DEFAULT["datasets"]["transfer_volume"]["raw"]["installed"]},
            "target": "vol", "prepare": {"crop_axes": [0, 1, 2]},
            "train_from": "tiny_volume",
            "degradation": {"mode": "truncate", "axes": [0, 1, 2]},
            "scales": [2], "methods": ["tricubic", "edsr"],
        },
    },
    "models": {"edsr": {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 8, "n_blocks": 1},
                        "train": {"steps": 4, "batch_size": 4, "val_every": 2, "ckpt_every": 2}}},
}


def _jobs(out: str) -> dict[str, int]:
    block = out.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M) if m.group(1) != "total"}


def test_dry_run_plans_the_transfer_jobs(tmp_path: Path) -> None:
    run = run_snakemake(tmp_path, TINY, "all", "-n", timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    jobs = _jobs(run.stdout)
    assert jobs["installed"] == 2 and jobs["train"] == 2  # nothing trains on the transfer sets
    assert "results/models/tiny_real" not in out and "results/tiny_real/patches" not in out
    for d, m in (("tiny_real", "edsr"), ("tiny_real_volume", "edsr"), ("tiny_real_volume", "tricubic")):
        assert f"results/eval/{d}/{m}/x2/metrics.csv" in out
    # the transfer evaluation reads the training dataset's model
    evaluate = [b for b in out.split("\n\n") if "results/eval/tiny_real/edsr/x2/metrics.csv" in b and "rule evaluate" in b]
    assert evaluate and "results/models/tiny_slices/edsr/x2/model.pt" in evaluate[0]


@pytest.mark.slow
def test_pipeline_scores_the_real_scans(tmp_path: Path) -> None:
    """A real run (about a minute of CPU): the scans are copied with their notices, and their rows reach
    summary.csv (n = 2 real subjects, so the std is defined) and the summary's transfer section."""
    run = run_snakemake(tmp_path, TINY, "all", cores=2, timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    raw = tmp_path / "resources/raw/tiny_real"
    assert "BSD" in (raw / "dipy_S0_10slices/NOTICE.md").read_text()
    assert "MIT" in (raw / "nibabel_example4d/NOTICE.md").read_text()
    summary = pd.read_csv(tmp_path / "results/tables/summary.csv")
    for d, methods in (("tiny_real", {"bicubic", "edsr"}), ("tiny_real_volume", {"tricubic", "edsr"})):
        rows = summary[(summary.dataset == d) & (summary.metric == "psnr")]
        assert set(rows.method) == methods and (rows.n == 2).all() and (rows["std"] > 0).all()
        assert rows["mean"].between(15, 60).all()
    prepared = yaml.safe_load((tmp_path / "results/tiny_real/prepared/dipy_S0_10slices/epi.json").read_text())
    assert prepared["shape"] == [120, 120, 10] and prepared["volume"] == {"index": 0, "of": 1}
    md = (tmp_path / "results/tables/summary.md").read_text()
    assert "## Transfer to real scans" in md and "tiny_real (sisr2d), models trained on tiny_slices" in md
