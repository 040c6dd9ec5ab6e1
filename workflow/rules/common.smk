# Config validation and every function the rules use. Rule files hold rules only (stage by stage);
# a rule's input/param functions are the `get_*` functions here (`snakemake --lint` asks for this).
import copy
import json
import os
import shlex
import sys

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# This checkout's mrisr, also where Snakemake runs without it installed (the conda route):
# kinds.py is plain data, so the Snakemake process imports no torch.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from mrisr.kinds import DEGRADATIONS, GROUP_STORES, STORES, WINDOWS  # noqa: E402
from mrisr.kinds import degradation_name as _degradation_folder  # noqa: E402
from mrisr.scheduler_timers import limit_reevaluation_timers  # noqa: E402

# Snakemake's scheduler otherwise grows one 1 s wake-up chain per finished job (see the module).
limit_reevaluation_timers()

with open(workflow.source_path("../schemas/config.schema.yaml")) as _f:
    _SCHEMA = yaml.safe_load(_f)


def _check_schema(cfg):
    """One line naming the offending key (jsonschema's best match), before Snakemake's
    validate() fills in the defaults."""
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(_SCHEMA).iter_errors(cfg))
    if err is not None:
        raise WorkflowError(f"config error at {err.json_path}: {err.message}")


_check_schema(config)
validate(config, "../schemas/config.schema.yaml")
__import__("mrisr.config_check").config_check.check_config(config)  # start-up errors needing the model registry: one line naming the key

# Every rule runs `python -m mrisr <stage>`. Without --sdm conda, `python` is the interpreter running
# Snakemake (its venv's bin/ goes first on PATH, so nothing needs activating); with --sdm conda,
# Snakemake puts the rule's env (envs/*.yaml: the dependencies) first. Either way this checkout's
# src/ is on PYTHONPATH, so every job imports the mrisr next to this Snakefile.
# Neither variable is required to be set beforehand, hence no `envvars:` assertion.
os.environ.update(
    PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    PYTHONPATH=os.pathsep.join(p for p in [os.path.join(workflow.basedir, "src"), os.environ.get("PYTHONPATH", "")] if p),
)

INTERPOLATIONS = {"bicubic", "tricubic"}
TASK_OF_KIND = {"cine": "sisr2d", "multicontrast": "mcsr", "volume": "sisr3d", "slices": "sisr2d"}
SCALE_RE = r"[0-9]+(\.[0-9]+)?"
DEFAULT_HR_PATCH = [48, 48]  # patches.hr_patch when neither it nor lr_patch is given (schema description)

wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    subject=r"[A-Za-z0-9_\-]+",
    method=r"[a-z0-9_]+",
    scale=SCALE_RE,
    # models/{dataset}/{method}/{scale_dir}: x{scale} (fixed-scale model) or any (store: hr)
    scale_dir=rf"x{SCALE_RE}|any",
    split="train|val|test",
    task="|".join(sorted(set(TASK_OF_KIND.values()))),
    frames=r"[0-9]+",
    warmup=r"[0-9]+",
    degradation="|".join(_degradation_folder(m, w) for m in DEGRADATIONS for w in WINDOWS),
    kind="|".join(GROUP_STORES),
    key=r"[a-z][a-z_]*",
    value=r"-?[0-9]+",


# ---------------------------------------------------------------------------- config lookups
def fmt_scale(s):
    return f"{float(s):g}"


def ds(name):
    return config["datasets"][name]


def task_of(dataset):
    return TASK_OF_KIND[ds(dataset)["kind"]]


def degradation_name(dataset):
    d = ds(dataset)["degradation"]
    return _degradation_folder(d["mode"], d["window"])


def deep_merge(base, override):
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# One validator for the merged model blocks, built once: jsonschema.validate() re-checks the
# schema itself on every call, and the DAG asks for model configs hundreds of times (that alone
# made a no-op `snakemake all` take 15 s of CPU).
_MODEL_VALIDATOR = jsonschema.Draft202012Validator({"$defs": _SCHEMA["$defs"], "$ref": "#/$defs/model"})
_MODEL_CONFIGS = {}


