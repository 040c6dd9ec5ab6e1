# lr/ + prepared/ + split.json -> patches/{task}-x{scale}_{split}.h5


rule patches:
    input:
        lr=all_lr,
        split="results/{dataset}/split.json",
    output:
        "results/{dataset}/patches/{task}-x{scale}_{split}.h5",
    params:
        lr_dir=lr_dir,
        p=lambda wc: ds(wc.dataset)["patches"],
        n=lambda wc: ds(wc.dataset)["patches"][f"{wc.split}_per_subject"],
        ref=lambda wc: f"--reference {ds(wc.dataset)['reference']}" if ds(wc.dataset).get("reference") else "",
        clip=lambda wc: "--clip {} {}".format(*re.fullmatch(r"vsr(\d+)w(\d+)", wc.task).groups())
        if wc.task.startswith("vsr") else "",
        seed=config["seed"],
    log:
        "logs/patches/{dataset}/{task}-x{scale}_{split}.log",
    shell:
        "{MRISR} patches --task {wildcards.task} --split-file {input.split} --split {wildcards.split}"
        " --lr-dir {params.lr_dir} --scale {wildcards.scale} --hr-patch {params.p[hr_patch]}"
        " --n-per-subject {params.n} --fg-fraction {params.p[fg_fraction]} --seed {params.seed} {params.ref} {params.clip}"
        " --out {output} > {log} 2>&1"
