"""Start-up checks of a pipeline config: every error that can be known before a job runs.

The JSON schema (workflow/schemas/config.schema.yaml) checks types and ranges key by key;
this module checks what needs two keys at once or knowledge of the code: a model's arch
and arguments against the model registry, a fixed-scale model at a scale it cannot run,
an HR patch size the scale does not divide, an override for a model that does not run.
Each problem is a ConfigError whose one line names the key path (`datasets.x.patches.hr_patch`),
raised at Snakemake start-up instead of a traceback from a job minutes later.

The registry is read from the source of `mrisr.models` (its `@register("name")` classes,
their `__init__` parameters and `arbitrary_scale` attribute), without importing torch:
Snakemake runs this on every start, and in every cluster job. tests/test_bad_input.py
checks that this static reading equals `inspect.signature` of the live registry.

Pure: `check_config(config)` reads the dict (schema defaults filled in or not) and raises
or returns None; it writes nothing and imports neither torch nor Snakemake.
"""

from __future__ import annotations

import ast
import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from mrisr.errors import ConfigError

__all__ = ["ArchSpec", "ConfigError", "check_config", "live_arch_specs", "registry_arch_specs"]

INTERPOLATIONS = frozenset({"bicubic", "tricubic"})
GEOMETRY = frozenset({"scale", "dims", "grid_convention"})  # given by the patch store, never by `args`
# Stores cut from LR/HR pairs at one integer scale (patches/sample.py: LR-aligned corners).
PAIR_STORES = frozenset({"patches", "clips", "misaligned_pairs", "registered_pairs", "nearest_pairs",
                         "udean_misaligned", "udean_unpaired"})
HR_STORE = "hr"  # HR-only patches, LR made on the fly at any scale: arbitrary-scale models only
MODELS_DIR = Path(__file__).resolve().parent / "models"

# Schema defaults, so that a config without them filled in is checked the same way.
DEFAULT_HR_PATCH = [48, 48]
DEFAULT_AXES = [0, 1]


@dataclass(frozen=True)
class ArchSpec:
    """What the config may say about one registered architecture."""

    args: frozenset[str] | None  # accepted hyper-parameters (`args`); None: any (**kwargs)
    arbitrary_scale: bool  # False: a fixed integer scale >= 2 (pixel shuffle)
    inputs: tuple[str, ...] = ("lr",)  # batch keys its forward reads ("ref": an HR reference contrast)