def model_config(dataset, method):
    """The model's config with the overrides of the dataset that trains it (this one, or its
    `train_from`), re-validated after merging (once per pair)."""
    if method not in config["models"]:
        raise ValueError(f"config: dataset {dataset!r} lists method {method!r}, which is neither "
                         f"an interpolation ({sorted(INTERPOLATIONS)}) nor a key of `models`")
    owner = train_dataset(dataset)
    key = (owner, method)
    if key not in _MODEL_CONFIGS:
        merged = deep_merge(config["models"][method], ds(owner).get("overrides", {}).get(method, {}))
        err = jsonschema.exceptions.best_match(_MODEL_VALIDATOR.iter_errors(merged))
        if err is not None:
            raise ValueError(f"config: datasets.{owner}.overrides.{method}: {err.message}")
        _MODEL_CONFIGS[key] = merged
    return copy.deepcopy(_MODEL_CONFIGS[key])  # callers may edit their copy


def store_of(dataset, method):
    """The model's `store` kind (mrisr.kinds.STORES): which train store it reads."""
    return STORES[model_config(dataset, method).get("store", "patches")]


def method_entries(dataset):
    """[(method, scales)] of a dataset: a bare name runs at every scale of the dataset."""
    d = ds(dataset)
    return [(m, d["scales"]) if isinstance(m, str) else (m["name"], m.get("scales", d["scales"]))
            for m in d["methods"]]


def methods_at(dataset, scale):
    return [m for m, scales in method_entries(dataset) if float(scale) in {float(s) for s in scales}]


def is_evaluated(dataset):
    """False for a pretraining set (`train_only`): its models are trained for another dataset's
    init_from and never evaluated, so it adds no experiments, studies, cost tables or scale sweep."""
    return not ds(dataset).get("train_only")


def evaluates_own_models(dataset):
    """Evaluates the models it trains itself: neither an external test set (train_from) nor a
    pretraining set (train_only). Studies and cost tables belong to these."""
    return is_evaluated(dataset) and not ds(dataset).get("train_from")


def train_dataset(dataset):
    """The dataset whose models this one evaluates (itself, or `train_from` for an external test set,
    e.g. the transfer check on real scans)."""
    return ds(dataset).get("train_from") or dataset


def is_arbitrary(dataset, method):
    """An arbitrary-scale model (store: hr): trained once into models/{dataset}/{method}/any/."""
    return method not in INTERPOLATIONS and store_of(dataset, method).train == "hr"


def clip_of(dataset, method):
    """(frames, warm-up frames) of a video model's clips."""
    cfg = model_config(dataset, method)
    return cfg["train"].get("clip_frames", 7), cfg["args"].get("n_warmup", 6)


def pair_store(dataset, method, scale, split):
    """The pair store of a fixed-scale model: patches/{task}-x{s}_{split}.h5, clips for video models."""
    if store_of(dataset, method).train == "clips":
        frames, warmup = clip_of(dataset, method)
        return f"results/{dataset}/patches/vsr{frames}w{warmup}-x{scale}_{split}.h5"
    return f"results/{dataset}/patches/{task_of(dataset)}-x{scale}_{split}.h5"


def check_model_overrides():
    """Each model's config after its dataset's overrides, validated at start-up rather than when a
    job first asks for it (config_check.check_config, above, covers every other cross-key check)."""
    for name in config["datasets"]:
        for m, _ in method_entries(name):
            if m not in INTERPOLATIONS:
                model_config(name, m)


check_model_overrides()


def get_threads(wildcards):
    """Threads of each compute job (train/evaluate/studies): config `job_threads`, 0 = all cores.
    A callable, so commands that run no job (--dag, --report, --summary, --lint) need no --cores."""
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores given: nothing runs, the number only labels the job
        return config["job_threads"] or 1
    return min(config["job_threads"], cores) if config["job_threads"] else cores


def get_train_env():
    """The train rule's conda env (path relative to train.smk): the CUDA build of torch with
    `device: cuda`, else the CPU build (`auto` on a GPU node: set `device: cuda` with --sdm conda)."""
    return "../../envs/train-cuda.yaml" if config["device"] == "cuda" else "../../envs/train.yaml"


def get_device():
    """Inference device: `auto` evaluates on the CPU (training alone picks CUDA when it has one)."""
    return "cpu" if config["device"] == "auto" else config["device"]


# ---------------------------------------------------------------------------- data
def get_raw_dir(wildcards):
    raw = ds(wildcards.dataset)["raw"]
    return raw["dir"] if "dir" in raw else f"resources/raw/{wildcards.dataset}"


def get_raw_marker(wildcards):
    """The file whose presence means the raw folder is complete (none for a user's `dir`)."""
    raw = ds(wildcards.dataset)["raw"]
    if "dir" in raw:
        return []
    marker = "manifest.json" if "synth" in raw else "installed.json" if "installed" in raw else "download.json"
    return f"resources/raw/{wildcards.dataset}/{marker}"


