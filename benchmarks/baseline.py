"""The source of a baseline commit, for a benchmark that runs it beside the working tree.

``git archive`` of ``src/`` (and, with ``export_tree``, the test-fixture builders in
``tests/support/``) into a folder of the caller's: no work tree, nothing written to the repository.
The benchmark puts the folder first on ``PYTHONPATH`` of a subprocess, so the baseline runs with
this checkout's pinned dependencies.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export_src(commit: str, dest: Path) -> Path:
    """``src/`` of ``commit`` under ``dest`` (created); returns the folder that holds ``mlops``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def export_tree(
    commit: str, dest: Path, paths: tuple[str, ...] = ("src", "tests/__init__.py", "tests/support")
) -> Path:
    """``paths`` of ``commit`` under ``dest`` (created), those the commit has; returns ``dest``, the
    folder to put on ``PYTHONPATH`` beside ``dest / "src"`` (``tests.support`` importable there)."""
    dest.mkdir(parents=True, exist_ok=True)
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", commit, *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    present = [p for p in paths if p in set(listed.stdout.split())]
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, *present], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest
