"""The Snakemake HTML report of a tiny run holds every results table and plot inline.

One tiny config exercising every experiment family — a cine dataset (main comparison, an
ablation rung, inference-time sweeps, the cost table) and a slices dataset with an
arbitrary-scale model (scale sweep + its fixed-scale methods table) — runs once; then
`snakemake --report` must embed the HTML table renderings and the PNG plots as data URIs
(the report shows those inline; CSV/Markdown only as links). When chromium is on PATH the
report is also rendered headless with the summary tables opened, and the screenshot checked
(docs/architecture.md, "Checking the report in a browser").
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
from snakemake_runner import run_snakemake

from mrisr.evaluate.table_format import format_cell

DISC = {"n_feats": 4, "n_stages": 2, "fc": 8}
GAN_TRAIN = {"steps": 2, "batch_size": 4, "val_every": 2, "ckpt_every": 2, "scheduler": "step", "val_max_batches": 1}
PHASE_ARGS = {"n_feats": 4, "n_layers": 1, "n_warmup": 1, "fusion_n": 1, "omega": 1}
VSR_TRAIN = {"steps": 2, "batch_size": 2, "val_every": 1, "ckpt_every": 1, "clip_frames": 2}
CONFIG = {
    "seed": 3,
    "device": "cpu",
    "datasets": {
        "tiny_cine": {
            "kind": "cine", "reader": "acdc",
            "raw": {"synth": {"kind": "cine", "n_subjects": 3, "params": {"size": [24, 24], "slices": 2, "frames": 6}}},
            "target": "cine",
            "degradation": {"mode": "lowpass_bicubic", "axes": [0, 1]},
            "scales": [2],
            "patches": {"hr_patch": [12, 12], "train_per_subject": 5, "val_per_subject": 2},
            "methods": ["bicubic", "phase_vsr", {"name": "phase_vsr_nomem", "scales": [2]}],
        },
        "tiny_slices": {
            "kind": "slices", "reader": "brats",
            "reader_options": {"contrasts": ["t2"], "max_info_crop": True, "margin": 6},
            "raw": {"synth": {"kind": "multicontrast", "n_subjects": 4,
                              "params": {"flavour": "brain", "size": [48, 48], "slices": 2}}},
            "target": "t2",
            "degradation": {"mode": "lowpass_bicubic", "axes": [0, 1]},
            "scales": [1.5, 2, 2.5],
            "patches": {"hr_patch": [16, 16], "per_slice": 2, "train_per_subject": 8, "val_per_subject": 2},
            "methods": ["bicubic", "meta_srgan", {"name": "edsr", "scales": [2]}],
        },
    },
    "models": {
        "phase_vsr": {"arch": "phase_vsr", "trainer": "supervised", "store": "clips", "args": PHASE_ARGS, "train": VSR_TRAIN,
                      "sweeps": {"omega": [0, 2]}},
        "phase_vsr_nomem": {"arch": "phase_vsr", "trainer": "supervised", "store": "clips", "train": VSR_TRAIN,
                            "args": {**PHASE_ARGS, "n_warmup": 0, "omega": 0, "memory": False,
                                     "bidirectional": False, "fusion": False}},
        "edsr": {"arch": "edsr", "trainer": "supervised", "args": {"n_feats": 4, "n_blocks": 1},
                 "train": {"steps": 2, "batch_size": 4, "val_every": 2, "ckpt_every": 2}},
        "meta_srgan": {"arch": "meta_srgan", "trainer": "adversarial", "store": "hr", "args": {"n_feats": 4, "n_blocks": 1, "hidden": 8},
                       "disc": DISC, "train": {**GAN_TRAIN, "scales": [1.5, 2.5], "lr_decay_every": 2}},
    },
}
TABLES = ["summary.html", "sweeps.html", "cost_tiny_cine_x2.html", "scale_sweep_tiny_slices.html",
          "tiny_slices_x2_methods.html"]
PLOTS = ["psnr.png", "sweeps.png", "cost_tiny_cine_x2.png", "scale_sweep_tiny_slices.png", "tiny_cine_x2.png",
         "tiny_slices_x2.png"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("report")
    run = run_snakemake(work, CONFIG, "all", cores=2, timeout=1500)
    assert run.returncode == 0, run.stderr[-4000:]
    out = work / "results/report.html"
    run = run_snakemake(work, CONFIG, "--report", str(out), cores=1, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    return out


def report_results(report_html: Path) -> dict[str, dict]:
    """The report's embedded result records ({path: {mime_type, data_uri, caption, ...}})."""
    text = report_html.read_text(encoding="utf-8")
    script = re.search(r'<script id="results">\s*(.*?)\s*</script>', text, re.S).group(1)
    return json.loads(script[script.index("{"): script.rindex("}") + 1])


