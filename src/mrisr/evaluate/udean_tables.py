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

TABLE_I = ("tricubic", "ts_rcan_misaligned", "ts_rcan_registered", "ts_rcan_shift", "udean_misaligned")
TABLE_II = ("tricubic", "ts_rcan_shift", "udean_unpaired")
TABLES = (("Table I — misaligned HR/LR", TABLE_I), ("Table II — unpaired HR/LR", TABLE_II))
METRICS = (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4))


def udean_table(df: pd.DataFrame, methods: tuple[str, ...]) -> list[str]:
    """Markdown rows of one table for one dataset × scale slice of summary.csv; best in bold."""
    cells = {(r.method, r.metric): (float(r.mean), float(r.std)) for r in df.itertuples()}
    present = [m for m in methods if any((m, k) in cells for k, _, _ in METRICS)]
    best = {k: max((cells[(m, k)][0] for m in present if (m, k) in cells), default=None) for k, _, _ in METRICS}
    lines = ["| method | " + " | ".join(label for _, label, _ in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for m in present:
        row = []
        for k, _, d in METRICS:
            if (m, k) not in cells:
                row.append("–")
                continue
            mean, std = cells[(m, k)]
            text = f"{mean:.{d}f} ± {std:.{d}f}"
            row.append(f"**{text}**" if mean == best[k] else text)
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return lines


def udean_markdown(df: pd.DataFrame) -> list[str]:
    """Markdown lines of Tables I and II for every dataset × scale with a UDEAN row (else none)."""
    parts: list[str] = []
    for (dataset, scale), sub in df.groupby(["dataset", "scale"], sort=False):
        for title, methods in TABLES:
            if methods[-1] not in set(sub["method"]):
                continue
            n = int(sub[sub["method"] == methods[-1]]["n"].iloc[0])
            parts += [f"## UDEAN {title}: {dataset} ×{scale} (3D, n = {n} test subjects)", ""]
            parts += udean_table(sub, methods) + [""]
    return parts
