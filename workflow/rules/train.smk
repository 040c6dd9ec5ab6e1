# Stage train: patch stores -> models/{dataset}/{method}/{scale_dir}/ (model.pt written last;
# ckpt/ survives failed jobs). scale_dir is x{scale} for a fixed-scale model (pair, clip or UDEAN
# group stores) and `any` for an arbitrary-scale model (store: hr), trained ONCE per dataset on
# HR-only stores with the dataset's degradation applied on the fly at a per-minibatch scale.


rule train:
    input:
        train=lambda wc: get_train_store(wc, "train"),
        val=lambda wc: get_train_store(wc, "val"),
        init=get_init_model,
    output:
        model="results/models/{dataset}/{method}/{scale_dir}/model.pt",
        log_csv="results/models/{dataset}/{method}/{scale_dir}/log.csv",
        card="results/models/{dataset}/{method}/{scale_dir}/card.md",
        curves=report("results/models/{dataset}/{method}/{scale_dir}/curves.png", caption="../report/curves.rst",
                      category="Training curves", subcategory="{dataset}",
                      labels={"method": "{method}", "scale": "{scale_dir}"}),
    params:
        cfg=get_train_config,
        seed=config["seed"],
        device=config["device"],
        init=get_init_arg,
    threads: get_threads
    resources:
        gpu=get_gpus,
    log:
        "logs/train/{dataset}/{method}/{scale_dir}.log",
    benchmark:
        "benchmarks/train/{dataset}/{method}/{scale_dir}.tsv"
    conda:
        get_train_env()
    shell:
        "python -m mrisr train --model-config {params.cfg:q} --train {input.train} --val {input.val}"
        " --out-dir results/models/{wildcards.dataset}/{wildcards.method}/{wildcards.scale_dir}"
        " --seed {params.seed} --device {params.device} --threads {threads} {params.init} > {log} 2>&1"
