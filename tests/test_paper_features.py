"""Paper-config features (issue 12): step schedule for every trainer, flips-only augmentation,
init_from (weights from another trained model), split files, per-scale HR patches (lr_patch)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mrisr.cli import main
from mrisr.config_check import ConfigError, check_config
from mrisr.datasets.split import split_from_file
from mrisr.errors import InputError
from mrisr.models.io import init_source, read_model_record
from mrisr.patches.augment import augment_plan
from mrisr.train import gan
from mrisr.train.config import TrainConfig, fingerprint
from mrisr.train.engine import KINDS, Engine, train_model
from mrisr.train.supervised import make_scheduler
from test_train import blocky_pair, write_store

REPO = Path(__file__).resolve().parents[1]
TINY = {"trainer": "supervised", "arch": "edsr", "args": {"n_feats": 8, "n_blocks": 1}}


def tiny_cfg(**train_kw) -> dict:
    t = {"steps": 4, "batch_size": 4, "lr": 1e-3, "val_every": 4, "ckpt_every": 4, "log_every": 2}
    return {**TINY, "train": {**t, **train_kw}}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("stores")
    rng = np.random.default_rng(0)
    return (write_store(d / "train.h5", *blocky_pair(rng, 32, lr_size=8)),
            write_store(d / "val.h5", *blocky_pair(rng, 8, lr_size=8), config_hash="h-val"))


# ---------------------------------------------------------------------------- step schedule
def lrs_over(cfg: TrainConfig, n: int) -> list[float]:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_step_schedule_halves_every_lr_decay_every_steps() -> None:
    cfg = TrainConfig.from_dict({"steps": 10, "batch_size": 2, "lr": 1.0, "scheduler": "step", "lr_decay": 0.5,
                                 "lr_decay_every": 3})
    assert lrs_over(cfg, 10) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    # lr_decay_every unset: six decays over the run, as the GAN default
    cfg = TrainConfig.from_dict({"steps": 12, "batch_size": 2, "lr": 1.0, "scheduler": "step", "lr_decay": 0.5})
    assert cfg.decay_every() == 2 and lrs_over(cfg, 3) == [1, 1, 0.5]


def test_step_schedule_is_the_one_the_gan_uses() -> None:
    assert gan.make_scheduler is make_scheduler
    cfg = gan.GanConfig.from_dict({"steps": 12, "batch_size": 2})  # GAN defaults: × 0.8 every steps/6
    assert lrs_over(cfg, 5) == pytest.approx([1e-4, 1e-4, 0.8e-4, 0.8e-4, 0.64e-4])


@pytest.mark.parametrize("train, problem", [
    ({"scheduler": "step"}, "lr_decay must lie in"),
    ({"scheduler": "step", "lr_decay": 1.5}, "lr_decay must lie in"),
    ({"scheduler": "cosine", "lr_decay": 0.5}, "need scheduler: step"),
    ({"scheduler": "none", "lr_decay_every": 10}, "need scheduler: step"),
    ({"augment": "rotations"}, "train.augment must be one of"),
])
def test_bad_schedule_and_augment_settings(train: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        TrainConfig.from_dict({"steps": 10, "batch_size": 2, "lr": 1e-3, **train})


def test_unset_new_keys_keep_the_old_fingerprint() -> None:
    """Checkpoints of configs that use none of the new keys stay resumable."""
    cfg = TrainConfig.from_dict({"steps": 10, "batch_size": 2, "lr": 1e-3})
    assert "lr_decay" not in cfg.run_identity() and "lr_decay_every" not in cfg.run_identity()
    step = TrainConfig.from_dict({"steps": 10, "batch_size": 2, "lr": 1e-3, "scheduler": "step", "lr_decay": 0.5})
    assert fingerprint("edsr", {}, cfg, 0, "a", "b") != fingerprint("edsr", {}, step, 0, "a", "b")
    assert step.run_identity()["lr_decay"] == 0.5


def test_supervised_step_schedule_in_training(stores, tmp_path: Path) -> None:
    train_h5, val_h5 = stores
    cfg = tiny_cfg(steps=6, log_every=1, scheduler="step", lr_decay=0.5, lr_decay_every=2)
    train_model(cfg, train_h5, val_h5, tmp_path / "m", seed=0, device="cpu")
    lines = (tmp_path / "m" / "log.csv").read_text().splitlines()
    header = lines[0].split(",")
    lrs = [float(r.split(",")[header.index("lr")]) for r in lines[1:]]
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])  # lr used at steps 1..6
    assert "scheduler step (× 0.5 every 2 steps)" in (tmp_path / "m" / "card.md").read_text()


# ---------------------------------------------------------------------------- epochs
def test_epochs_resolve_to_steps_from_the_store_and_share_the_steps_fingerprint(stores, tmp_path: Path) -> None:
    """train.epochs: steps = ceil(epochs × train patches / batch_size) (32 patches, batch 4, 1.5 epochs
    = 12 steps); the card says which key gave the budget; a checkpoint of the same resolved steps
    resumes (the fingerprint holds steps, not the key that gave them)."""
    train_h5, val_h5 = stores
    epochs = {**TINY, "train": {k: v for k, v in tiny_cfg()["train"].items() if k != "steps"} | {"epochs": 1.5}}
    train_model(epochs, train_h5, val_h5, tmp_path / "e", seed=0, device="cpu")
    assert torch.load(tmp_path / "e" / "ckpt" / "last.pt", weights_only=True)["step"] == 12
    assert "| steps × batch | 12 × 4 (given as `train.epochs: 1.5`) |" in (tmp_path / "e" / "card.md").read_text()
    train_model(tiny_cfg(steps=12), train_h5, val_h5, tmp_path / "e", seed=0, device="cpu")
    assert not (tmp_path / "e" / "ckpt" / "stale").exists()  # resumed at its end, not retrained
    assert "(given as `train.steps`)" in (tmp_path / "e" / "card.md").read_text()
    with pytest.raises(ValueError, match="train.steps and train.epochs are both given"):
        TrainConfig.from_dict({"steps": 10, "epochs": 2, "batch_size": 2, "lr": 1e-3})
    with pytest.raises(ValueError, match="train.epochs must be > 0"):
        TrainConfig.from_dict({"epochs": 0, "batch_size": 2, "lr": 1e-3})


# ---------------------------------------------------------------------------- flips only
def test_flips_only_augmentation_never_transposes() -> None:
    full = augment_plan(0, 3, 64, [16, 16], [8, 8], "center")
    flips = augment_plan(0, 3, 64, [16, 16], [8, 8], "center", transposes=False)
    assert any(a.perm != (0, 1) for a in full)  # the default draws transposes
    assert all(a.perm == (0, 1) for a in flips)
    assert {a.flips for a in flips} == {(), (0,), (1,), (0, 1)}  # both flips still drawn, independently


# ---------------------------------------------------------------------------- init_from
@pytest.fixture(scope="module")
def source_model(stores, tmp_path_factory) -> Path:
    train_h5, val_h5 = stores
    out = tmp_path_factory.mktemp("source") / "m"
    return train_model(tiny_cfg(), train_h5, val_h5, out, seed=1, device="cpu")


def test_init_from_loads_the_source_weights_before_step_0(stores, source_model: Path, tmp_path: Path) -> None:
    train_h5, val_h5 = stores
    task = KINDS["supervised"](tiny_cfg(), train_h5, val_h5, 7, torch.device("cpu"))
    src = read_model_record(source_model)["state_dict"]
    assert any(not torch.equal(v, src[k]) for k, v in task.model.state_dict().items())  # a different seeded init
    Engine(task, tmp_path / "t", init_source(source_model)).apply_init()
    for k, v in task.model.state_dict().items():
        assert torch.equal(v, src[k]), k


def test_init_from_in_a_run_fingerprint_and_card(stores, source_model: Path, tmp_path: Path) -> None:
    train_h5, val_h5 = stores
    train_model(tiny_cfg(), train_h5, val_h5, tmp_path / "a", seed=7, device="cpu", init_from=source_model)
    card = (tmp_path / "a" / "card.md").read_text()
    digest = init_source(source_model).sha256
    assert f"`{source_model}` (sha256 {digest})" in card
    ckpt = torch.load(tmp_path / "a" / "ckpt" / "last.pt", weights_only=True)
    assert json.loads(ckpt["fingerprint"])["init_from"] == {"path": str(source_model), "sha256": digest}
    # The same run from scratch trains other weights (the init matters), and has no init in its fingerprint.
    train_model(tiny_cfg(), train_h5, val_h5, tmp_path / "b", seed=7, device="cpu")
    a = read_model_record(tmp_path / "a" / "model.pt")["state_dict"]
    b = read_model_record(tmp_path / "b" / "model.pt")["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert "init_from" not in json.loads(torch.load(tmp_path / "b" / "ckpt" / "last.pt", weights_only=True)["fingerprint"])


def test_init_from_is_not_applied_on_resume(stores, source_model: Path, tmp_path: Path) -> None:
    train_h5, val_h5 = stores
    out = tmp_path / "r"
    train_model(tiny_cfg(), train_h5, val_h5, out, seed=7, device="cpu", init_from=source_model)
    first = read_model_record(out / "model.pt")["state_dict"]
    calls = []
    task = KINDS["supervised"](tiny_cfg(), train_h5, val_h5, 7, torch.device("cpu"))
    from mrisr.train.config import with_init

    init = init_source(source_model)
    task.fingerprint = with_init(task.fingerprint, str(init.path), init.sha256)
    engine = Engine(task, out, init)
    engine.apply_init = lambda: calls.append(1)  # would be called only for a fresh start
    engine.run()
    assert calls == []
    again = read_model_record(out / "model.pt")["state_dict"]
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_init_from_shape_mismatch_is_one_line_naming_the_file(stores, source_model: Path, tmp_path: Path) -> None:
    train_h5, val_h5 = stores
    wider = {**tiny_cfg(), "args": {"n_feats": 16, "n_blocks": 1}}
    with pytest.raises(InputError, match=re.escape(str(source_model)) + ".*init_from weights do not fit.*shapes differ"):
        train_model(wider, train_h5, val_h5, tmp_path / "w", seed=0, device="cpu", init_from=source_model)
    with pytest.raises(InputError, match=r"missing\.pt: init_from model file not found"):
        train_model(tiny_cfg(), train_h5, val_h5, tmp_path / "x", seed=0, device="cpu",
                    init_from=tmp_path / "missing.pt")


def test_gan_init_from_keeps_this_datasets_normalisation(tmp_path: Path) -> None:
    """Meta-SRGAN pretraining: every generator weight from the source, except the training-set
    mean/std buffers, which stay this store's (the paper normalises by its training set)."""
    import engine_golden

    src_train = engine_golden.hr_store(tmp_path / "st.h5", 8, 16, "s")
    src_val = engine_golden.hr_store(tmp_path / "sv.h5", 2, 16, "v")
    cfg = engine_golden.CASES["meta_srgan"]
    source = train_model(cfg, src_train, src_val, tmp_path / "src", seed=1, device="cpu")
    # another data set: brighter images, so another mean/std
    own = tmp_path / "own.h5"
    hr = (0.9 - 0.2 * np.random.default_rng(3).random((8, 16, 16))).astype(np.float32)
    engine_golden._write(own, {"hr": hr}, {"task": "sisr2d", "config_hash": "o"})
    task = KINDS["adversarial"](cfg, own, src_val, 2, torch.device("cpu"))
    norm_before = (task.model.norm_mean.clone(), task.model.norm_std.clone())
    Engine(task, tmp_path / "t", init_source(source)).apply_init()
    src = read_model_record(source)["state_dict"]
    for k, v in task.model.state_dict().items():
        if k in ("norm_mean", "norm_std"):
            assert not torch.equal(v, src[k]), k
        else:
            assert torch.equal(v, src[k]), k
    assert torch.equal(task.model.norm_mean, norm_before[0]) and torch.equal(task.model.norm_std, norm_before[1])