# ------------------------------------------------------------------ the model registry
def _decorator_name(node: ast.expr) -> str | None:
    """"name" of a `@register("name")` decorator, else None."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if called == "register" and isinstance(node.args[0].value, str):
            return node.args[0].value
    return None


@dataclass
class _Class:
    module: str
    bases: list[str]
    register: str | None
    init: frozenset[str] | None | bool  # False: no __init__ of its own; None: takes **kwargs
    arbitrary: bool | None  # None: not set here
    inputs: tuple[str, ...] | None = None  # None: not set here


def _scan(path: Path, module: str) -> dict[str, _Class]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        names = [n for n in map(_decorator_name, node.decorator_list) if n]
        init: frozenset[str] | None | bool = False
        arbitrary = inputs = None
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                a = item.args
                init = None if a.kwarg else frozenset(p.arg for p in a.posonlyargs + a.args + a.kwonlyargs) - {"self"}
            targets = item.targets if isinstance(item, ast.Assign) else [item.target] if isinstance(item, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == "arbitrary_scale" for t in targets) and item.value is not None:
                arbitrary = bool(ast.literal_eval(item.value)) if isinstance(item.value, ast.Constant) else True
            if any(isinstance(t, ast.Name) and t.id == "inputs" for t in targets) and item.value is not None:
                try:
                    inputs = tuple(ast.literal_eval(item.value))
                except ValueError:  # not a literal: leave it to the live registry test
                    inputs = None
        bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases]
        out[node.name] = _Class(module, bases, names[0] if names else None, init, arbitrary, inputs)
    return out


@functools.lru_cache(maxsize=None)
def registry_arch_specs(models_dir: Path = MODELS_DIR) -> Mapping[str, ArchSpec]:
    """{registered name: ArchSpec} read from the source files of the models package."""
    by_module: dict[str, dict[str, _Class]] = {}
    for p in sorted(Path(models_dir).rglob("*.py")):  # every module, sub-packages too
        by_module[str(p.relative_to(models_dir))] = _scan(p, str(p.relative_to(models_dir)))

    def find(name: str, module: str) -> _Class | None:
        if name in by_module.get(module, {}):  # a base of the same file first, then any file
            return by_module[module][name]
        return next((classes[name] for classes in by_module.values() if name in classes), None)

    def resolve(cls: _Class, attr: str, missing: Any, seen: frozenset = frozenset()) -> Any:
        own = getattr(cls, attr)
        if own is not missing:
            return own
        for base in cls.bases:  # depth-first in base order (single inheritance here)
            parent = find(base, cls.module)
            if parent is not None and id(parent) not in seen:
                value = resolve(parent, attr, missing, seen | {id(cls)})
                if value is not missing:
                    return value
        return missing

    specs = {}
    for classes in by_module.values():
        for cls in classes.values():
            if cls.register:
                init = resolve(cls, "init", False)
                args = None if init is None or init is False else frozenset(init - GEOMETRY)
                specs[cls.register] = ArchSpec(args, bool(resolve(cls, "arbitrary", None)),
                                               tuple(resolve(cls, "inputs", None) or ("lr",)))
    return dict(sorted(specs.items()))


def live_arch_specs() -> dict[str, ArchSpec]:
    """The same table from the imported registry (inspect.signature; imports torch)."""
    import inspect

    import mrisr.models  # noqa: F401  (importing registers every architecture)
    from mrisr.models.registry import _REGISTRY

    specs = {}
    for name, cls in _REGISTRY.items():
        params = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        args = None if takes_any else frozenset(p for p in params if p != "self") - GEOMETRY
        specs[name] = ArchSpec(args, bool(getattr(cls, "arbitrary_scale", False)), tuple(getattr(cls, "inputs", ("lr",))))
    return dict(sorted(specs.items()))


# ------------------------------------------------------------------ helpers
def _integer_scale(scale: float) -> int | None:
    r = round(float(scale))
    return r if abs(float(scale) - r) < 1e-9 else None


def _fmt(scale: float) -> str:
    return f"{float(scale):g}"


def _deep_merge(base: dict, override: dict) -> dict:
    """The pipeline's merge of `overrides.<method>` into `models.<method>` (common.smk)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _method_entries(name: str, d: dict) -> Iterator[tuple[int, str, list, str]]:
    """(index, method, scales, key path of those scales) of a dataset's `methods`."""
    for i, m in enumerate(d.get("methods") or []):
        if isinstance(m, str):
            yield i, m, list(d.get("scales") or []), f"datasets.{name}.scales"
        elif isinstance(m, dict) and "name" in m:
            if "scales" in m:
                yield i, m["name"], list(m["scales"]), f"datasets.{name}.methods[{i}].scales"
            else:
                yield i, m["name"], list(d.get("scales") or []), f"datasets.{name}.scales"


