"""The UDEAN paper's Tables I and II, from summary.csv (read back, never recomputed).

Table I — misaligned source HR (the target subjects moved): tricubic, the supervised RCAN-3D on
the misaligned pairs, on the pairs registered back, on simulated nearest-neighbour pairs, and
UDEAN. Table II — unpaired source HR (disjoint subjects): tricubic, the simulated-pairs RCAN
and UDEAN. Rows are methods, columns PSNR and SSIM (3D, mean ± sample std over test subjects);
one pair of tables per dataset × scale that evaluated a UDEAN variant. Methods a config does not
run are left out; the tables appear only when their UDEAN row exists.
"""

from __future__ import annotations

import pandas as pd

from mrisr.evaluate.table_format import Table, decimals, format_cell, n_text

TABLE_I = ("tricubic", "ts_rcan_misaligned", "ts_rcan_registered", "ts_rcan_shift", "udean_misaligned")
TABLE_II = ("tricubic", "ts_rcan_shift", "udean_unpaired")
TABLES = (("Table I — misaligned HR/LR", TABLE_I), ("Table II — unpaired HR/LR", TABLE_II))
METRICS = (("psnr", "PSNR (dB) ↑"), ("ssim", "SSIM ↑"))


def udean_table(df: pd.DataFrame, methods: tuple[str, ...], title: str) -> Table:
    """One table for one dataset × scale slice of summary.csv: method, n, PSNR, SSIM; best in bold."""
    cells = {(r.method, r.metric): (float(r.mean), float(r.std), int(r.n)) for r in df.itertuples()}
    present = [m for m in methods if any((m, k) in cells for k, _ in METRICS)]
    table = Table(title, ["method", "n"] + [label for _, label in METRICS])
    for m in present:
        hits = [cells.get((m, k)) for k, _ in METRICS]
        table.rows.append([m, n_text(h[2] for h in hits if h)]
                          + ["–" if h is None else format_cell(h[0], h[1], k, h[2]) for h, (k, _) in zip(hits, METRICS)])
    for j, (k, _) in enumerate(METRICS):
        table.mark_best(j + 2, [cells[(m, k)][0] if (m, k) in cells else None for m in present], False, decimals(k))
    return table


def udean_tables(df: pd.DataFrame) -> list[Table]:
    """Tables I and II for every dataset × scale with a UDEAN row (else none)."""
    out: list[Table] = []
    for (dataset, scale), sub in df.groupby(["dataset", "scale"], sort=False):
        for title, methods in TABLES:
            if methods[-1] not in set(sub["method"]):
                continue
            out.append(udean_table(sub, methods, f"UDEAN {title}: {dataset} ×{scale} (3D)"))
    return out

