# prepared/{subject}/{target}.nii.gz -> lr/{degradation}/x{scale}/{subject}.nii.gz (+ sidecar with the grid)


rule degrade:
    input:
        "results/{dataset}/prepared/{subject}/manifest.json",
    output:
        nii="results/{dataset}/lr/{degradation}/x{scale}/{subject}.nii.gz",
        sidecar="results/{dataset}/lr/{degradation}/x{scale}/{subject}.json",
    params:
        hr=lambda wc: f"results/{wc.dataset}/prepared/{wc.subject}/{ds(wc.dataset)['target']}.nii.gz",
        deg=lambda wc: ds(wc.dataset)["degradation"],
        meta=lambda wc: json.dumps({"dataset": wc.dataset, "subject": wc.subject, "series": ds(wc.dataset)["target"]}),
    log:
        "logs/degrade/{dataset}/{degradation}/x{scale}/{subject}.log",
    shell:
        "{MRISR} degrade --hr {params.hr} --out {output.nii} --mode {params.deg[mode]}"
        " --scale {wildcards.scale} --axes {params.deg[axes]} --window {params.deg[window]}"
        " --meta {params.meta:q} > {log} 2>&1"


rule motion:
    """Motion-simulated HR (rigid + shrinking deformation); used by the UDEAN experiments."""
    input:
        "results/{dataset}/prepared/{subject}/manifest.json",
    output:
        "results/{dataset}/motion/{subject}.nii.gz",
    params:
        hr=lambda wc: f"results/{wc.dataset}/prepared/{wc.subject}/{ds(wc.dataset)['target']}.nii.gz",
        ranges=lambda wc: json.dumps(ds(wc.dataset).get("motion", {})),
        seed=config["seed"],
        meta=lambda wc: json.dumps({"dataset": wc.dataset, "subject": wc.subject, "series": ds(wc.dataset)["target"]}),
    log:
        "logs/motion/{dataset}/{subject}.log",
    shell:
        "{MRISR} motion --hr {params.hr} --out {output} --ranges {params.ranges:q} --seed {params.seed}"
        " --subject {wildcards.subject} --meta {params.meta:q} > {log} 2>&1"
