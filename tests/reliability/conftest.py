"""The reliability suite: the whole system attacked the way production will (issue 6).

Every test records what it measured through the ``figures`` fixture (requests, errors, p99, faults
survived, cases tried). pytest prints them at the end of the run; with ``MLOPS_RELIABILITY_OUT`` set
(``make reliability`` does) they are also written there as JSON, the source of docs/reliability.md.
``MLOPS_RELIABILITY_FULL=1`` selects the full-length variants (60 s of load instead of a short run).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FULL = os.environ.get("MLOPS_RELIABILITY_FULL") == "1"
_FIGURES: dict[str, dict[str, Any]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(requests=..., errors=..., p99_ms=...)`` records this test's measurements."""

    def record(**values: Any) -> None:
        _FIGURES.setdefault(request.node.nodeid, {}).update(values)

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for test, values in _FIGURES.items():
        terminalreporter.write_line(f"{test}: {json.dumps(values, sort_keys=True)}")
    if out := os.environ.get("MLOPS_RELIABILITY_OUT"):
        run = {"full": FULL, "commit": _commit(), "date": time.strftime("%Y-%m-%d", time.gmtime())}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({**run, "tests": _FIGURES}, indent=1, sort_keys=True) + "\n")


def _commit() -> str:
    """The commit the figures were measured on (``+changes`` when src/ or tests/ differ from it), for the
    generated table in docs/reliability.md (benchmarks/tables.py)."""
    root = Path(__file__).resolve().parents[2]
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        return "unknown"
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no", "--", "src", "tests"],
        capture_output=True,
        text=True,
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
