"""log.csv: step, loss, lr, val_psnr, elapsed_s — one row per log/val/checkpoint step.

Rows are appended and flushed as training goes (a killed run keeps its history). On
resume the rows after the checkpoint's step are dropped, so the file always describes
the one run that produced the weights.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mrisr.io import atomic_path

COLUMNS = ("step", "loss", "lr", "val_psnr", "elapsed_s")


def _kept_rows(path: Path, upto_step: int) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    kept = []
    for row in rows:
        try:
            if int(row["step"]) <= upto_step:
                kept.append({c: row.get(c, "") for c in COLUMNS})
        except (KeyError, TypeError, ValueError):
            continue  # a torn last line from a killed run
    return kept


class TrainLog:
    def __init__(self, path: Path, resume_step: int) -> None:
        """Start the log at `resume_step` (0 = fresh run: any old log is discarded)."""
        self.path = path
        rows = _kept_rows(path, resume_step) if resume_step > 0 else []
        with atomic_path(path) as tmp:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)

    def write(self, step: int, loss: float | None, lr: float, val_psnr: float | None, elapsed_s: float) -> None:
        self._writer.writerow({
            "step": step,
            "loss": "" if loss is None else f"{loss:.6g}",
            "lr": f"{lr:.6g}",
            "val_psnr": "" if val_psnr is None else f"{val_psnr:.4f}",
            "elapsed_s": f"{elapsed_s:.2f}",
        })
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TrainLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
