"""MINet's published fastMRI pair lists as shipped (config/minet_fastmri/) and how the reader finds them."""
from pathlib import Path

import pytest

from mrisr.datasets.fastmri import FastmriReader, read_pairs
from mrisr.datasets.split import read_split_file

REPO = Path(__file__).resolve().parents[1]
LISTS = REPO / "config" / "minet_fastmri"


def test_pairs_and_split_are_the_published_227_plus_45():
    pairs = read_pairs(LISTS / "pairs.csv")
    assert len(pairs) == 272 and len({f for p in pairs for f in p}) == 544  # no file in two pairs
    pd_of = [pd for pd, _ in pairs]
    split = read_split_file(LISTS / "split.yaml")
    assert [len(split[k]) for k in ("train", "val", "test")] == [215, 12, 45]
    assert set(split["train"]) | set(split["val"]) == set(pd_of[:227])  # the official training list
    assert split["test"] == pd_of[227:]  # the official evaluation list, in its order
    assert not set(split["train"]) & set(split["val"])


def test_relative_pairs_path_prefers_the_raw_folder_then_the_working_directory(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "p.csv").write_text("a,b\n")
    monkeypatch.chdir(tmp_path)
    reader = FastmriReader(pairs="lists/p.csv")
    assert reader._pairs_path(raw) == Path("lists/p.csv")  # only in the working directory
    (raw / "lists").mkdir()
    (raw / "lists" / "p.csv").write_text("c,d\n")
    assert reader._pairs_path(raw) == raw / "lists" / "p.csv"  # a list shipped with the data wins
    with pytest.raises(Exception, match="not found|unreadable"):
        FastmriReader(pairs="none.csv")._pair_map(raw)
