"""`mlops ci summary` and `mlops ci approver`, as the workflows call them (a process each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parents[1] / "fixtures" / "github"


def mlops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_approver_is_the_environment_reviewer_and_nobody_is_an_error(tmp_path) -> None:
    out = mlops("ci", "approver", str(FIXTURES / "run_approvals.json"), "--environment", "production")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ana-reviewer\n"  # the whole stdout: it is captured by $(...) in the workflow
    (tmp_path / "none.json").write_text("[]")
    refused = mlops("ci", "approver", str(tmp_path / "none.json"), "--environment", "production")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "no reviewer approved environment 'production'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_summary_leads_with_the_decision_and_its_interval() -> None:
    out = mlops(
        "ci", "summary", str(FIXTURES / "train_result.json"), "--title", "PR #42", "--note", "dry run"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:4] == ["## PR #42", "", "dry run", ""]
    assert lines[4].startswith("**Decision: kept** → `staging`: f1_macro +0.0040 [95% CI")
    assert (
        "f1_macro difference (challenger - champion): +0.0040, 95% interval [-0.0110, +0.0190]; "
        "2000 paired bootstrap resamples of 600 rows; test: superiority"
    ) in lines
    assert "| roc_auc | 0.8634 |" in lines and "challenger 0.7791 · champion 0.7751" in lines
    assert "`readmission-classifier-pr-42` v2" in out.stdout


def test_summary_of_a_failed_or_garbled_training(tmp_path) -> None:
    empty = tmp_path / "train.json"
    empty.write_text("")
    out = mlops("ci", "summary", str(empty))
    assert out.returncode == 0 and "No result: training failed" in out.stdout
    # a result without the statistics (before the bootstrap decision): the decision alone
    result = json.loads((FIXTURES / "train_result.json").read_text())
    result["promotion"] = {"outcome": "promoted", "alias": "staging", "reason": "no champion"}
    empty.write_text(json.dumps(result))
    out = mlops("ci", "summary", str(empty))
    assert out.returncode == 0 and "**Decision: promoted** → `staging`: no champion" in out.stdout
    assert "interval" not in out.stdout
    empty.write_text("Traceback (most recent call last):")
    out = mlops("ci", "summary", str(empty))
    assert out.returncode == 2 and "is not the JSON of `mlops train --json`" in out.stderr
    assert "Traceback (most recent call last):\n" not in out.stderr
