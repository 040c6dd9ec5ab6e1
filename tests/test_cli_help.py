"""`mrisr --help` is complete: every option of every sub-command has help text; `--version` works."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mrisr.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_option_of_every_subcommand_has_help() -> None:
    parser = build_parser()
    subs = subcommands(parser)
    assert len(subs) >= 20  # the walk really sees the sub-commands
    missing = [f"{name} {opt.option_strings[0] if opt.option_strings else opt.dest}"
               for name, sub in subs.items() for opt in sub._actions if not (opt.help or "").strip()]
    assert not missing, f"options without help text: {missing}"
    missing_top = [a.dest for a in parser._actions if not (a.help or "").strip()]
    assert not missing_top, missing_top
    # the sub-commands themselves carry a one-line description in `mrisr --help`
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert {c.dest for c in action._choices_actions if (c.help or "").strip()} == set(subs)


def test_defaults_show_in_help(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 12)" in out and "(default: [0.5, 99.5])" in out


def test_version_prints_the_package_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    run = subprocess.run([sys.executable, "-m", "mrisr", "--version"], capture_output=True, text=True, timeout=120,
                         cwd=REPO, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"mrisr {version}"
