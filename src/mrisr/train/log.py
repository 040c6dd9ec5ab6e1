"""log.csv: step, loss, lr, val_psnr, elapsed_s (+ a kind's loss parts) — one row per log/val/checkpoint step.

Rows are appended and flushed as training goes (a killed run keeps its history). The rows
also travel in ckpt/last.pt (`history`): on resume the file is rewritten from the
checkpoint's rows — so it always describes the one run that produced the weights, and it
survives Snakemake deleting log.csv (a declared output) before it reruns a killed job.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mrisr.io import atomic_path

COLUMNS = ("step", "loss", "lr", "val_psnr", "elapsed_s")


def format_row(step: int, losses: dict[str, float] | None, lr: float, val_psnr: float | None,
               elapsed_s: float) -> dict[str, str]:
    """One row as the strings written (losses: the kind's loss columns, first "loss")."""
    row = {"step": str(step), "lr": f"{lr:.6g}", "val_psnr": "" if val_psnr is None else f"{val_psnr:.4f}",
           "elapsed_s": f"{elapsed_s:.2f}"}
    row.update({k: f"{v:.6g}" for k, v in (losses or {}).items()})
    return row


class TrainLog:
    """log.csv with the given loss columns; `rows` (from a checkpoint) are written first."""

    def __init__(self, path: Path, loss_columns: tuple[str, ...], rows: list[dict]) -> None:
        self.path = path
        self.columns = (*COLUMNS[:1], loss_columns[0], *COLUMNS[2:], *loss_columns[1:])
        self.rows = [{c: row.get(c, "") for c in self.columns} for row in rows]
        with atomic_path(path) as tmp:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.columns)
                writer.writeheader()
                writer.writerows(self.rows)
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)

    def write(self, row: dict[str, str]) -> None:
        row = {c: row.get(c, "") for c in self.columns}
        self.rows.append(row)
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TrainLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
