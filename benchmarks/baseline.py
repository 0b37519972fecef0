"""The source of a baseline commit, for a benchmark that runs it beside the working tree.

``git archive`` of ``src/`` into a folder of the caller's: no work tree, nothing written to the
repository. The benchmark puts the folder first on ``PYTHONPATH`` of a subprocess, so the baseline
runs with this checkout's pinned dependencies.
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
