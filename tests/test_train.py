"""mrisr.train and mrisr.patches (dataset, sampler, augment): deterministic batches, resume, signals, learning."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import mrisr
from mrisr.errors import InputError
from mrisr.grid import Grid, cubic_upsample
from mrisr.models import load_model
from mrisr.patches.augment import allowed_moves, augment_batch, augment_plan
from mrisr.patches.dataset import PatchDataset, store_attrs
from mrisr.patches.sampler import StepBatchSampler, batch_indices
import engine_golden
from mrisr.train import KINDS, train
from mrisr.train.checkpoint import fingerprint_name
from mrisr.train.config import TrainConfig

SRC = Path(mrisr.__file__).resolve().parents[1]
TINY = {"trainer": "supervised", "arch": "edsr", "args": {"n_feats": 8, "n_blocks": 1}}


# ---------------------------------------------------------------------------- stores
def write_store(path: Path, lr: np.ndarray, hr: np.ndarray, convention: str = "center",
                ref: np.ndarray | None = None, config_hash: str = "h-train") -> Path:
    """A patch store following the contract in docs/architecture.md."""
    scale = hr.shape[-1] // lr.shape[-1]
    arrays = {"hr": hr, "lr": lr, "subject": np.arange(len(hr), dtype=np.int32) % 3}
    if ref is not None:
        arrays["ref"] = ref
    attrs = {"task": "sr", "scale": float(scale), "dims": lr.ndim - 1,
             "axes": json.dumps(list(range(lr.ndim - 1))), "hr_patch": json.dumps(list(hr.shape[1:])),
             "lr_patch": json.dumps(list(lr.shape[1:])), "grid_convention": convention,
             "config_hash": config_hash, "seed": 0, "code_version": "test",
             "subjects": json.dumps(["a", "b", "c"])}
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            v = np.asarray(v, dtype=np.int32 if k == "subject" else np.float32)
            f.create_dataset(k, data=v, chunks=(1, *v.shape[1:]) if v.ndim > 1 else None, track_times=False)
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def blocky_pair(rng: np.random.Generator, n: int, lr_size: int = 12, scale: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """HR made of scale×scale constant blocks, LR = the block values (= area downsampling).

    Under the centre convention the ideal SR is nearest-neighbour upsampling, a linear
    map a small network learns in tens of steps, while cubic interpolation blurs every
    block edge: an easy problem with a large, known gap to the baseline.
    """
    lr = rng.uniform(0, 1, (n, lr_size, lr_size)).astype(np.float32)
    return lr, np.kron(lr, np.ones((1, scale, scale), np.float32))


@pytest.fixture(scope="module")
def blocky_stores(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("stores")
    rng = np.random.default_rng(0)
    train_h5 = write_store(d / "train.h5", *blocky_pair(rng, 256))
    val_h5 = write_store(d / "val.h5", *blocky_pair(rng, 64), config_hash="h-val")
    return train_h5, val_h5


def tiny_cfg(**train_kw) -> dict:
    t = {"steps": 32, "batch_size": 8, "lr": 2e-3, "val_every": 8, "ckpt_every": 8, "log_every": 4}
    return {**TINY, "train": {**t, **train_kw}}


def read_log(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- dataset
def test_patch_dataset_items_and_lazy_handle(tmp_path):
    rng = np.random.default_rng(1)
    lr, hr = blocky_pair(rng, 5, lr_size=4)
    ref = rng.random(hr.shape).astype(np.float32)
    path = write_store(tmp_path / "s.h5", lr, hr, ref=ref)
    ds = PatchDataset(path, keys=("lr", "ref", "hr"))
    assert ds._file is None  # nothing held open by __init__ (workers open their own)
    assert len(ds) == 5
    item = ds[3]
    assert set(item) == {"lr", "ref", "hr"}
    assert item["lr"].shape == (1, 4, 4) and item["hr"].shape == (1, 8, 8) and item["lr"].dtype == torch.float32
    np.testing.assert_array_equal(item["ref"][0].numpy(), ref[3])
    np.testing.assert_array_equal(ds[-1]["hr"][0].numpy(), hr[4])
    with pytest.raises(IndexError):
        ds[5]
    clone = pickle.loads(pickle.dumps(ds))  # after use: the open handle is not shipped
    assert clone._file is None
    np.testing.assert_array_equal(clone[0]["lr"][0].numpy(), lr[0])


def test_patch_dataset_in_worker_processes(tmp_path):
    lr, hr = blocky_pair(np.random.default_rng(2), 12, lr_size=4)
    ds = PatchDataset(write_store(tmp_path / "s.h5", lr, hr))
    ds[0]  # the parent opens a handle before the workers fork: each must reopen
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    np.testing.assert_array_equal(torch.cat([b["hr"] for b in batches])[:, 0].numpy(), hr)


def test_patch_dataset_errors_name_the_store(tmp_path):
    lr, hr = blocky_pair(np.random.default_rng(3), 2, lr_size=4)
    path = write_store(tmp_path / "s.h5", lr, hr)
    with pytest.raises(InputError, match=r"s\.h5: no dataset \['ref'\]"):
        PatchDataset(path, keys=("lr", "ref"))
    with pytest.raises(InputError, match="not found"):
        PatchDataset(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"junk\.h5: not a readable HDF5"):
        store_attrs(tmp_path / "junk.h5")


def test_store_attrs_decodes_json(tmp_path):
    lr, hr = blocky_pair(np.random.default_rng(4), 2, lr_size=4)
    attrs = store_attrs(write_store(tmp_path / "s.h5", lr, hr, convention="corner"))
    assert attrs["hr_patch"] == [8, 8] and attrs["lr_patch"] == [4, 4] and attrs["axes"] == [0, 1]
    assert attrs["subjects"] == ["a", "b", "c"] and attrs["grid_convention"] == "corner"
    assert attrs["scale"] == 2.0 and attrs["dims"] == 2 and attrs["config_hash"] == "h-train"
    assert isinstance(attrs["dims"], int) and isinstance(attrs["task"], str)


# ---------------------------------------------------------------------------- sampler
def test_batches_are_a_pure_function_of_seed_and_step():
    n, b = 10, 4
    stream = np.concatenate([batch_indices(7, k, n, b) for k in range(5)])  # 20 items = 2 epochs
    assert sorted(stream[:10]) == list(range(n)) and sorted(stream[10:]) == list(range(n))
    assert not np.array_equal(stream[:10], stream[10:])  # a fresh permutation per epoch
    assert batch_indices(7, 3, n, b) == batch_indices(7, 3, n, b)
    assert batch_indices(8, 0, n, b) != batch_indices(7, 0, n, b)
    resumed = list(StepBatchSampler(7, n, b, start=3, stop=5))
    assert resumed == [list(stream[12:16]), list(stream[16:20])]


def test_flips_keep_the_centre_grid_and_are_excluded_on_corner_degraded_axes():
    """A flip maps the centre grid x=(i+½)s−½ onto itself but shifts the corner grid
    x=i·s by s−1 HR pixels; transposes need equal sizes. Checked against the numpy baseline."""
    rng = np.random.default_rng(5)
    lr = rng.random((6, 6)).astype(np.float32)

    def cubic(x, convention):
        return cubic_upsample(x, Grid(convention, (0, 1), (12, 12), (6, 6)))

    for axis in (0, 1):
        center = cubic(lr, "center")
        np.testing.assert_allclose(np.flip(center, axis), cubic(np.flip(lr, axis), "center"), atol=1e-6)
        corner = cubic(lr, "corner")
        assert np.abs(np.flip(corner, axis) - cubic(np.flip(lr, axis), "corner")).max() > 1e-2
    np.testing.assert_allclose(cubic(lr, "corner").T, cubic(lr.T, "corner"), atol=1e-6)

    assert allowed_moves([12, 12], [6, 6], "corner") == ([[0, 1]], [])
    assert allowed_moves([12, 12], [6, 6], "center") == ([[0, 1]], [0, 1])
    assert allowed_moves([12, 8, 8], [6, 4, 8], "corner") == ([[0], [1], [2]], [2])
    assert allowed_moves([8, 8, 8], [4, 4, 4], "center") == ([[0, 1, 2]], [0, 1, 2])

    # The plan moves lr and hr together: hr = cubic(lr) holds after augmentation.
    batch = {"lr": torch.from_numpy(np.stack([lr] * 8))[:, None],
             "hr": torch.from_numpy(np.stack([cubic(lr, "center")] * 8))[:, None]}
    plan = augment_plan(0, 3, 8, [12, 12], [6, 6], "center")
    assert len({(a.perm, a.flips) for a in plan}) > 1
    batch["phase"] = torch.arange(8.0)[:, None]  # not an image: passes through
    out = augment_batch(batch, plan, ([12, 12], [6, 6]))
    assert torch.equal(out["phase"], batch["phase"])
    assert not torch.equal(out["hr"], batch["hr"])
    for x_lr, x_hr in zip(out["lr"][:, 0].numpy(), out["hr"][:, 0].numpy()):
        np.testing.assert_allclose(x_hr, cubic(x_lr, "center"), atol=1e-5)


# ---------------------------------------------------------------------------- training
def test_training_learns_and_beats_cubic(blocky_stores, tmp_path):
    train_h5, val_h5 = blocky_stores
    cfg = tiny_cfg(steps=64, val_every=16, ckpt_every=32, reference_steps=300000)
    cfg["args"] = {"n_feats": 16, "n_blocks": 2}
    model_path = train(cfg, train_h5, val_h5, tmp_path, seed=0, device="cpu")
    assert model_path == tmp_path / "model.pt"

    rows = read_log(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(4, 65, 4))
    losses = [float(r["loss"]) for r in rows]
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:2])

    # Independent check of the saved model against the numpy cubic baseline.
    with h5py.File(val_h5) as f:
        lr, hr = f["lr"][:], f["hr"][:]
    grid = Grid("center", (0, 1), hr.shape[1:], lr.shape[1:])
    mse_cubic = ((np.clip(np.stack([cubic_upsample(x, grid) for x in lr]), 0, 1) - hr) ** 2).mean(axis=(1, 2))
    model = load_model(model_path)
    with torch.no_grad():
        sr = model(torch.from_numpy(lr)[:, None])[:, 0].clamp(0, 1).numpy()
    psnr_model = np.mean(-10 * np.log10(((sr - hr) ** 2).mean(axis=(1, 2))))
    psnr_cubic = np.mean(-10 * np.log10(mse_cubic))
    assert psnr_model > psnr_cubic + 3.0

    record = torch.load(model_path, weights_only=True)
    best_rows = [r for r in rows if r["val_psnr"]]
    assert [int(r["step"]) for r in best_rows] == [16, 32, 48, 64]
    best = max(best_rows, key=lambda r: float(r["val_psnr"]))
    assert record["step"] == int(best["step"])
    assert record["val_psnr"] == pytest.approx(psnr_model, abs=1e-3)  # val PSNR = mean per-patch PSNR

    card = (tmp_path / "card.md").read_text()
    for needle in ("edsr", "h-train", "h-val", "reduced budget", f"{psnr_cubic:.2f} dB", "| scale | 2 |", ", L1 loss |"):
        assert needle in card
    for name in ("last.pt", "best.pt"):
        assert torch.load(tmp_path / "ckpt" / name, weights_only=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.md", "ckpt", "curves.png", "log.csv", "model.pt"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _state(path: Path) -> dict:
    return torch.load(path, weights_only=True)


# One resume test for every training kind: (tiny case of engine_golden, steps, step after which SIGTERM arrives).
RESUME_CASES = {"supervised": ("edsr", 12, 5), "adversarial": ("meta_srgan", 6, 3), "udean": ("udean", 6, 3)}


def kind_run(kind: str, tmp_path: Path):
    """(config, train store, val store) of the kind's tiny case, with the resume test's schedule."""
    case, steps, _ = RESUME_CASES[kind]
    cfg = engine_golden.CASES[case]
    cfg = {**cfg, "train": {**cfg["train"], "steps": steps, "val_every": 2, "ckpt_every": 4, "log_every": 1}}
    (tmp_path / "stores").mkdir()
    return (cfg, *engine_golden.stores_for(case, tmp_path / "stores"))


def test_resume_covers_every_kind():
    assert set(RESUME_CASES) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(RESUME_CASES))
def test_resume_after_sigterm_matches_uninterrupted_run(kind, tmp_path, monkeypatch):
    """Weights, every trained network (critics, UDEAN's degradation half), optimizer state and
    validation scores after kill + resume are those of an uninterrupted run, bit for bit."""
    cfg, train_h5, val_h5 = kind_run(kind, tmp_path)
    kill_at = RESUME_CASES[kind][2]
    full = train(cfg, train_h5, val_h5, tmp_path / "full", seed=3, device="cpu")

    # Interrupted run: a real SIGTERM to this process after optimizer step kill_at (between checkpoints).
    task_cls = KINDS[kind]
    original = task_cls.step
    calls = {"n": 0}

    def step_then_signal(self, batch, step):
        out = original(self, batch, step)
        calls["n"] += 1
        if calls["n"] == kill_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(task_cls, "step", step_then_signal)
    out = tmp_path / "resumed"
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop:
        train(cfg, train_h5, val_h5, out, seed=3, device="cpu")
    assert stop.value.code == 143
    assert _state(out / "ckpt" / "last.pt")["step"] == kill_at
    assert not (out / "model.pt").exists()
    assert signal.getsignal(signal.SIGTERM) is handler_before  # handlers restored after train()

    monkeypatch.setattr(task_cls, "step", original)
    resumed = train(cfg, train_h5, val_h5, out, seed=3, device="cpu")

    a, b = _state(full), _state(resumed)
    assert a["step"] == b["step"] and a["val_psnr"] == b["val_psnr"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    la, lb = _state(tmp_path / "full" / "ckpt" / "last.pt"), _state(out / "ckpt" / "last.pt")
    assert la["model"].keys() == lb["model"].keys()
    assert all(torch.equal(la["model"][k], lb["model"][k]) for k in la["model"])  # critics and E_D too
    assert la["optimizers"].keys() == lb["optimizers"].keys() == {"supervised": {"model"}}.get(kind, {"g", "d"})
    for name in la["optimizers"]:
        for pa, pb in zip(la["optimizers"][name]["state"].values(), lb["optimizers"][name]["state"].values()):
            assert torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])

    # The log describes one run: every step once (log_every 1), same validation scores.
    rows_a, rows_b = read_log(tmp_path / "full" / "log.csv"), read_log(out / "log.csv")
    assert [int(r["step"]) for r in rows_b] == list(range(1, cfg["train"]["steps"] + 1))
    val = lambda rows: [(r["step"], r["val_psnr"]) for r in rows if r["val_psnr"]]  # noqa: E731
    assert val(rows_a) == val(rows_b)


def test_log_csv_keeps_rows_before_the_resume_step_when_snakemake_deleted_it(blocky_stores, tmp_path, monkeypatch):
    """Issue 14: log.csv is a declared output, so Snakemake deletes it before rerunning a killed
    training job; the rows up to the checkpoint come back from ckpt/last.pt."""
    train_h5, val_h5 = blocky_stores
    cfg = tiny_cfg(steps=12, val_every=4, ckpt_every=4, log_every=1)
    full = tmp_path / "full"
    train(cfg, train_h5, val_h5, full, seed=0, device="cpu")
    original = KINDS["supervised"].step

    def step_then_signal(self, batch, step):
        out = original(self, batch, step)
        if step + 1 == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(KINDS["supervised"], "step", step_then_signal)
    with pytest.raises(SystemExit):
        train(cfg, train_h5, val_h5, tmp_path / "run", seed=0, device="cpu")
    monkeypatch.setattr(KINDS["supervised"], "step", original)
    (tmp_path / "run" / "log.csv").unlink()  # what Snakemake does to a failed job's outputs
    train(cfg, train_h5, val_h5, tmp_path / "run", seed=0, device="cpu")
    rows = read_log(tmp_path / "run" / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    no_time = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]  # noqa: E731
    assert no_time(rows) == no_time(read_log(full / "log.csv"))


def test_a_config_edit_retrains_from_scratch(blocky_stores, tmp_path):
    """Snakemake reruns train when the config changes: that must retrain, not resume the old run
    (nor stop on its checkpoint); the old checkpoint is kept under ckpt/stale/."""
    train_h5, val_h5 = blocky_stores
    train(tiny_cfg(steps=8), train_h5, val_h5, tmp_path / "run", seed=0, device="cpu")
    edited = torch.load(train(tiny_cfg(steps=8, lr=1e-3), train_h5, val_h5, tmp_path / "run", seed=0, device="cpu"),
                        weights_only=True)
    fresh = torch.load(train(tiny_cfg(steps=8, lr=1e-3), train_h5, val_h5, tmp_path / "fresh", seed=0, device="cpu"),
                       weights_only=True)
    assert all(torch.equal(v, edited["state_dict"][k]) for k, v in fresh["state_dict"].items())
    assert len(list((tmp_path / "run" / "ckpt" / "stale").glob("*.pt"))) == 2  # last.pt and best.pt, kept
    no_time = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]  # noqa: E731
    assert no_time(read_log(tmp_path / "run" / "log.csv")) == no_time(read_log(tmp_path / "fresh" / "log.csv"))


def test_a_second_config_edit_does_not_overwrite_the_stale_checkpoint(blocky_stores, tmp_path):
    """Issue 14: every stale checkpoint is kept, named by its run's fingerprint — a second edit
    (and going back to an earlier config) never overwrites one moved aside before."""
    train_h5, val_h5 = blocky_stores
    run, stale = tmp_path / "run", tmp_path / "run" / "ckpt" / "stale"
    firsts = []
    for lr in (1e-3, 2e-3, 1e-3, 3e-3):  # three edits; the third goes back to the first config
        train(tiny_cfg(steps=2, lr=lr), train_h5, val_h5, run, seed=0, device="cpu")
        firsts.append(_state(run / "ckpt" / "last.pt"))
    kept = sorted(p.name for p in stale.glob("*.pt") if not p.name.endswith(".best.pt"))
    assert len(kept) == 3 and len(list(stale.glob("*.best.pt"))) == 3
    # the first config's checkpoint twice (once as <fingerprint>-2.pt), the second's once
    name = fingerprint_name(firsts[0]["fingerprint"])
    assert f"{name}.pt" in kept and f"{name}-2.pt" in kept
    assert f"{fingerprint_name(firsts[1]['fingerprint'])}.pt" in kept
    for old, path in ((firsts[0], stale / f"{name}.pt"), (firsts[1], stale / f"{fingerprint_name(firsts[1]['fingerprint'])}.pt")):
        assert all(torch.equal(v, _state(path)["model"][k]) for k, v in old["model"].items())


def test_a_corrupt_checkpoint_still_fails_with_its_name(blocky_stores, tmp_path):
    train_h5, val_h5 = blocky_stores
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"last\.pt: unreadable checkpoint"):
        train(tiny_cfg(steps=8), train_h5, val_h5, tmp_path, seed=0, device="cpu")
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_sigterm_to_a_training_process_checkpoints_and_fails(blocky_stores, tmp_path, num_workers):
    """As Slurm/Snakemake do: SIGTERM to the whole process group (DataLoader workers included)."""
    train_h5, val_h5 = blocky_stores
    cfg = tiny_cfg(steps=100000, val_every=100000, ckpt_every=100000, log_every=1, num_workers=num_workers)
    script = ("import json, sys; from pathlib import Path; from mrisr.train import train; "
              "train(json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), seed=0, device='cpu')")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(cfg), str(train_h5), str(val_h5), str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        log = tmp_path / "log.csv"
        while not (log.is_file() and len(log.read_text().splitlines()) >= 3):  # header + 2 steps
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err.decode()
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert 2 <= last["step"] < 100000
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "card.md").exists()
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.startswith(".")]  # no temporaries


def test_num_workers_gives_the_same_weights(blocky_stores, tmp_path):
    train_h5, val_h5 = blocky_stores
    a = train(tiny_cfg(steps=6, val_every=6), train_h5, val_h5, tmp_path / "w0", seed=1, device="cpu")
    b = train(tiny_cfg(steps=6, val_every=6, num_workers=2), train_h5, val_h5, tmp_path / "w2", seed=1, device="cpu")
    sa, sb = _state(a)["state_dict"], _state(b)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_config_rejects_typos():
    with pytest.raises(ValueError, match=r"unknown train settings \['stpes'\]"):
        TrainConfig.from_dict({"stpes": 10, "batch_size": 2, "lr": 1e-3})
    with pytest.raises(ValueError, match="lack"):
        TrainConfig.from_dict({"batch_size": 2, "lr": 1e-3})
    with pytest.raises(ValueError, match="scheduler"):
        TrainConfig.from_dict({"steps": 1, "batch_size": 2, "lr": 1e-3, "scheduler": "step"})


def test_val_store_must_match_train_store(blocky_stores, tmp_path):
    train_h5, _ = blocky_stores
    lr, hr = blocky_pair(np.random.default_rng(6), 4)
    corner = write_store(tmp_path / "corner.h5", lr, hr, convention="corner")
    with pytest.raises(InputError, match=r"corner\.h5: attribute grid_convention='corner' differs"):
        train(tiny_cfg(steps=2), train_h5, corner, tmp_path / "out", seed=0, device="cpu")


def test_3d_corner_store_with_bf16_and_channels_last(tmp_path):
    """The opt-in fast paths and 3D volumes run end to end (CPU autocast supports bf16)."""
    rng = np.random.default_rng(7)
    lr = (0.25 + 0.5 * rng.random((6, 4, 4, 4))).astype(np.float32)  # no cubic overshoot past [0, 1]
    grid = Grid("corner", (0, 1, 2), (8, 8, 8), (4, 4, 4))
    hr = np.stack([cubic_upsample(x, grid) for x in lr])
    train_h5 = write_store(tmp_path / "t.h5", lr, hr, convention="corner")
    cfg = tiny_cfg(steps=3, batch_size=2, val_every=3, ckpt_every=3, bf16=True, channels_last=True)
    model = load_model(train(cfg, train_h5, train_h5, tmp_path / "out", seed=0, device="cpu"))
    assert model.cubic.convention == "corner" and model.cubic.dims == 3
    # hr is exactly the cubic upsample here: the card's baseline is at float32 precision
    card = (tmp_path / "out" / "card.md").read_text()
    baseline = float(card.split("| cubic baseline val PSNR | ")[1].split(" dB")[0])
    assert baseline > 90


def test_model_with_reference_input_and_own_loss_trains(tmp_path, monkeypatch):
    """`inputs` decides which store datasets are read; `loss` replaces L1 (MINet's pattern)."""
    from mrisr.models import registry
    from mrisr.models.common import CubicUpsample, SRModel

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    seen: dict[str, tuple] = {}

    @registry.register("test-ref")
    class RefNet(SRModel):
        inputs = ("lr", "ref")

        def __init__(self, *, scale, dims, grid_convention):
            super().__init__()
            self.up = CubicUpsample(scale, dims, grid_convention)
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, lr, ref):
            seen["shapes"] = (tuple(lr.shape), tuple(ref.shape))
            return self.up(lr) + self.w * ref

        def loss(self, output, batch):
            seen["loss_keys"] = tuple(sorted(batch))
            return ((output - batch["hr"]) ** 2).mean()

    rng = np.random.default_rng(8)
    lr, hr = blocky_pair(rng, 8, lr_size=4)
    path = write_store(tmp_path / "r.h5", lr, hr, ref=hr + 0.1)
    cfg = {"trainer": "supervised", "arch": "test-ref", "args": {}, "train": {"steps": 2, "batch_size": 4, "lr": 1e-2, "val_every": 2,
                                                       "ckpt_every": 2}}
    train(cfg, path, path, tmp_path / "out", seed=0, device="cpu")
    assert seen["shapes"] == ((4, 1, 4, 4), (4, 1, 8, 8))
    assert seen["loss_keys"] == ("hr", "lr", "ref")


def test_bf16_auto_uses_bf16_only_where_the_hardware_has_it(monkeypatch, tmp_path):
    """`bf16: auto` resolves from the CPU flags (AVX512-BF16/AMX) before the fingerprint: the card
    names the precision actually used, and a float32 run is not resumed as a bf16 one."""
    from mrisr.train import config as train_config
    from mrisr.train.config import cpu_has_native_bf16, resolve_bf16

    assert cpu_has_native_bf16("flags : fpu sse2 avx2 avx512f avx512_bf16 amx_tile")
    assert cpu_has_native_bf16("flags : fpu amx_bf16 amx_tile")
    assert not cpu_has_native_bf16("flags : fpu sse2 avx2 avx512f avx512_vnni")
    assert resolve_bf16(True, "cpu") is True and resolve_bf16(False, "cuda") is False
    assert resolve_bf16("auto", "mps") is False
    lr, hr = blocky_pair(np.random.default_rng(3), 4)
    store = write_store(tmp_path / "t.h5", lr, hr)
    for native, precision in ((False, "float32"), (True, "bf16 autocast")):
        monkeypatch.setattr(train_config, "cpu_has_native_bf16", lambda native=native: native)
        out = tmp_path / precision.replace(" ", "_")
        cfg = tiny_cfg(steps=2, batch_size=2, val_every=2, ckpt_every=2, bf16="auto")
        train(cfg, store, store, out, seed=0, device="cpu")
        assert f"| precision | {precision}" in (out / "card.md").read_text()