# ------------------------------------------------------------------ the checks
def _check_model(where: str, cfg: dict, override: dict, override_key: str, archs: Mapping[str, ArchSpec]) -> ArchSpec:
    """arch and args of one (merged) model block; key paths point at the override when it set the value."""
    arch = cfg.get("arch")
    arch_key = f"{override_key}.arch" if "arch" in override else f"{where}.arch"
    if arch not in archs:
        raise ConfigError(arch_key, f"unknown arch {arch!r}; registered: {', '.join(archs)}")
    spec = archs[arch]
    args = cfg.get("args") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{where}.args", f"must be a mapping of argument: value, got {type(args).__name__}")
    override_args = override.get("args") or {}
    for key in args:
        key_path = f"{override_key}.args.{key}" if key in override_args else f"{where}.args.{key}"
        if key in GEOMETRY:
            raise ConfigError(key_path, f"{key!r} comes from the patch store (the dataset's scale and task), "
                                        f"not from model args")
        if spec.args is not None and key not in spec.args:
            raise ConfigError(key_path, f"arch {arch!r} has no argument {key!r}; accepted: {', '.join(sorted(spec.args))}")
    train, override_train = cfg.get("train") or {}, override.get("train") or {}
    if train.get("steps") is not None and train.get("epochs") is not None:
        key = next((f"{override_key}.train.{k}" for k in ("epochs", "steps") if k in override_train),
                   f"{where}.train.epochs")
        raise ConfigError(key, "give train.steps or train.epochs, not both (null unsets one in an override)")
    store = cfg.get("store", "patches")
    if store == HR_STORE and not spec.arbitrary_scale:
        store_key = f"{override_key}.store" if "store" in override else f"{where}.store"
        raise ConfigError(store_key, f"store: hr makes LR at any scale, but arch {arch!r} is fixed-scale "
                                     f"(only arbitrary-scale archs: {', '.join(a for a, s in archs.items() if s.arbitrary_scale)})")
    return spec


def _check_scales(name: str, d: dict, method: str, cfg: dict, spec: ArchSpec, scales: list, scales_key: str) -> None:
    """A trained model at each of its scales: the patch store and the architecture must allow it."""
    store = cfg.get("store", "patches")
    if store == HR_STORE:
        return  # trained once on HR patches, evaluated at any scale >= 1 (the schema's minimum)
    patches = d.get("patches") or {}
    lr_patch = patches.get("lr_patch")
    hr_patch = list(patches.get("hr_patch", DEFAULT_HR_PATCH))
    for s in scales:
        s_int = _integer_scale(s)
        if not spec.arbitrary_scale and (s_int is None or s_int < 2):
            raise ConfigError(scales_key, f"scale {_fmt(s)} for method {method!r}: arch {cfg.get('arch')!r} is "
                                          f"fixed-scale and needs an integer scale >= 2 (give the method its own "
                                          f"`scales` in `methods` to run it at some scales only)")
        if s_int is None:
            raise ConfigError(scales_key, f"scale {_fmt(s)} for method {method!r}: its {store!r} patch store is cut "
                                          f"at one integer scale; non-integer scales need an arbitrary-scale model "
                                          f"with store: hr")
        if lr_patch is not None:
            continue  # HR = lr_patch × s: whole at every integer scale
        bad = [p for p in hr_patch if p % s_int]
        if bad:
            raise ConfigError(f"datasets.{name}.patches.hr_patch",
                              f"{hr_patch} is not divisible by scale {s_int} (method {method!r}): every HR patch "
                              f"size must be a multiple of each scale a model trains at")