def get_installed_spec(wildcards):
    """The `installed` entries (package, path, sha256[, subject]): a changed checksum or file reruns the copy."""
    return json.dumps(ds(wildcards.dataset)["raw"]["installed"], sort_keys=True)


# Only the source keys: a changed URL or checksum reruns the download, nothing else does.
DOWNLOAD_KEYS = ("url", "sha256", "auth_env", "archive")


def get_archives(wildcards):
    """A hand-fetched archive is an input: Snakemake names it when it is missing."""
    archive = ds(wildcards.dataset)["raw"].get("archive")
    return [] if archive is None else [archive] if isinstance(archive, str) else list(archive)


def get_download_spec(wildcards):
    # auth_env is the variable's NAME; its value never reaches the command line or the log.
    return json.dumps({k: v for k, v in ds(wildcards.dataset)["raw"].items() if k in DOWNLOAD_KEYS},
                      sort_keys=True)


def get_synth_params(wildcards):
    return json.dumps(ds(wildcards.dataset)["raw"]["synth"].get("params", {}), sort_keys=True)


def get_reader_options(wildcards):
    return json.dumps(ds(wildcards.dataset)["reader_options"])


def get_split_args(wildcards):
    """`--subjects-file F` for a split file (`split: {file: F}`), else `--ratios` (an external test
    set, train_from, puts every subject in test)."""
    split = ds(wildcards.dataset)["split"]
    if isinstance(split, dict):
        return f"--subjects-file {shlex.quote(split['file'])}"
    ratios = [0, 0, 1] if ds(wildcards.dataset).get("train_from") else split
    return "--ratios " + " ".join(str(r) for r in ratios)


def get_split_file(wildcards):
    """The split file as an input of rule split (an edited list redraws nothing but reruns the split)."""
    split = ds(wildcards.dataset)["split"]
    return [split["file"]] if isinstance(split, dict) else []


# ---------------------------------------------------------------------------- degrade
# Per-subject stages run one job per dataset (× scale) for every subject (mrisr.batch), so their
# declared outputs are manifests written last beside the folder: prepared.json, lr/{degradation}/
# x{scale}.json, motion.json, registered/x{scale}.json. Rules take those as inputs; no input
# function needs the subject list, so the whole DAG is known before any subject is listed: inventory
# and groups are plain rules, not checkpoints (no DAG re-evaluation while the workflow runs).
def get_series_meta(wildcards):
    """--meta of a batch: the subject is added per subject (sidecars as a one-subject run writes them)."""
    return json.dumps({"dataset": wildcards.dataset, "series": ds(wildcards.dataset)["target"]})


def get_motion_ranges(wildcards):
    return json.dumps(ds(wildcards.dataset).get("motion", {}))


def lr_dir(dataset, scale):
    return f"results/{dataset}/lr/{degradation_name(dataset)}/x{scale}"


def lr_manifest(dataset, scale):
    """lr/{degradation}/x{scale}.json: written once every subject's LR at this scale is complete."""
    return f"{lr_dir(dataset, scale)}.json"


def get_lr_dir(wildcards):
    return lr_dir(wildcards.dataset, wildcards.scale)


def get_all_lr(wildcards):
    """Every subject's LR at this scale, as its manifest (each LR sidecar names its prepared HR: hr_source)."""
    return lr_manifest(wildcards.dataset, wildcards.scale)


def nearest_dir(dataset, scale):
    return f"results/{dataset}/lr/nearest/x{scale}"


# ---------------------------------------------------------------------------- patches
def get_reference_arg(wildcards):
    ref = ds(wildcards.dataset).get("reference")
    return f"--reference {ref}" if ref else ""


def get_patch_count(wildcards):
    return ds(wildcards.dataset)["patches"][f"{wildcards.split}_per_subject"]


def get_all_prepared(wildcards):
    """Every subject's prepared series, as prepared.json (written last by the dataset's prepare job)."""
    return f"results/{wildcards.dataset}/prepared.json"


def get_group_volumes(wildcards):
    """The manifests of every folder a UDEAN group store is cut from (written once all their subjects are)."""
    d, kind, scale = wildcards.dataset, wildcards.kind, wildcards.scale
    if kind == "nearest_pairs":
        return [f"{nearest_dir(d, scale)}.json"]
    files = [lr_manifest(d, scale)]  # every subject: the target and the source group
    if kind in ("misaligned_pairs", "udean_misaligned"):
        files.append(f"results/{d}/motion.json")
    if kind == "registered_pairs":
        files.append(f"results/{d}/registered/x{scale}.json")
    return files