# ---------------------------------------------------------------------------- split file
def test_split_file_gives_exactly_the_listed_subjects(tmp_path: Path) -> None:
    f = tmp_path / "split.yaml"
    f.write_text(yaml.safe_dump({"train": ["s1", "s2", "s3"], "val": ["s4"], "test": ["s6", "s5"]}))
    split = split_from_file(["s1", "s2", "s3", "s4", "s5", "s6", "s7"], f)
    assert (split["train"], split["val"], split["test"]) == (["s1", "s2", "s3"], ["s4"], ["s5", "s6"])
    assert split["n_unlisted"] == 1  # s7 is left out
    # Through the CLI the split rule runs: split.json holds exactly the lists.
    inv, out = tmp_path / "inventory.json", tmp_path / "split.json"
    inv.write_text(json.dumps({"subjects": [f"s{i}" for i in range(1, 8)]}))
    assert main(["split", "--inventory", str(inv), "--subjects-file", str(f), "--dataset", "d", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert {k: got[k] for k in ("train", "val", "test")} == {k: split[k] for k in ("train", "val", "test")}


@pytest.mark.parametrize("content, problem", [
    ({"train": ["s1", "nobody"], "val": ["s2"], "test": ["s3"]}, r"1 listed subjects are not in the dataset's inventory: \['nobody'\]"),
    ({"train": ["s1"], "val": ["s1"], "test": ["s3"]}, "subject 's1' is listed in both train and val"),
    ({"train": ["s1"], "test": ["s3"]}, "a split file maps exactly train, val, test"),
])
def test_split_file_errors_name_the_file(tmp_path: Path, content: dict, problem: str) -> None:
    f = tmp_path / "list.yaml"
    f.write_text(yaml.safe_dump(content))
    with pytest.raises(InputError, match=r"list\.yaml: " + problem):
        split_from_file(["s1", "s2", "s3"], f)
    with pytest.raises(InputError, match=r"absent\.yaml: split file not found"):
        split_from_file(["s1"], tmp_path / "absent.yaml")


# ---------------------------------------------------------------------------- config checks
def base() -> dict:
    return {"datasets": {
        "a": {"kind": "cine", "reader": "acdc", "raw": {"synth": {"kind": "cine", "n_subjects": 4}},
              "target": "cine", "scales": [2, 3], "methods": ["edsr", "pre"], "patches": {"lr_patch": [8, 8]}},
        "b": {"kind": "cine", "reader": "acdc", "raw": {"synth": {"kind": "cine", "n_subjects": 4}},
              "target": "cine", "scales": [2, 3], "methods": ["edsr"]}},
        "models": {"edsr": {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 8, "n_blocks": 1}},
                   "pre": {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 8, "n_blocks": 1},
                           "init_from": {"dataset": "b", "method": "edsr"}}}}


