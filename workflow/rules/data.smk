# Stage data: raw -> inventory.json -> prepared/{subject}/ + prepared.json -> split.json (-> groups.json).
# prepare is one job per dataset (mrisr.batch): the job count grows with datasets, not subjects.
# raw comes from `synth` (built-in), `download` (url/archive), `installed` (real scans inside
# installed packages) or an existing `dir`.


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


rule installed:
    """raw: {installed: [{package, path, sha256}]} -> resources/raw/{dataset}/{subject}/ (+ installed.json,
    last): real scans shipped inside installed Python packages (nibabel, dipy), each checked against its
    sha256 before anything is copied and given a NOTICE.md (provenance, the package's licence).
    A local rule: seconds of copying, no cluster job needed."""
    output:
        "resources/raw/{dataset}/installed.json",
    params:
        spec=get_installed_spec,
    log:
        "logs/installed/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mrisr install-scans --spec {params.spec:q} --out-dir resources/raw/{wildcards.dataset} > {log} 2>&1"


rule inventory:
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
    """Every subject of the inventory in one job (one job per dataset, not per subject): writes
    prepared/{subject}/{series}.nii.gz + .json for each series and the subject's manifest.json,
    then prepared.json (the subject list) last: the declared output that stands for them all.
    A bad subject fails the job with one line naming its file, after the others are written."""
    input:
        get_raw_marker,
        inventory="results/{dataset}/inventory.json",
    output:
        "results/{dataset}/prepared.json",
    params:
        raw=get_raw_dir,
        reader=lambda wc: ds(wc.dataset)["reader"],
        options=get_reader_options,
        prep=lambda wc: ds(wc.dataset)["prepare"],
    resources:
        runtime=240,  # minutes: every subject of the dataset in one job (Slurm)
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mrisr prepare --reader {params.reader} --reader-options {params.options:q} --raw {params.raw:q}"
        " --subjects {input.inventory} --dataset {wildcards.dataset}"
        " --out-root results/{wildcards.dataset}/prepared --manifest {output}"
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


rule groups:
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