def get_group_lr_dir(wildcards):
    if wildcards.kind == "nearest_pairs":
        return nearest_dir(wildcards.dataset, wildcards.scale)
    return lr_dir(wildcards.dataset, wildcards.scale)


def get_group_hr_arg(wildcards):
    """HR folder replacing the LR sidecars' hr_source, where the group's HR is not the prepared one."""
    if wildcards.kind in ("misaligned_pairs", "udean_misaligned"):
        return f"--hr-dir results/{wildcards.dataset}/motion"
    if wildcards.kind == "registered_pairs":
        return f"--hr-dir results/{wildcards.dataset}/registered/x{wildcards.scale}"
    return ""


# ---------------------------------------------------------------------------- train
def get_train_store(wildcards, split):
    """The store a model trains (split "train") or validates on: HR-only for an arbitrary-scale
    model (models/.../any/), a UDEAN group store for `train` of a group-store model, else pairs."""
    d, m = wildcards.dataset, wildcards.method
    if wildcards.scale_dir == "any":
        return f"results/{d}/patches/{task_of(d)}-hr_{split}.h5"
    scale = wildcards.scale_dir[1:]
    kind = model_config(d, m).get("store", "patches")
    if split == "train" and kind in GROUP_STORES:
        return f"results/{d}/patches/groups/{kind}-x{scale}_train.h5"
    return pair_store(d, m, scale, split)


def get_init_model(wildcards):
    """`init_from`'s model.pt (an input: the source trains first, and a retrained source retrains
    this model), or nothing."""
    init = model_config(wildcards.dataset, wildcards.method).get("init_from")
    if not init:
        return []
    scale_dir = f"x{fmt_scale(init['scale'])}" if "scale" in init else wildcards.scale_dir
    return [f"results/models/{init['dataset']}/{init['method']}/{scale_dir}/model.pt"]


def get_init_arg(wildcards, input):
    return f"--init-from {input.init}" if input.init else ""


def train_config(dataset, method, arbitrary):
    """What the training loop sees: the model config minus pipeline-only keys; an arbitrary-scale
    model also gets the dataset's degradation (the LR made on the fly must be the LR it is
    evaluated on)."""
    cfg = copy.deepcopy(model_config(dataset, method))
    is_video = cfg.pop("store", "patches") == "clips"
    cfg.pop("sweeps", None)
    cfg.pop("init_from", None)  # the workflow passes the source model.pt itself (get_init_model)
    clip_frames = cfg["train"].pop("clip_frames", 7)
    if is_video:  # video models infer in clips of the length they were trained on: a model arg
        cfg["args"] = {**(cfg.get("args") or {}), "clip_frames": clip_frames}
    if arbitrary:
        deg = ds(dataset)["degradation"]
        cfg["train"]["degradation"], cfg["train"]["window"] = deg["mode"], deg["window"]
    return cfg


def get_train_config(wildcards):
    """Only this (dataset, method) entry: editing another model's config never retrains this one."""
    cfg = train_config(wildcards.dataset, wildcards.method, wildcards.scale_dir == "any")
    return json.dumps(cfg, sort_keys=True)


def get_gpus(wildcards):
    return 1 if config["device"] == "cuda" else 0


def model_dir(dataset, method, scale):
    """Where the model evaluated at `scale` lives: x{scale}/, or any/ for an arbitrary-scale model."""
    src = train_dataset(dataset)
    return f"results/models/{src}/{method}/{'any' if is_arbitrary(src, method) else f'x{scale}'}"


def get_model_targets():
    """Weights and model card of every trained model, so `all` retrains a deleted one."""
    out = set()
    for name, d in config["datasets"].items():
        if d.get("train_from"):
            continue
        for method, scales in method_entries(name):
            if method not in INTERPOLATIONS:
                out |= {f"{model_dir(name, method, fmt_scale(s))}/{f}" for s in scales for f in ("model.pt", "card.md")}
    return sorted(out)


# ---------------------------------------------------------------------------- evaluate
def experiments():
    """(dataset, method, scale) of every evaluation the config asks for."""
    return [(name, m, fmt_scale(s)) for name, d in config["datasets"].items() if is_evaluated(name)
            for s in d["scales"] for m in methods_at(name, s)]


