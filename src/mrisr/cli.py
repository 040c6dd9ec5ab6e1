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


def _set_threads(n: int | None) -> None:
    if n:
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


def cmd_inventory(a: argparse.Namespace) -> None:
    from mrisr.datasets import get_reader
    from mrisr.io import write_json

    raw = Path(a.raw)
    if not raw.is_dir():
        raise InputError(raw, "raw data folder does not exist")
    subjects = [s for s in get_reader(a.reader, **a.reader_options).list_subjects(raw) if s not in set(a.exclude)]
    if not subjects:
        raise InputError(raw, f"no subjects found for reader {a.reader!r}")
    write_json(a.out, {"reader": a.reader, "raw": str(raw), "subjects": subjects})
    print(f"{len(subjects)} subjects in {raw}")


def cmd_prepare(a: argparse.Namespace) -> None:
    from mrisr.datasets import get_reader, prepare_subject

    reader = get_reader(a.reader, **a.reader_options)
    from mrisr.io import write_json

    out_dir = Path(a.out_dir)
    paths = prepare_subject(reader, Path(a.raw), a.subject, out_dir, a.dataset,
                            tuple(a.percentiles), a.crop_multiple, tuple(a.crop_axes))
    # The subject manifest is written last: its presence means every series is complete.
    write_json(out_dir / "manifest.json", {"subject": a.subject, "series": sorted(p.name.removesuffix(".nii.gz") for p in paths)})
    print("\n".join(map(str, paths)))


def cmd_split(a: argparse.Namespace) -> None:
    from mrisr.datasets import make_split
    from mrisr.io import read_json, write_json

    subjects = read_json(a.inventory)["subjects"]
    split = make_split(subjects, tuple(a.ratios), a.seed, a.dataset)
    write_json(a.out, split)
    print({k: len(split[k]) for k in ("train", "val", "test")})


def cmd_degrade(a: argparse.Namespace) -> None:
    from mrisr.degrade import degrade_file

    degrade_file(Path(a.hr), Path(a.out), a.mode, a.scale, tuple(a.axes), a.window, a.meta)


def cmd_motion(a: argparse.Namespace) -> None:
    from mrisr.degrade import motion_file

    motion_file(Path(a.hr), Path(a.out), a.ranges, a.seed, a.subject, a.meta)


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

    params = register_to_lr_file(Path(a.lr), Path(a.moving), Path(a.out))
    print({k: round(v, 3) for k, v in params.items() if k.endswith(("_deg", "_vox"))})


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

    train_model(a.model_config, Path(a.train), Path(a.val), Path(a.out_dir), a.seed, a.device)


