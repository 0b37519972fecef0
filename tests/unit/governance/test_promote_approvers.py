"""The approver allow-list (MLOPS_APPROVERS)."""

from __future__ import annotations

import logging

from mlops.governance.promote import check_approver
from mlops.settings import Settings


def test_a_listed_approver_is_accepted_and_another_refused() -> None:
    settings = Settings(approvers=" ana , dr.bo ")
    assert settings.approver_list() == ["ana", "dr.bo"]
    assert check_approver(settings, "ana") == ""
    assert check_approver(settings, "dr.bo") == ""
    assert check_approver(settings, "eve") == "approver 'eve' is not in MLOPS_APPROVERS"


def test_an_empty_list_accepts_anyone_in_development_with_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert check_approver(Settings(environment="development"), "anyone") == ""
    assert "MLOPS_APPROVERS is empty" in caplog.text


def test_an_empty_list_refuses_everyone_outside_development() -> None:
    settings = Settings().model_copy(update={"environment": "production"})
    assert "MLOPS_APPROVERS is empty in production" in check_approver(settings, "ana")


def test_several_approvers_from_a_workflow_run_must_each_be_listed() -> None:
    settings = Settings(approvers="ana,dr.bo")
    assert check_approver(settings, "ana, dr.bo") == ""  # as governance.approvals joins reviewers
    assert check_approver(settings, "ana, eve") == "approver 'eve' is not in MLOPS_APPROVERS"
    assert check_approver(settings, " , ") == "approver ' , ' is not in MLOPS_APPROVERS"
