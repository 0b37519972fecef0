"""The commit recorded on every version (``tracking.git_commit``): git's answer in a checkout, the
``MLOPS_GIT_COMMIT`` setting where no ``.git`` exists (containers), "unknown" only when neither is there."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlops.settings import Settings
from mlops.tracking import git_commit

REPO = Path(__file__).resolve().parents[2]


def test_in_the_repository_the_commit_is_gits() -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    commit = git_commit(REPO)
    assert commit != "unknown" and commit.removesuffix("-dirty") == head.stdout.strip()


def test_without_git_the_build_argument_is_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_GIT_COMMIT", "0123abcd" * 5)  # what the Dockerfile's ENV sets
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path
    settings = Settings()
    assert settings.git_commit == "0123abcd" * 5
    assert git_commit(tmp_path, fallback=settings.git_commit) == "0123abcd" * 5
    assert git_commit(tmp_path) == "unknown"  # nothing to tell: said so, never a guess