def _check_dataset(name: str, d: dict, config: dict, archs: Mapping[str, ArchSpec]) -> None:
    models = config.get("models") or {}
    datasets = config.get("datasets") or {}
    overrides = d.get("overrides") or {}
    entries = list(_method_entries(name, d))
    run = [m for _, m, _, _ in entries]

    for target in overrides:  # an override nobody reads is a silent typo
        key = f"datasets.{name}.overrides.{target}"
        if target not in models:
            raise ConfigError(key, f"no model named {target!r} under `models` (models: {', '.join(models) or 'none'})")
        if target not in run:
            raise ConfigError(key, f"dataset {name!r} does not run method {target!r} (its methods: {', '.join(run)}); "
                                   f"the override would be ignored")

    axes = list((d.get("degradation") or {}).get("axes", DEFAULT_AXES))
    patches = d.get("patches") or {}
    if d.get("train_from") is not None:
        _check_external(name, d, config, archs)
    elif "lr_patch" in patches and "hr_patch" in patches:
        raise ConfigError(f"datasets.{name}.patches.lr_patch",
                          "give hr_patch (one HR size at every scale) or lr_patch (HR = lr_patch × scale), not both")
    size_key = "lr_patch" if "lr_patch" in patches else "hr_patch"
    sizes = list(patches.get(size_key, DEFAULT_HR_PATCH))
    if d.get("train_from") is None and len(sizes) != len(axes):
        raise ConfigError(f"datasets.{name}.patches.{size_key}",
                          f"{sizes} needs one size per degraded axis (degradation.axes {axes})")
    _check_split(name, d)
    if d.get("kind") == "multicontrast" and not d.get("reference"):
        raise ConfigError(f"datasets.{name}.reference", "kind multicontrast needs a reference series")
    mode = (d.get("degradation") or {}).get("mode", "truncate")
    if mode == "nearest":
        odd = [s for s in d.get("scales") or [] if _integer_scale(s) is None]
        if odd:
            raise ConfigError(f"datasets.{name}.scales", f"scale {_fmt(odd[0])}: degradation mode nearest "
                                                        f"(decimation) needs integer scales")

    _check_train_only(name, d, entries)
    src = d.get("train_from")
    if src is not None and (src not in datasets or datasets[src].get("train_from")):
        raise ConfigError(f"datasets.{name}.train_from", f"{src!r} is not a dataset that trains models "
                                                          f"(datasets: {', '.join(datasets)})")
    own = {float(s) for s in d.get("scales") or []}
    for i, method, scales, scales_key in entries:
        entry_key = f"datasets.{name}.methods[{i}]"
        if not {float(s) for s in scales} <= own:
            raise ConfigError(scales_key, f"method {method!r} asks for scales {scales} outside the dataset's "
                                          f"scales {sorted(own)}")
        if method in INTERPOLATIONS:
            continue
        if method not in models:
            raise ConfigError(entry_key, f"{method!r} is neither an interpolation ({', '.join(sorted(INTERPOLATIONS))}) "
                                         f"nor a key of `models`")
        owner = src if src in datasets and not datasets[src].get("train_from") else name  # whose overrides apply
        override = (datasets[owner].get("overrides") or {}).get(method) or {}
        cfg = _deep_merge(models[method], override)
        spec = _check_model(f"models.{method}", cfg, override, f"datasets.{owner}.overrides.{method}", archs)
        if src is None:
            _check_scales(name, d, method, cfg, spec, scales, scales_key)
            if "lr_patch" in (d.get("patches") or {}) and cfg.get("store", "patches") == HR_STORE:
                raise ConfigError(f"datasets.{name}.patches.lr_patch",
                                  f"method {method!r} trains on HR-only patches (store: hr), which have no LR "
                                  f"size: give hr_patch")
            _check_init_from(name, method, cfg, override, scales, config, archs)
            continue
        # External test set: it evaluates the models `src` trains, at the same scales.
        src_entries = {m: [float(s) for s in sc] for _, m, sc, _ in _method_entries(src, datasets[src])}
        if method not in src_entries:
            raise ConfigError(entry_key, f"method {method!r} is evaluated on models trained on {src!r} "
                                         f"(train_from), which does not run it")
        src_store = _deep_merge(models[method], (datasets[src].get("overrides") or {}).get(method) or {}).get("store")
        missing = [s for s in scales if float(s) not in src_entries[method]]
        if missing and src_store != HR_STORE:
            raise ConfigError(scales_key, f"method {method!r} at scale {_fmt(missing[0])}: {src!r} (train_from) "
                                          f"trains it only at {', '.join(map(_fmt, src_entries[method]))}")


