# Stage data: raw -> inventory (checkpoint) -> prepared/{subject}/ -> split.json (-> groups.json).
# raw comes from `synth` (built-in), `download` (url/archive) or an existing `dir`.


rule synth:
    """Built-in data written in the layout of the real source it stands in for."""
    output:
        "resources/raw/{dataset}/manifest.json",
    params:
        synth=lambda wc: ds(wc.dataset)["raw"]["synth"],
        synth_params=get_synth_params,
        seed=config["seed"],
    log:
        "logs/synth/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mrisr synth --kind {params.synth[kind]} --out resources/raw/{wildcards.dataset}"
        " --n-subjects {params.synth[n_subjects]} --seed {params.seed}"
        " --params {params.synth_params:q} > {log} 2>&1"


rule download:
    """raw: {url, sha256, auth_env} or {archive, sha256} -> resources/raw/{dataset}/ (+ download.json, last).
    Fetch (resuming), verify sha256 before extracting, extract safely. Downloads are kept in
    resources/downloads/{dataset}/ (a failed job keeps its .part file). A local rule: compute
    nodes often have no internet access."""
    input:
        get_archives,
    output:
        "resources/raw/{dataset}/download.json",
    params:
        spec=get_download_spec,
    log:
        "logs/download/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mrisr download --spec {params.spec:q} --out-dir resources/raw/{wildcards.dataset}"
        " --cache-dir resources/downloads/{wildcards.dataset} > {log} 2>&1"


checkpoint inventory:
    input:
        get_raw_marker,
    output:
        "results/{dataset}/inventory.json",
    params:
        raw=get_raw_dir,
        reader=lambda wc: ds(wc.dataset)["reader"],
        options=get_reader_options,
        exclude=lambda wc: ds(wc.dataset)["exclude_subjects"],
    log:
        "logs/inventory/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mrisr inventory --reader {params.reader} --reader-options {params.options:q}"
        " --raw {params.raw:q} --exclude {params.exclude} --out {output} > {log} 2>&1"


rule prepare:
    """Writes prepared/{subject}/{series}.nii.gz + .json for each series, then manifest.json (the
    list of them) last: the manifest is the declared output that stands for the subject's series."""
    input:
        get_raw_marker,
        inventory="results/{dataset}/inventory.json",
    output:
        "results/{dataset}/prepared/{subject}/manifest.json",
    params:
        raw=get_raw_dir,
        reader=lambda wc: ds(wc.dataset)["reader"],
        options=get_reader_options,
        prep=lambda wc: ds(wc.dataset)["prepare"],
    log:
        "logs/prepare/{dataset}/{subject}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mrisr prepare --reader {params.reader} --reader-options {params.options:q} --raw {params.raw:q}"
        " --subject {wildcards.subject} --dataset {wildcards.dataset}"
        " --out-dir results/{wildcards.dataset}/prepared/{wildcards.subject}"
        " --percentiles {params.prep[percentiles]} --crop-multiple {params.prep[crop_multiple]}"
        " --crop-axes {params.prep[crop_axes]} > {log} 2>&1"


rule split:
    input:
        inventory="results/{dataset}/inventory.json",
        subjects=get_split_file,
    output:
        "results/{dataset}/split.json",
    params:
        split=get_split_args,
        seed=config["seed"],
    log:
        "logs/split/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mrisr split --inventory {input.inventory} {params.split} --seed {params.seed}"
        " --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


checkpoint groups:
    """UDEAN data groups: split.json's train subjects divided into a target and a disjoint source
    group (val/test copied)."""
    input:
        "results/{dataset}/split.json",
    output:
        "results/{dataset}/groups.json",
    params:
        fraction=lambda wc: ds(wc.dataset)["source_fraction"],
        seed=config["seed"],
    log:
        "logs/groups/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mrisr groups --split-file {input} --source-fraction {params.fraction} --seed {params.seed}"
        " --dataset {wildcards.dataset} --out {output} > {log} 2>&1"
