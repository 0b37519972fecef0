"""The monitoring policy: what one pass does with a drift result, and with the retrain it started.

Pure decisions, no store and no clock of their own, so the rules read in one place and are tested
without a database: ``loop.py`` reads the state (the cooldown, the episode's job, production),
asks here, and acts and audits.

- ``on_drift``: undrifted traffic starts nothing; drift within the cooldown of the episode that
  already started a retrain starts nothing either (it is recorded, ``monitor.cooldown``); otherwise a
  new episode: an alert, and a retrain job unless the drifted share stays below
  ``MLOPS_DRIFT_RETRAIN_SHARE`` (then the alert alone).
- ``after_job``: the episode's job still running waits; failed, nothing to try; succeeded with a new
  version, that version enters shadow as the candidate. A version that training itself promoted
  into the served alias (iris trains into ``production``: the sealed slice's paired bootstrap
  decided) is already served: there is nothing to shadow. The monitor never promotes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

DriftAction = Literal["none", "cooldown", "alert", "retrain"]
JobAction = Literal["wait", "shadow", "skip"]


@dataclass(frozen=True)
class Verdict:
    action: DriftAction
    reason: str


@dataclass(frozen=True)
class FollowUp:
    action: JobAction
    reason: str


def _figures(drift: Mapping[str, Any]) -> str:
    return (
        f"{drift['share']:.0%} of features drifted over {drift['rows']:,} rows "
        f"(threshold {drift['threshold_share']:.0%}) against v{drift['model_version']}'s training data"
    )


def on_drift(
    drift: Mapping[str, Any], *, retrain_share: float, cooling_until: datetime | None, now: datetime
) -> Verdict:
    """The pass's verdict on ``drift`` (a ``monitoring.run.check`` summary); ``cooling_until``: when
    the cooldown of the last episode ends (None: no episode yet)."""
    if not drift["detected"]:
        return Verdict("none", f"no drift: {_figures(drift)}")
    if cooling_until is not None and cooling_until > now:
        return Verdict(
            "cooldown",
            f"drift: {_figures(drift)}; this episode already started, cooldown until "
            f"{cooling_until.isoformat(timespec='seconds')}",
        )
    if retrain_share and drift["share"] < retrain_share:
        return Verdict(
            "alert", f"drift: {_figures(drift)}; below the retrain share {retrain_share:.0%}: alert only"
        )
    return Verdict("retrain", f"drift: {_figures(drift)}; retrain")


def after_job(state: str, version: str | None, served: str | None, *, error: str | None = None) -> FollowUp:
    """What follows the episode's retrain job (``state``, the ``version`` it registered) while
    ``served`` holds the served alias."""
    if state in ("queued", "running"):
        return FollowUp("wait", f"retrain job {state}")
    if state != "succeeded":
        return FollowUp("skip", f"retrain job {state}: {error or 'no error recorded'}; nothing to shadow")
    if not version:
        return FollowUp("skip", "retrain job succeeded without registering a version; nothing to shadow")
    if version == served:
        return FollowUp(
            "skip",
            f"training promoted v{version} itself on the sealed slice: it is served, nothing to shadow",
        )
    beside = f"beside v{served}" if served else "(no version is served yet)"
    return FollowUp("shadow", f"retrained v{version} proves itself in shadow {beside}")
