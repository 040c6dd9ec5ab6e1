# Config validation and the small functions that turn config into rule arguments.
import copy
import json
import re
import sys

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

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

# `python -m mrisr` of the interpreter running Snakemake: works without activating the venv.
MRISR = f"{sys.executable} -m mrisr"
INTERPOLATIONS = {"bicubic", "tricubic"}
TASK_OF_KIND = {"cine": "sisr2d", "multicontrast": "mcsr", "volume": "sisr3d", "slices": "sisr2d"}
SCALE_RE = r"[0-9]+(\.[0-9]+)?"

wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    subject=r"[A-Za-z0-9_\-]+",
    method=r"[a-z0-9_]+",
    scale=SCALE_RE,
    split="train|val|test",
    task=r"[a-z0-9]+",
    degradation=r"[a-z_]+(-hamming)?",


def job_threads():
    """Threads of each compute job (train/evaluate/sweeps): config `job_threads`, 0 = all cores."""
    return min(config["job_threads"], workflow.cores) if config["job_threads"] else workflow.cores


def fmt_scale(s):
    return f"{float(s):g}"


def ds(name):
    return config["datasets"][name]


def task_of(dataset):
    return TASK_OF_KIND[ds(dataset)["kind"]]


def degradation_name(dataset):
    d = ds(dataset)["degradation"]
    return d["mode"] + ("-hamming" if d["window"] != "none" else "")


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
    """The model's config with this dataset's overrides, re-validated after merging (once per pair)."""
    if method not in config["models"]:
        raise ValueError(f"config: dataset {dataset!r} lists method {method!r}, which is neither "
                         f"an interpolation ({sorted(INTERPOLATIONS)}) nor a key of `models`")
    key = (dataset, method)
    if key not in _MODEL_CONFIGS:
        merged = deep_merge(config["models"][method], ds(dataset).get("overrides", {}).get(method, {}))
        err = jsonschema.exceptions.best_match(_MODEL_VALIDATOR.iter_errors(merged))
        if err is not None:
            raise ValueError(f"config: datasets.{dataset}.overrides.{method}: {err.message}")
        _MODEL_CONFIGS[key] = merged
    return copy.deepcopy(_MODEL_CONFIGS[key])  # callers may edit their copy


def method_entries(dataset):
    """[(method, scales)] of a dataset: a bare name runs at every scale of the dataset."""
    d = ds(dataset)
    return [(m, d["scales"]) if isinstance(m, str) else (m["name"], m.get("scales", d["scales"]))
            for m in d["methods"]]


def methods_at(dataset, scale):
    return [m for m, scales in method_entries(dataset) if float(scale) in {float(s) for s in scales}]


def train_dataset(dataset):
    """The dataset whose models this one evaluates (itself, or `train_from` for an external test set)."""
    return ds(dataset).get("train_from") or dataset


def store_task(dataset, method):
    """Patch-store task of a model: the dataset's task for patch pairs, vsr{frames}w{warmup} for clips."""
    cfg = model_config(dataset, method)
    if cfg.get("store", "patches") == "clips":
        return f"vsr{cfg['train'].get('clip_frames', 7)}w{cfg['args'].get('n_warmup', 6)}"
    return task_of(dataset)


def check_config():
    for name, d in config["datasets"].items():
        for m, scales in method_entries(name):
            if not set(map(float, scales)) <= set(map(float, d["scales"])):
                raise ValueError(f"config: datasets.{name}: method {m!r} asks for scales {scales} "
                                 f"outside the dataset's scales {d['scales']}")
            if m not in INTERPOLATIONS:
                model_config(name, m)
        src = d.get("train_from")
        if src and (src not in config["datasets"] or config["datasets"][src].get("train_from")):
            raise ValueError(f"config: datasets.{name}.train_from: {src!r} is not a dataset that trains models")
        if len(d["patches"]["hr_patch"]) != len(d["degradation"]["axes"]):
            raise ValueError(f"config: datasets.{name}.patches.hr_patch needs one size per degraded axis "
                             f"{d['degradation']['axes']}")
        if d["kind"] == "multicontrast" and not d.get("reference"):
            raise ValueError(f"config: datasets.{name}: kind multicontrast needs `reference`")


check_config()


def subjects(dataset):
    """Subjects listed by the inventory checkpoint (re-evaluated once it has run)."""
    with open(checkpoints.inventory.get(dataset=dataset).output[0]) as f:
        return json.load(f)["subjects"]


def series_of(dataset):
    d = ds(dataset)
    return [d["target"]] + ([d["reference"]] if d.get("reference") else [])


def lr_dir(wc):
    return f"results/{wc.dataset}/lr/{degradation_name(wc.dataset)}/x{wc.scale}"


def all_lr(wc):
    return expand("{dir}/{subject}.nii.gz", dir=lr_dir(wc), subject=subjects(wc.dataset))


def experiments():
    """(dataset, method, scale) of every evaluation the config asks for."""
    return [(name, m, fmt_scale(s)) for name, d in config["datasets"].items()
            for s in d["scales"] for m in methods_at(name, s)]


def eval_dir(dataset, method, scale):
    return f"results/eval/{dataset}/{method}/x{scale}"


def all_figures():
    return sorted({f"results/tables/figures/{d}_x{s}.png" for d, _m, s in experiments()})


def get_table_families():
    """Experiment families of the summary tables (`mrisr tables --families`).

    ablations: per dataset, each `{name, scales}` entry whose arch is also that of a method the dataset
    lists by bare name (run at every scale) is a rung of that full method (phase_vsr_nomem -> phase_vsr,
    minet_no_att -> minet); fixed-scale baselines of other archs (edsr, srgan on a sweep dataset) are not.
    scale_sweeps: per dataset with an arbitrary-scale (`store: hr`) model, the methods evaluated at every
    scale (interpolations + arbitrary-scale models).
    """
    ablations, sweeps = {}, {}
    for name, d in config["datasets"].items():
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
    return {"ablations": ablations, "scale_sweeps": sweeps}