DIMS_OF_KIND = {"cine": 2, "multicontrast": 2, "slices": 2, "volume": 3}
# what a dataset kind gives a model at evaluation besides the LR image (models' `inputs`)
INPUTS_OF_KIND = {"cine": {"lr", "phase"}, "multicontrast": {"lr", "ref"}, "slices": {"lr"}, "volume": {"lr"}}
INPUT_NAMES = {"ref": "an HR reference contrast (kind multicontrast)", "phase": "cardiac phases (kind cine)"}
DEGRADATION_DEFAULTS = {"mode": "truncate", "window": "none", "axes": DEFAULT_AXES}


def _check_external(name: str, d: dict, config: dict, archs: Mapping[str, ArchSpec]) -> None:
    """An external test set (train_from) evaluates the training dataset's models as they were
    trained: the same degradation, 2D or 3D as they are, no overrides of its own, a reference
    contrast where a model reads one. (Its methods and scales: _check_dataset.)"""
    datasets, models = config.get("datasets") or {}, config.get("models") or {}
    src = d["train_from"]
    if src not in datasets or datasets[src].get("train_from"):
        return  # reported by _check_dataset, naming the key
    if d.get("overrides"):
        raise ConfigError(f"datasets.{name}.overrides", f"an external test set evaluates the models trained on "
                                                         f"{src!r} (train_from) as they are: set overrides there")
    if DIMS_OF_KIND.get(d.get("kind")) != DIMS_OF_KIND.get(datasets[src].get("kind")):
        raise ConfigError(f"datasets.{name}.kind", f"{d.get('kind')!r} is {DIMS_OF_KIND.get(d.get('kind'))}D, the "
                                                   f"models of {src!r} (kind {datasets[src].get('kind')!r}) are "
                                                   f"{DIMS_OF_KIND.get(datasets[src].get('kind'))}D")
    mine, theirs = d.get("degradation") or {}, datasets[src].get("degradation") or {}
    for key, default in DEGRADATION_DEFAULTS.items():
        a, b = mine.get(key, default), theirs.get(key, default)
        if a != b:
            raise ConfigError(f"datasets.{name}.degradation.{key}",
                              f"{a!r}, but the models come from {src!r} (train_from), trained with {key} {b!r}: "
                              f"a transfer check degrades the way each model was trained")
    have = INPUTS_OF_KIND.get(d.get("kind"), {"lr"})
    for i, method, _scales, _key in _method_entries(name, d):
        if method in INTERPOLATIONS or method not in models:
            continue
        arch = _deep_merge(models[method], (datasets[src].get("overrides") or {}).get(method) or {}).get("arch")
        lacking = [k for k in (archs[arch].inputs if arch in archs else ()) if k not in have]
        if lacking:
            raise ConfigError(f"datasets.{name}.methods[{i}]",
                              f"{method!r} (arch {arch!r}) reads {INPUT_NAMES.get(lacking[0], lacking[0])}, which a "
                              f"{d.get('kind')} dataset does not have")


def _check_train_only(name: str, d: dict, entries: list[tuple[int, str, list, str]]) -> None:
    """A pretraining set (train_only) trains models and evaluates nothing: an external test set
    (train_from) trains nothing, and an interpolation would be neither trained nor evaluated."""
    if not d.get("train_only"):
        return
    if d.get("train_from") is not None:
        raise ConfigError(f"datasets.{name}.train_only", "a train-only set trains models and an external test "
                                                          "set (train_from) only evaluates them: not both")
    for i, method, _scales, _key in entries:
        if method in INTERPOLATIONS:
            raise ConfigError(f"datasets.{name}.methods[{i}]", f"{method!r} is an interpolation: a train-only "
                                                               f"dataset would neither train nor evaluate it")


def _check_split(name: str, d: dict) -> None:
    """A split file must exist at start-up (its subjects are checked by the split job)."""
    split = d.get("split")
    if isinstance(split, dict) and "file" in split and not Path(split["file"]).is_file():
        raise ConfigError(f"datasets.{name}.split.file", f"split file not found: {split['file']}")