def eval_dir(dataset, method, scale):
    return f"results/eval/{dataset}/{method}/x{scale}"


def get_model(wildcards):
    if wildcards.method in INTERPOLATIONS:
        return []
    return f"results/models/{train_dataset(wildcards.dataset)}/{wildcards.method}/x{wildcards.scale}/model.pt"


def get_model_arg(wildcards, input):
    return f"--model {input.model}" if input.model else ""


# Inference-time studies (a model's `sweeps: {key: [values]}` config key, e.g. Ω stages, warm-up
# frames n): the trained model re-evaluated with `mrisr evaluate --set key=value`, no retraining,
# into eval/{dataset}/{method}/x{scale}/sweep/{key}{value}/. Not experiments: `tables` never reads
# them (summary.csv holds the main runs only); tables/sweeps.csv (+ .png) collects them. They run
# on the datasets that train the model, at the method's largest scale (the paper's Ω / n study is
# at ×4): one study costs one evaluation per value. "Scale sweep" (below) is the other thing: one
# arbitrary-scale model evaluated at every scale.
def study_experiments():
    """(dataset, method, scale, key, value) of every configured inference-time study."""
    out = []
    for name in config["datasets"]:
        if not evaluates_own_models(name):
            continue
        for method, scales in method_entries(name):
            if method in INTERPOLATIONS:
                continue
            studies = model_config(name, method).get("sweeps") or {}
            scale = fmt_scale(max(map(float, scales)))
            out += [(name, method, scale, key, int(v)) for key, values in studies.items() for v in values]
    return out


def study_dir(dataset, method, scale, key, value):
    return f"{eval_dir(dataset, method, scale)}/sweep/{key}{value}"


def get_study_dir(wildcards):
    return study_dir(wildcards.dataset, wildcards.method, wildcards.scale, wildcards.key, wildcards.value)


def get_study_metrics(wildcards):
    return [f"{study_dir(*e)}/metrics.csv" for e in study_experiments()]


def get_study_dirs(wildcards):
    return [study_dir(*e) for e in study_experiments()]


def cost_experiments():
    """(dataset, scale) of each training dataset with a video (clip-store) model: its largest scale.
    Cost = parameters and inference frames/s of every method there (the cine paper's Fig. 4a)."""
    out = []
    for name, d in config["datasets"].items():
        if not evaluates_own_models(name):
            continue
        if any(m not in INTERPOLATIONS and store_of(name, m).train == "clips" for m, _s in method_entries(name)):
            out.append((name, fmt_scale(max(map(float, d["scales"])))))
    return out


def get_cost_models(wildcards):
    return [f"results/models/{wildcards.dataset}/{m}/x{wildcards.scale}/model.pt"
            for m in methods_at(wildcards.dataset, wildcards.scale) if m not in INTERPOLATIONS]


def get_cost_specs(wildcards):
    return [m if m in INTERPOLATIONS else f"{m}=results/models/{wildcards.dataset}/{m}/x{wildcards.scale}/model.pt"
            for m in methods_at(wildcards.dataset, wildcards.scale)]


def get_study_targets():
    targets = []
    if study_experiments():
        targets += ["results/tables/sweeps.csv", "results/tables/sweeps.png"]
    for d, s in cost_experiments():
        targets += [f"results/tables/cost_{d}_x{s}.csv", f"results/tables/cost_{d}_x{s}.png"]
    return targets


# ---------------------------------------------------------------------------- scale sweep (batched.smk)
# A dataset with an arbitrary-scale model is a "scale-sweep dataset": every listed scale is an
# ordinary experiment, but its many scales are batched (one process per dataset / method).
def scale_sweep_datasets():
    return [d for d in config["datasets"]
            if is_evaluated(d) and any(is_arbitrary(d, m) for m, _s in method_entries(d))]


def scale_sweep_methods(dataset):
    """[(method, scales)] evaluated in one job per method: interpolations and arbitrary-scale models."""
    return [(m, s) for m, s in method_entries(dataset) if m in INTERPOLATIONS or is_arbitrary(dataset, m)]


def table_scales(dataset):
    """Scales where a fixed-scale model runs: each gets a methods table (Table 1)."""
    fixed = [s for m, scales in method_entries(dataset)
             if m not in INTERPOLATIONS and not is_arbitrary(dataset, m) for s in scales]
    return sorted({fmt_scale(s) for s in fixed}, key=float)


def arbitrary_model(dataset, method):
    return f"results/models/{train_dataset(dataset)}/{method}/any/model.pt"