def test_config_check_accepts_the_new_keys() -> None:
    cfg = base()
    check_config(cfg)  # lr_patch [8, 8] at ×3 is fine (HR 24), where hr_patch [16, 16] would not be
    cfg["datasets"]["b"]["train_only"] = True  # a pretraining set for a's `pre`
    check_config(cfg)


@pytest.mark.parametrize("edit, key, problem", [
    (lambda c: c["datasets"]["a"]["patches"].update(hr_patch=[24, 24]), "datasets.a.patches.lr_patch", "not both"),
    (lambda c: c["datasets"]["a"]["patches"].update(lr_patch=[8, 8, 8]), "datasets.a.patches.lr_patch",
     "one size per degraded axis"),
    (lambda c: c["models"]["pre"]["init_from"].update(dataset="nowhere"), "models.pre.init_from", "not a dataset"),
    (lambda c: c["models"]["pre"]["init_from"].update(method="pre"), "models.pre.init_from", "does not train method"),
    (lambda c: c["models"]["pre"]["init_from"].update(scale=4), "models.pre.init_from", "not trained at scale 4"),
    (lambda c: c["models"]["pre"].update(arch="rcan3d", args={}), "models.pre.init_from", "weights cannot carry over"),
    (lambda c: c["datasets"]["a"].update(split={"file": "/nonexistent/list.yaml"}), "datasets.a.split.file",
     "split file not found: /nonexistent/list.yaml"),
    (lambda c: c["models"]["edsr"].update(train={"steps": 10, "epochs": 2}), "models.edsr.train.epochs",
     "give train.steps or train.epochs, not both"),
    (lambda c: c["datasets"]["b"].update(train_only=True, methods=["bicubic", "edsr"]), "datasets.b.methods[0]",
     "'bicubic' is an interpolation: a train-only dataset would neither train nor evaluate it"),
    (lambda c: c["datasets"].update(c={**c["datasets"]["b"], "train_only": True, "train_from": "b"}),
     "datasets.c.train_only", "an external test set .train_from. only evaluates them: not both"),
    (lambda c: [d.update(train_only=True) for d in c["datasets"].values()], "datasets",
     "every dataset is train_only: nothing would be evaluated"),
])
def test_config_check_errors_name_the_key(edit, key: str, problem: str) -> None:
    cfg = base()
    edit(cfg)
    with pytest.raises(ConfigError, match=re.escape(key) + ".*" + problem):
        check_config(cfg)


