"""Watching a run: log.csv, progress lines for log files, the loss/PSNR curve PNG, TensorBoard.

* `TrainLog`: log.csv, one row per log/val/checkpoint step (step, loss, lr, val_psnr, elapsed_s
  and a kind's loss parts), appended and flushed as training goes. The rows also travel in
  ckpt/last.pt: on resume the file is rewritten from them, so it always describes the one run
  that produced the weights, even after Snakemake deleted it (a declared output).
* `ProgressLines`: when stderr is not a terminal (a Snakemake/Slurm log file, where tqdm's bar
  is off), one timestamped line per log row, at most every `every_s` seconds, with the ETA.
* `write_curves`: curves.png — training loss (log scale) and validation PSNR against step.
* `TensorBoard`: event files in <model folder>/tb/ when `train.tensorboard` is on; without the
  `tensorboard` package the run stops at start-up with one line saying so.
"""

from __future__ import annotations

import csv
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mrisr.io import atomic_path

COLUMNS = ("step", "loss", "lr", "val_psnr", "elapsed_s")


def format_row(step: int, losses: dict[str, float] | None, lr: float, val_psnr: float | None,
               elapsed_s: float) -> dict[str, str]:
    """One row as the strings written (losses: the kind's loss columns, first "loss")."""
    row = {"step": str(step), "lr": f"{lr:.6g}", "val_psnr": "" if val_psnr is None else f"{val_psnr:.4f}",
           "elapsed_s": f"{elapsed_s:.2f}"}
    return row | {k: f"{v:.6g}" for k, v in (losses or {}).items()}


class TrainLog:
    """log.csv with the given loss columns; `rows` (from a checkpoint) are written first."""

    def __init__(self, path: Path, loss_columns: tuple[str, ...], rows: list[dict]) -> None:
        self.columns = (*COLUMNS[:1], loss_columns[0], *COLUMNS[2:], *loss_columns[1:])
        self.rows = [{c: row.get(c, "") for c in self.columns} for row in rows]
        with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)

    def write(self, row: dict[str, str]) -> None:
        self.rows.append({c: row.get(c, "") for c in self.columns})
        self._writer.writerow(self.rows[-1])
        self._file.flush()

    def __enter__(self) -> "TrainLog":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def format_duration(seconds: float) -> str:
    return str(timedelta(seconds=round(max(seconds, 0.0))))  # h:mm:ss


class ProgressLines:
    """Timestamped progress lines with ETA, for non-terminal stderr."""

    def __init__(self, label: str, total: int, start_step: int, enabled: bool, every_s: float = 10.0) -> None:
        self.label, self.total, self.enabled, self.every_s = label, total, enabled, every_s
        self._t0, self._step0 = time.monotonic(), start_step
        self._last = -float("inf")

    def line(self, step: int, losses: dict[str, float], lr: float, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        rate = (step - self._step0) / max(now - self._t0, 1e-9)
        eta = format_duration((self.total - step) / rate) if rate > 0 else "?"
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (f"{stamp} [train] {self.label} step {step}/{self.total} ({100 * step / self.total:.0f}%) "
                f"loss {losses.get('loss', float('nan')):.4g} lr {lr:.3g} | {rate:.2f} steps/s, ETA {eta}")

    def maybe_print(self, step: int, losses: dict[str, float], lr: float) -> None:
        now = time.monotonic()
        if self.enabled and (now - self._last >= self.every_s or step == self.total):
            self._last = now
            print(self.line(step, losses, lr, now), file=sys.stderr, flush=True)


def write_curves(path: Path, rows: list[dict[str, str]], title: str, baseline: float | None = None) -> None:
    """Loss and validation-PSNR curves of the log rows, as one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
        return tuple(zip(*[(int(r["step"]), float(r[key])) for r in rows if r.get(key)])) or ((), ())

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(9, 3.4))
    steps, loss = series("loss")
    ax_loss.plot(steps, loss, lw=1)
    if loss and min(loss) > 0:
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    steps, val = series("val_psnr")
    ax_val.plot(steps, val, "o-", ms=3, label="model")
    if baseline is not None:
        ax_val.axhline(baseline, color="gray", ls="--", lw=1, label="cubic")
    ax_val.set(xlabel="step", ylabel="val PSNR (dB)", title="validation")
    ax_val.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


class TensorBoard:
    """Scalars of every log row; a no-op unless enabled."""

    def __init__(self, log_dir: Path, enabled: bool) -> None:
        self._writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("train.tensorboard is on but the `tensorboard` package is not installed "
                             "(pip install tensorboard, or set train.tensorboard: false)") from None
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def write(self, row: dict[str, str]) -> None:
        if self._writer is None:
            return
        step = int(row["step"])
        for k, v in row.items():
            if k != "step" and v not in (None, ""):
                self._writer.add_scalar(k, float(v), step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