def cmd_evaluate(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from mrisr.evaluate.run import evaluate

    evaluate(a.method, Path(a.model) if a.model else None, Path(a.split_file), Path(a.lr_dir), Path(a.out_dir),
             a.dataset, a.task, a.scale, a.reference, a.device, not a.no_sr, dict(a.set))


def cmd_upscale(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from mrisr.upscale import upscale_file

    grid = upscale_file(a.model, a.input, a.output, a.scale, a.axes, a.device, normalize=not a.no_normalize)
    print(f"{a.input} {list(grid.lr_shape)} -> {a.output} {list(grid.hr_shape)} (x{a.scale:g} on axes {list(grid.axes)})")


def cmd_tables(a: argparse.Namespace) -> None:
    from mrisr.evaluate.figures import metric_plot
    from mrisr.evaluate.tables import write_tables

    out = Path(a.out_dir)
    write_tables([Path(p) for p in a.eval_dirs], out)
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

    for s in a.scales:
        out = Path(a.out_root) / f"x{format_scale(s)}" / f"{a.subject}.nii.gz"
        degrade_file(Path(a.hr), out, a.mode, s, tuple(a.axes), a.window, a.meta)
    print(f"{a.subject}: {len(a.scales)} scales -> {a.out_root}")


def cmd_evaluate_scales(a: argparse.Namespace) -> None:
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

    s = add("degrade-scales", cmd_degrade_scales, "`mrisr degrade` of one subject at many scales in one process")
    _degrade_options(s, modes=["truncate", "lowpass_bicubic", "bicubic"])  # nearest: integer scales only
    s.add_argument("--subject", required=True)
    s.add_argument("--out-root", required=True, help="lr/{degradation}: writes x{scale}/{subject}.nii.gz + .json")
    s.add_argument("--scales", type=_scale, nargs="+", required=True)

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


def _degrade_options(s: argparse.ArgumentParser, modes: list[str]) -> None:
    """Options shared by `degrade` (one scale) and `degrade-scales` (many)."""
    s.add_argument("--hr", required=True)
    s.add_argument("--mode", required=True, choices=modes)
    s.add_argument("--axes", type=int, nargs="+", required=True)
    s.add_argument("--window", default="none", choices=["none", "hamming"])
    s.add_argument("--meta", type=_json, default={})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrisr", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

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

    s = add("inventory", cmd_inventory, "list the subjects a reader finds in a raw folder")
    s.add_argument("--reader", required=True)
    s.add_argument("--reader-options", type=_json, default={})
    s.add_argument("--raw", required=True)
    s.add_argument("--exclude", nargs="*", default=[])
    s.add_argument("--out", required=True)

    s = add("prepare", cmd_prepare, "raw subject -> canonical NIfTI + JSON sidecars")
    s.add_argument("--reader", required=True)
    s.add_argument("--reader-options", type=_json, default={})
    s.add_argument("--raw", required=True)
    s.add_argument("--subject", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--percentiles", type=float, nargs=2, default=[0.5, 99.5])
    s.add_argument("--crop-multiple", type=int, default=12)
    s.add_argument("--crop-axes", type=int, nargs="+", default=[0, 1])

    s = add("split", cmd_split, "subject-level seeded train/val/test split")
    s.add_argument("--inventory", required=True)
    s.add_argument("--ratios", type=float, nargs=3, default=[0.7, 0.1, 0.2])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", required=True)

    s = add("degrade", cmd_degrade, "k-space / image-space degradation of one prepared series")
    _degrade_options(s, modes=["truncate", "lowpass_bicubic", "bicubic", "nearest"])
    s.add_argument("--out", required=True)
    s.add_argument("--scale", type=float, required=True)

    s = add("motion", cmd_motion, "rigid + shrinking-deformation motion simulation of one HR volume")
    s.add_argument("--hr", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--ranges", type=_json, default={})
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--subject", required=True)
    s.add_argument("--meta", type=_json, default={})

    s = add("groups", cmd_groups, "UDEAN data groups: split.json's train subjects -> target + disjoint source")
    s.add_argument("--split-file", required=True)
    s.add_argument("--source-fraction", type=float, default=0.5)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", required=True)

    s = add("register", cmd_register, "rigidly register a moved HR volume back onto its LR (Mattes MI)")
    s.add_argument("--lr", required=True, help="the subject's LR NIfTI (its sidecar gives the grid)")
    s.add_argument("--moving", required=True)
    s.add_argument("--out", required=True)

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

    s = add("upscale", cmd_upscale, "apply a trained model to a NIfTI at any scale it supports")
    s.add_argument("--model", required=True, help="model folder (with model.pt) or model file")
    s.add_argument("--scale", type=_scale, required=True)
    s.add_argument("--axes", type=_int_list, default=None,
                   help="comma-separated axes to upscale, e.g. 0,1 (default: 0,1 for 2D models, 0,1,2 for 3D)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-normalize", action="store_true", help="input already in [0, 1]: no percentile mapping")
    s.add_argument("input")
    s.add_argument("output")

    s = add("tables", cmd_tables, "summary.csv (long form) + Markdown tables + plot")
    s.add_argument("--eval-dirs", nargs="+", required=True)
    s.add_argument("--out-dir", required=True)

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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as err:
        # One line naming the file and the problem; the job fails, --keep-going carries on.
        print(f"mrisr {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
