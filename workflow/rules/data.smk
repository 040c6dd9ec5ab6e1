# raw -> inventory (checkpoint) -> prepared/{subject}/ -> split.json
# raw comes from `synth` (built-in), `download` (url/archive, download.smk) or an existing `dir`.


include: "download.smk"


rule synth:
    """Built-in data written in the layout of the real source it stands in for."""
    output:
        "resources/raw/{dataset}/manifest.json",
    params:
        synth=lambda wc: ds(wc.dataset)["raw"]["synth"],
        synth_params=lambda wc: json.dumps(ds(wc.dataset)["raw"]["synth"].get("params", {}), sort_keys=True),
        seed=config["seed"],
    log:
        "logs/synth/{dataset}.log",
    shell:
        "{MRISR} synth --kind {params.synth[kind]} --out resources/raw/{wildcards.dataset}"
        " --n-subjects {params.synth[n_subjects]} --seed {params.seed}"
        " --params {params.synth_params:q} > {log} 2>&1"


def raw_dir(dataset):
    raw = ds(dataset)["raw"]
    return raw["dir"] if "dir" in raw else f"resources/raw/{dataset}"


def raw_marker(wc):
    """The file whose presence means the raw folder is complete (none for a user's `dir`)."""
    raw = ds(wc.dataset)["raw"]
    if "dir" in raw:
        return []
    marker = "manifest.json" if "synth" in raw else "download.json"
    return f"resources/raw/{wc.dataset}/{marker}"


checkpoint inventory:
    input:
        raw_marker,
    output:
        "results/{dataset}/inventory.json",
    params:
        raw=lambda wc: raw_dir(wc.dataset),
        reader=lambda wc: ds(wc.dataset)["reader"],
        options=lambda wc: json.dumps(ds(wc.dataset)["reader_options"]),
        exclude=lambda wc: ds(wc.dataset)["exclude_subjects"],
    log:
        "logs/inventory/{dataset}.log",
    shell:
        "{MRISR} inventory --reader {params.reader} --reader-options {params.options:q}"
        " --raw {params.raw:q} --exclude {params.exclude} --out {output} > {log} 2>&1"


rule prepare:
    input:
        raw_marker,
        inventory="results/{dataset}/inventory.json",
    output:
        "results/{dataset}/prepared/{subject}/manifest.json",
    params:
        raw=lambda wc: raw_dir(wc.dataset),
        reader=lambda wc: ds(wc.dataset)["reader"],
        options=lambda wc: json.dumps(ds(wc.dataset)["reader_options"]),
        prep=lambda wc: ds(wc.dataset)["prepare"],
    log:
        "logs/prepare/{dataset}/{subject}.log",
    shell:
        "{MRISR} prepare --reader {params.reader} --reader-options {params.options:q} --raw {params.raw:q}"
        " --subject {wildcards.subject} --dataset {wildcards.dataset}"
        " --out-dir results/{wildcards.dataset}/prepared/{wildcards.subject}"
        " --percentiles {params.prep[percentiles]} --crop-multiple {params.prep[crop_multiple]}"
        " --crop-axes {params.prep[crop_axes]} > {log} 2>&1"


rule split:
    input:
        "results/{dataset}/inventory.json",
    output:
        "results/{dataset}/split.json",
    params:
        # An external test set (train_from) puts every subject in test.
        ratios=lambda wc: [0, 0, 1] if ds(wc.dataset).get("train_from") else ds(wc.dataset)["split"],
        seed=config["seed"],
    log:
        "logs/split/{dataset}.log",
    shell:
        "{MRISR} split --inventory {input} --ratios {params.ratios} --seed {params.seed}"
        " --dataset {wildcards.dataset} --out {output} > {log} 2>&1"
