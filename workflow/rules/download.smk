# raw: {url, sha256, auth_env} or {archive, sha256} -> resources/raw/{dataset}/ (+ download.json, written last)

# Downloads run where Snakemake runs: compute nodes often have no internet access.
localrules:
    download,


DOWNLOAD_KEYS = ("url", "sha256", "auth_env", "archive")


def archive_inputs(wc):
    """A hand-fetched archive is an input: Snakemake names it when it is missing."""
    archive = ds(wc.dataset)["raw"].get("archive")
    return [] if archive is None else [archive] if isinstance(archive, str) else list(archive)


rule download:
    """Fetch (resuming), verify sha256 before extracting, extract safely; download.json last.
    Downloads are kept in resources/downloads/{dataset}/ (a failed job keeps its .part file)."""
    input:
        archive_inputs,
    output:
        "resources/raw/{dataset}/download.json",
    params:
        # Only the source keys: a changed URL or checksum reruns the download, nothing else does.
        # auth_env is the variable's NAME; its value never reaches the command line or the log.
        spec=lambda wc: json.dumps({k: v for k, v in ds(wc.dataset)["raw"].items() if k in DOWNLOAD_KEYS},
                                   sort_keys=True),
    log:
        "logs/download/{dataset}.log",
    shell:
        "{MRISR} download --spec {params.spec:q} --out-dir resources/raw/{wildcards.dataset}"
        " --cache-dir resources/downloads/{wildcards.dataset} > {log} 2>&1"