# ---------------------------------------------------------------------------- workflow
def test_workflow_plans_init_dependency_split_file_and_per_scale_patches(tmp_path: Path) -> None:
    """Dry run: the init_from model trains first and is passed to the train job; the split job
    reads the split file; each scale's stores get HR = lr_patch × scale."""
    from mrisr.datasets import write_synth

    cfg = base()
    raw = tmp_path / "raw"
    write_synth("cine", raw, 4, 1, {"size": [24, 24], "slices": 2, "frames": 6})
    work = tmp_path / "work"
    for name, d in cfg["datasets"].items():
        d["raw"] = {"dir": str(raw)}
        assert main(["inventory", "--reader", "acdc", "--raw", str(raw),
                     "--out", str(work / "results" / name / "inventory.json")]) == 0
    subjects = json.loads((work / "results/a/inventory.json").read_text())["subjects"]
    split_file = tmp_path / "list.yaml"
    split_file.write_text(yaml.safe_dump({"train": subjects[:2], "val": subjects[2:3], "test": subjects[3:]}))
    cfg["datasets"]["a"]["split"] = {"file": str(split_file)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "1",
                           "--directory", str(work), "-n", "-p", "results/models/a/pre/x3/model.pt",
                           "results/models/a/edsr/x2/model.pt", "--configfile", str(tmp_path / "config.yaml")],
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "output: results/models/b/edsr/x3/model.pt" in out  # the source is trained first
    assert "--init-from results/models/b/edsr/x3/model.pt" in out
    assert out.count("--init-from") == 1  # only the model with init_from
    assert f"mrisr split --inventory results/a/inventory.json --subjects-file {split_file}" in out
    assert "mrisr split --inventory results/b/inventory.json --ratios 0.7 0.1 0.2" in out
    # a: HR = 8·s per scale; b (no patch keys): the default 48×48 at every scale
    assert re.search(r"--lr-dir \S+/a/lr/\S+ --scale 2 --hr-patch 16 16 ", out)
    assert re.search(r"--lr-dir \S+/a/lr/\S+ --scale 3 --hr-patch 24 24 ", out)
    assert re.search(r"--lr-dir \S+/b/lr/\S+ --scale 3 --hr-patch 48 48 ", out)


