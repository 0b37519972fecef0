"""Who approved a deployment: the reviewer of a protected GitHub environment, not the release author.

``promote-production`` runs only after a required reviewer of the ``production`` environment approves
the waiting job. That reviewer is the person accountable for the move, so the audit records them: the
workflow reads the run's approvals (``GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals``, a
list of ``{state, user: {login}, environments: [{name}], comment}``) and passes the approver to
``mlops promote --approver``. The release author only published a tag; anyone with write access can.

Fail closed: no approval of that environment, a rejection of it, or a response of another shape is
an error, never a fallback to the actor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops.errors import MlopsError


class ApprovalMissing(MlopsError):
    """The run holds no usable approval of the environment: nothing may be promoted on its behalf."""


def approvers_from_run(approvals: Any, environment: str) -> list[str]:
    """The logins that approved ``environment`` in a run's approvals (parsed JSON), in response order
    and without repeats; raises ``ApprovalMissing`` when there is none, or when one rejected it."""
    if not isinstance(approvals, list):
        raise ApprovalMissing(
            f"the run's approvals are not a list (got {type(approvals).__name__})",
            hint="pass the body of GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals",
        )
    wanted = environment.casefold()  # GitHub environment names are case-insensitive
    approved: list[str] = []
    rejected: list[str] = []
    for n, review in enumerate(approvals):
        try:
            names = {str(env["name"]).casefold() for env in review["environments"]}
            state, login = review["state"], str(review["user"]["login"])
        except (KeyError, TypeError) as exc:
            raise ApprovalMissing(
                f"approval #{n} lacks {exc}: not a GitHub approvals response",
                hint="pass the body of GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals",
            ) from None
        if wanted not in names:
            continue
        if state == "rejected":
            rejected.append(login)
        elif state == "approved" and login not in approved:
            approved.append(login)
    if rejected:
        raise ApprovalMissing(f"environment {environment!r} was rejected by {', '.join(rejected)}")
    if not approved:
        raise ApprovalMissing(
            f"no reviewer approved environment {environment!r} in this run",
            hint=f"protect {environment!r} with required reviewers and run the job in it",
        )
    return approved


def approver_from_run(approvals: Any, environment: str) -> str:
    """The approver to record: the one reviewer, or several joined by ", " (each was required)."""
    return ", ".join(approvers_from_run(approvals, environment))


def approver_from_file(path: Path, environment: str) -> str:
    """``approver_from_run`` on a saved response (``gh api ... > approvals.json``)."""
    try:
        approvals = json.loads(path.read_text())
    except OSError as exc:
        raise ApprovalMissing(f"cannot read the run's approvals at {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ApprovalMissing(f"the run's approvals at {path} are not JSON: {exc}") from None
    return approver_from_run(approvals, environment)