def _check_init_from(name: str, method: str, cfg: dict, override: dict, scales: list, config: dict,
                     archs: Mapping[str, ArchSpec]) -> None:
    """`init_from` names a model the pipeline trains, of the same arch, at a scale it trains
    (the train job's input), and not this model itself."""
    init = cfg.get("init_from")
    if not init:
        return
    key = (f"datasets.{name}.overrides.{method}.init_from" if "init_from" in override
           else f"models.{method}.init_from")
    datasets, models = config.get("datasets") or {}, config.get("models") or {}
    src, src_method = init.get("dataset"), init.get("method")
    if src not in datasets or datasets[src].get("train_from"):
        raise ConfigError(key, f"dataset {src!r} is not a dataset that trains models (datasets: {', '.join(datasets)})")
    src_entries = {m: [float(s) for s in sc] for _, m, sc, _ in _method_entries(src, datasets[src])}
    if src_method not in src_entries or src_method in INTERPOLATIONS:
        raise ConfigError(key, f"dataset {src!r} does not train method {src_method!r}")
    if (src, src_method) == (name, method):
        raise ConfigError(key, "a model cannot be initialised from itself")
    src_cfg = _deep_merge(models[src_method], (datasets[src].get("overrides") or {}).get(src_method) or {})
    if src_cfg.get("arch") != cfg.get("arch"):
        raise ConfigError(key, f"{src}/{src_method} is arch {src_cfg.get('arch')!r}, this model {cfg.get('arch')!r}: "
                               f"weights cannot carry over")
    if src_cfg.get("init_from"):
        raise ConfigError(key, f"{src}/{src_method} has an init_from itself; chains are not supported")
    if (cfg.get("store") == HR_STORE) != (src_cfg.get("store") == HR_STORE):
        raise ConfigError(key, "an arbitrary-scale model (store: hr) initialises from another one, a fixed-scale "
                               "model from a fixed-scale one")
    if cfg.get("store") == HR_STORE and "scale" in init:
        raise ConfigError(f"{key}.scale", "an arbitrary-scale model starts from the source's any/ model: no scale")
    if cfg.get("store") != HR_STORE:
        wanted = [float(init["scale"])] if "scale" in init else [float(s) for s in scales]
        missing = [s for s in wanted if s not in src_entries[src_method]]
        if missing:
            raise ConfigError(key, f"{src}/{src_method} is not trained at scale {_fmt(missing[0])} "
                                   f"(set init_from.scale to one of {', '.join(map(_fmt, src_entries[src_method]))})")


def check_config(config: dict, archs: Mapping[str, ArchSpec] | None = None) -> None:
    """Raise ConfigError (one line naming the key path) for the first start-up error of
    `config`; return None when there is none. `archs` defaults to the model registry."""
    archs = registry_arch_specs() if archs is None else archs
    if not isinstance(config, dict):
        raise ConfigError("(top level)", f"the config must be a mapping, got {type(config).__name__}")
    for method, block in (config.get("models") or {}).items():
        if not isinstance(block, dict):
            raise ConfigError(f"models.{method}", f"must be a mapping with at least `arch`, got {block!r}")
        _check_model(f"models.{method}", block, {}, "", archs)
    datasets = config.get("datasets") or {}
    if not isinstance(datasets, dict) or not datasets:
        raise ConfigError("datasets", "at least one dataset is needed")
    for name, d in datasets.items():
        if not isinstance(d, dict):
            raise ConfigError(f"datasets.{name}", f"must be a mapping, got {d!r}")
        _check_dataset(name, d, config, archs)
    if all(d.get("train_only") for d in datasets.values()):
        # summary.csv and every table are built from evaluations: with none, `all` has nothing to end in
        raise ConfigError("datasets", "every dataset is train_only: nothing would be evaluated "
                                      "(a pretraining set needs a dataset that uses it)")