@pytest.mark.slow
def test_pipeline_runs_init_from_split_file_and_lr_patch(tmp_path: Path) -> None:
    """A real run: dataset a (lr_patch, split file) trains `pre` from dataset b's trained edsr."""
    from snakemake_runner import run_snakemake

    from mrisr.patches.dataset import store_attrs

    synth = {"synth": {"kind": "cine", "n_subjects": 4, "params": {"size": [24, 24], "slices": 1, "frames": 2}}}
    split_file = tmp_path / "list.yaml"
    split_file.write_text(yaml.safe_dump({"train": ["patient001", "patient002"], "val": ["patient003"], "test": []}))
    train = {"steps": 2, "batch_size": 2, "val_every": 2, "ckpt_every": 2, "log_every": 1}
    edsr = {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 4, "n_blocks": 1}, "train": train}
    common = {"kind": "cine", "reader": "acdc", "raw": synth, "target": "cine", "scales": [2], "methods": ["edsr"]}
    cfg = {"seed": 1, "device": "cpu", "datasets": {
        "a": {**common, "methods": ["pre"], "split": {"file": str(split_file)},
              "patches": {"lr_patch": [4, 4], "train_per_subject": 2, "val_per_subject": 2}},
        "b": {**common, "patches": {"hr_patch": [12, 12], "train_per_subject": 2, "val_per_subject": 2}}},
        "models": {"edsr": edsr, "pre": {**edsr, "init_from": {"dataset": "b", "method": "edsr"}}}}
    proc = run_snakemake(tmp_path, cfg, "results/models/a/pre/x2/model.pt", timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    split = json.loads((tmp_path / "results/a/split.json").read_text())
    assert (split["train"], split["val"], split["test"]) == (["patient001", "patient002"], ["patient003"], [])
    attrs = store_attrs(tmp_path / "results/a/patches/sisr2d-x2_train.h5")
    assert attrs["hr_patch"] == [8, 8] and attrs["lr_patch"] == [4, 4]
    assert attrs["subjects"] == ["patient001", "patient002"]  # exactly the listed train subjects
    source = tmp_path / "results/models/b/edsr/x2/model.pt"
    assert source.is_file()
    assert f"model.pt` (sha256 {init_source(source).sha256})" in (tmp_path / "results/models/a/pre/x2/card.md").read_text()