def get_lr_root(wildcards, output):
    """lr/{degradation} of a batched degrade job: the folder holding its x{scale}.json outputs."""
    return os.path.dirname(output[0])


def get_lr_root_of_input(wildcards, input):
    """lr/{degradation} of a batched evaluate job: the folder holding its x{scale}.json inputs."""
    return os.path.dirname(input.lr[0])


def get_prepared_dir(wildcards, input):
    """results/{dataset}/prepared of a batched job whose first input is results/{dataset}/prepared.json."""
    return input[0].removesuffix(".json")


def get_eval_root(wildcards, output):
    """eval/{dataset}/{method} of a batched evaluate job: the folder above its x{scale}/ outputs."""
    return os.path.dirname(os.path.dirname(output[0]))


def scales_text(scales):
    return " ".join(fmt_scale(s) for s in scales)


def batched_rule_names():
    """Names of the rules batched.smk generates for this config (one family per scale-sweep dataset)."""
    names = []
    for d in scale_sweep_datasets():
        names += [f"degrade_scales_{d}", f"figures_{d}", f"scale_sweep_{d}"]
        names += [f"evaluate_scales_{d}_{m}" for m, _s in scale_sweep_methods(d)]
    return names


def get_scale_sweep_targets():
    out = []
    for d in scale_sweep_datasets():
        out += [f"results/tables/scale_sweep_{d}.{ext}" for ext in ("csv", "md", "png")]
        out += [f"results/tables/{d}_x{s}_methods.md" for s in table_scales(d)]
    return out


# ---------------------------------------------------------------------------- report
def get_figure_targets():
    return sorted({f"results/tables/figures/{d}_x{s}.png" for d, _m, s in experiments()})


def get_table_families():
    """Experiment families of the summary tables (`mrisr tables --families`).

    ablations: per dataset, each `{name, scales}` entry whose arch is also that of a method the dataset
    lists by bare name (run at every scale) is a rung of that full method (phase_vsr_nomem -> phase_vsr,
    minet_no_att -> minet); fixed-scale baselines of other archs (edsr, srgan on a sweep dataset) are not.
    scale_sweeps: per dataset with an arbitrary-scale (`store: hr`) model, the methods evaluated at every
    scale (interpolations + arbitrary-scale models).
    external: {external test set: the dataset its models come from} (`train_from`: the transfer check
    on real scans, an external test set): their tables go to their own section.
    """
    ablations, sweeps = {}, {}
    external = {name: d["train_from"] for name, d in config["datasets"].items() if d.get("train_from")}
    for name, d in config["datasets"].items():
        if not is_evaluated(name):
            continue
        arch = lambda m: None if m in INTERPOLATIONS else model_config(name, m)["arch"]
        full = {arch(m): m for m in d["methods"] if isinstance(m, str) and m not in INTERPOLATIONS}
        rungs = {e["name"]: full[arch(e["name"])] for e in d["methods"]
                 if isinstance(e, dict) and arch(e["name"]) in full and full[arch(e["name"])] != e["name"]}
        if rungs:
            ablations[name] = rungs
        models = [m for m, _s in method_entries(name) if m not in INTERPOLATIONS]
        if any(model_config(name, m).get("store") == "hr" for m in models):
            sweeps[name] = [m for m, _s in method_entries(name)
                            if m in INTERPOLATIONS or model_config(name, m).get("store") == "hr"]
    return {"ablations": ablations, "scale_sweeps": sweeps, "external": external}


# ---------------------------------------------------------------------------- patch sizes
def hr_patch(dataset, scale):
    """The HR patch of a store at `scale`: patches.hr_patch, or lr_patch × scale (per-scale HR
    patches with a fixed LR size; config_check ensures lr_patch × scale is whole)."""
    p = ds(dataset)["patches"]
    if "lr_patch" in p:
        return [int(round(n * float(scale))) for n in p["lr_patch"]]
    return list(p.get("hr_patch", DEFAULT_HR_PATCH))


def get_hr_patch(wildcards):
    """--hr-patch of a pair, clip or group store at wildcards.scale."""
    return hr_patch(wildcards.dataset, wildcards.scale)


def get_hr_only_patch(wildcards):
    """--hr-patch of an HR-only store (no scale: patches.hr_patch; config_check rejects lr_patch there)."""
    return list(ds(wildcards.dataset)["patches"].get("hr_patch", DEFAULT_HR_PATCH))