def embedded(record: dict) -> bytes:
    uri = record["data_uri"]
    assert uri.startswith("data:") and ";base64," in uri, f"{record['name']} is not embedded: {uri[:80]}"
    return base64.b64decode(uri.split(";base64,", 1)[1])


@pytest.mark.slow
def test_report_embeds_every_table_and_plot_inline(report: Path) -> None:
    results = {Path(p).name: r for p, r in report_results(report).items()}
    for name in TABLES:
        assert results[name]["mime_type"] == "text/html", name  # rendered inline, not a download link
        page = embedded(results[name]).decode("utf-8")
        assert "<table>" in page and "<td" in page, name
        assert results[name]["caption"], f"{name} has no caption"
    for name in PLOTS:
        assert results[name]["mime_type"] == "image/png", name
        assert embedded(results[name])[:8] == b"\x89PNG\r\n\x1a\n", name
    # the summary tables show summary.csv's numbers, one section per experiment family
    summary = embedded(results["summary.html"]).decode("utf-8")
    for section in ("Main comparison", "Ablations", "Scale sweeps"):
        assert f"<h2>{section}</h2>" in summary
    df = pd.read_csv(report.parent / "tables/summary.csv", dtype={"scale": str})
    for r in df[df["metric"].isin(["psnr", "ssim"])].itertuples():
        assert format_cell(r.mean, r.std, r.metric, r.n) in summary, (r.dataset, r.method, r.scale, r.metric)
    assert "phase_vsr_nomem" in summary.split("<h2>Ablations</h2>")[1].split("<h2>")[0]
    assert "×1.5" in summary.split("<h2>Scale sweeps</h2>")[1]
    assert "×1.5" not in summary.split("<h2>Ablations</h2>")[0]  # sweep scales stay out of the main comparison
    sweeps = embedded(results["sweeps.html"]).decode("utf-8")
    assert "phase_vsr ×2: omega" in sweeps
    # figures fit a page
    for name in PLOTS:
        width = mpimg.imread(report.parent / ("tables/figures" if name.startswith("tiny_") else "tables") / name).shape[1]
        assert width <= 1700, f"{name} is {width} px wide"


def open_result_script(record_path: str) -> str:
    """JS appended to a copy of the report: open one result in the content pane once the app is up."""
    return ("<script>window.addEventListener('load', () => setTimeout(() => app.setView("
            f"{{content: 'html', contentPath: results[{json.dumps(record_path)}].data_uri}}), 200));</script>")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install chromium); the inline-HTML check above still ran")
    path = next(p for p in report_results(report) if p.endswith("summary.html"))
    page = tmp_path / "report_summary.html"
    text = report.read_text(encoding="utf-8")
    end = text.rindex("</body>")  # the last one: the embedded libraries hold "</body>" in JS strings too
    page.write_text(text[:end] + open_result_script(path) + text[end:], encoding="utf-8")
    shot = tmp_path / "report.png"
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--screenshot={shot}", "--window-size=1600,1000", "--virtual-time-budget=8000",
                          page.as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    img = mpimg.imread(shot)
    assert img.shape[:2] == (1000, 1600)
    # the table pane (right of the navigation bar) is not blank: text and table rules on white
    pane = img[:, 500:, :3].mean(axis=2)
    assert (pane < 0.5).mean() > 0.005 and (pane > 0.9).mean() > 0.5
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert "<iframe" in dom.stdout and "data:text/html" in dom.stdout  # the summary tables are open inline
