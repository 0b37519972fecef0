"""The approver of a protected environment, from a run's approvals in GitHub's documented response shape
(tests/fixtures/github/run_approvals.json: written after the REST reference, not captured from a live run)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from mlops.governance.approvals import ApprovalMissing, approver_from_file, approver_from_run

RECORDED = Path(__file__).parents[2] / "fixtures" / "github" / "run_approvals.json"


def _recorded() -> list[dict]:
    return json.loads(RECORDED.read_text())


def test_the_reviewer_of_that_environment_is_the_approver() -> None:
    assert approver_from_file(RECORDED, "production") == "ana-reviewer"
    assert approver_from_run(_recorded(), "Production") == "ana-reviewer"  # names are case-insensitive
    assert approver_from_run(_recorded(), "staging") == "bo-ops"  # another environment, another reviewer


def test_several_required_reviewers_are_all_named_once() -> None:
    approvals = _recorded()
    second = copy.deepcopy(approvals[1])
    second["user"]["login"] = "carla"
    approvals += [second, copy.deepcopy(approvals[1])]  # ana twice (a re-run): named once
    assert approver_from_run(approvals, "production") == "ana-reviewer, carla"


@pytest.mark.parametrize(
    ("approvals", "message"),
    [
        ([], "no reviewer approved environment 'production'"),
        (_recorded()[:1], "no reviewer approved environment 'production'"),  # only staging's approval
        ({"message": "Not Found"}, "not a list"),  # gh api's error body
        ([{"state": "approved", "user": {}}], "lacks 'environments'"),
    ],
)
def test_no_usable_approval_is_refused(approvals: object, message: str) -> None:
    with pytest.raises(ApprovalMissing, match=message):
        approver_from_run(approvals, "production")


def test_a_rejection_of_the_environment_is_refused_even_beside_an_approval() -> None:
    approvals = _recorded()
    rejection = copy.deepcopy(approvals[1]) | {"state": "rejected", "comment": "interval too wide"}
    rejection["user"]["login"] = "dee"
    with pytest.raises(ApprovalMissing, match="rejected by dee"):
        approver_from_run([*approvals, rejection], "production")


def test_an_unreadable_or_non_json_file_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(ApprovalMissing, match="cannot read"):
        approver_from_file(tmp_path / "absent.json", "production")
    broken = tmp_path / "approvals.json"
    broken.write_text("<html>rate limited</html>")
    with pytest.raises(ApprovalMissing, match="not JSON"):
        approver_from_file(broken, "production")
