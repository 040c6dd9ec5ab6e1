"""mrisr.train.engine: the registry of training kinds against the config schema, observability."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

import engine_golden
from mrisr.train import KINDS, train
from mrisr.train.observe import ProgressLines, format_duration

REPO = Path(__file__).resolve().parents[1]


def model_schema() -> dict:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text(encoding="utf-8"))
    return schema["$defs"]["model"]


def test_schema_trainer_enum_is_the_engines_registry():
    model = model_schema()
    assert set(model["properties"]["trainer"]["enum"]) == set(KINDS) == {"supervised", "adversarial", "udean"}
    assert "trainer" in model["required"]


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_model_names_a_registered_trainer(path):
    """Architecture and kind agree (what the old arch-name dispatch did implicitly)."""
    expected = {"edsr": "supervised", "minet": "supervised", "phase_vsr": "supervised", "rcan3d": "supervised",
                "meta_srgan": "adversarial", "srgan": "adversarial", "udean": "udean"}
    models = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models") or {}
    for name, m in models.items():
        assert m.get("trainer") == expected[m["arch"]], (path.name, name)


def test_missing_trainer_is_one_clear_error(tmp_path):
    cfg = {k: v for k, v in engine_golden.CASES["edsr"].items() if k != "trainer"}
    with pytest.raises(ValueError, match=r"needs `trainer:` one of \['adversarial', 'supervised', 'udean'\]"):
        train(cfg, tmp_path / "t.h5", tmp_path / "v.h5", tmp_path / "out", 0, "cpu")


def test_tensorboard_without_the_package_fails_at_start_up(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name == "tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    cfg = engine_golden.CASES["edsr"]
    cfg = {**cfg, "train": {**cfg["train"], "tensorboard": True}}
    with pytest.raises(ValueError, match="train.tensorboard is on but the `tensorboard` package is not installed"):
        train(cfg, *engine_golden.stores_for("edsr", tmp_path), tmp_path / "out", 0, "cpu")
    assert not (tmp_path / "out" / "log.csv").exists()  # nothing started


def test_progress_lines_have_a_timestamp_and_an_eta():
    lines = ProgressLines("edsr", total=100, start_step=20, enabled=True)
    text = lines.line(30, {"loss": 0.125}, 1e-3, now=lines._t0 + 5.0)  # 10 steps in 5 s → 70 left: 35 s
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[train\] edsr step 30/100 \(30%\) loss 0\.125 lr 0\.001 "
                    r"\| 2\.00 steps/s, ETA 0:00:35$", text), text
    assert format_duration(3725) == "1:02:05"


def test_a_run_logged_to_a_file_prints_progress_lines_and_draws_curves(tmp_path, capsys):
    cfg = engine_golden.CASES["meta_srgan"]
    train(cfg, *engine_golden.stores_for("meta_srgan", tmp_path), tmp_path / "out", 0, "cpu")
    err = capsys.readouterr().err
    assert re.search(r"Z \[train\] meta_srgan step 3/3 \(100%\) loss [0-9.e-]+ lr .* ETA 0:00:00", err), err
    assert (tmp_path / "out" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    with (tmp_path / "out" / "log.csv").open(newline="") as f:
        header = next(csv.reader(f))
    assert header == ["step", "loss", "lr", "val_psnr", "elapsed_s", "loss_l1", "loss_adv", "loss_perc", "loss_d"]
