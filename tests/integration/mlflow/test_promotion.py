"""Promotion against a real MLflow registry (SQLite in a temp folder): aliases, compare-and-set, audit."""

from __future__ import annotations

import pytest

from mlops.errors import AliasConflict, PromotionRefused
from mlops.governance.decision import decide
from mlops.governance.ledger import apply
from mlops.governance.promote import auto_promote, manual_promote, rollback, score_on
from mlops.ml.bootstrap import Interval
from mlops.registry import Registry
from mlops.stores.audit import AuditLog
from tests.support.training import train_register_promote

WIN = Interval(0.5, 0.4, 0.6, 0.95, 2000, 30, 42, "f1_macro")


def test_first_model_is_promoted_and_audited(settings, registered_iris) -> None:
    reg = Registry(settings, "iris")
    assert reg.alias_version("production") == registered_iris["model"]["version"] == "1"
    events = AuditLog(settings.audit_url).history(model_name=reg.name)
    assert [(e.decision, e.to_version, e.actor) for e in events] == [("promoted", "1", "pytest")]
    tags = reg.version("1").tags
    assert tags["promotion.outcome"] == "promoted"
    assert tags["promotion.by"] == "pytest"
    assert tags["gates_passed"] == "true"


def test_retraining_same_data_ties_and_becomes_challenger(settings, registered_iris) -> None:
    second = train_register_promote(settings, "iris")
    reg = Registry(settings, "iris")
    assert second["model"]["version"] == "2"
    assert second["promotion"]["outcome"] == "kept"
    assert reg.aliases() == {"production": "1", "challenger": "2"}
    decision = AuditLog(settings.audit_url).history(model_name=reg.name)[-1]
    assert decision.decision == "kept" and "champion kept" in decision.reason
    assert decision.details["champion_score"] == decision.details["challenger_score"]
    interval = decision.details["interval"]
    assert (interval["lo"], interval["hi"], interval["resamples"]) == (0.0, 0.0, settings.bootstrap_resamples)
    assert decision.details["evidence"]["source"] == "sealed"
    assert decision.details["evidence"]["fingerprint"] == reg.version("2").tags["sealed_fingerprint"]
    assert reg.version("2").tags["promotion.interval"] == "[+0.0000, +0.0000]"


def test_both_are_scored_on_the_sealed_slice_never_a_runs_holdout(
    settings, registered_iris, iris_spec
) -> None:
    """Challenger and champion are judged on the same sealed rows, which neither trained on: the
    recorded scores are each version's score on exactly those rows."""
    from mlops.governance.sealed import carve

    second = train_register_promote(settings, "iris", seed=7)
    reg = Registry(settings, "iris")
    _, sealed = carve(settings, iris_spec, iris_spec.load(settings))
    last = AuditLog(settings.audit_url).history(model_name=reg.name)[-1]
    assert last.details["evidence"]["fingerprint"] == sealed.fingerprint
    assert last.details["evidence"]["rows"] == sealed.rows < 50
    assert last.details["champion_score"] == pytest.approx(
        score_on(reg, iris_spec, "1", sealed.frame)["f1_macro"]
    )
    assert last.details["challenger_score"] == pytest.approx(
        score_on(reg, iris_spec, "2", sealed.frame)["f1_macro"]
    )
    assert second["promotion"]["outcome"] == "kept", second["promotion"]
    assert reg.aliases() == {"production": "1", "challenger": "2"}


def test_alias_moved_between_read_and_write_is_refused(settings, registered_iris) -> None:
    train_register_promote(settings, "iris")  # version 2 (challenger)
    reg = Registry(settings, "iris")
    stale = reg.alias_version("production")
    reg.client.set_registered_model_alias(reg.name, "production", "2")  # someone else moves it
    with pytest.raises(AliasConflict):
        reg.move_alias("production", expected=stale, new="1")
    assert reg.alias_version("production") == "2"


def test_conflicting_decision_moves_nothing_and_is_audited_as_refused(settings, registered_iris) -> None:
    reg = Registry(settings, "iris")
    d = decide(metric="f1_macro", challenger=1.0, champion=0.5, margin=0.0, gate_reasons=[], interval=WIN)
    with pytest.raises(AliasConflict):
        apply(reg, d, version="1", alias="production", expected="99")
    last = AuditLog(settings.audit_url).history(model_name=reg.name)[-1]
    assert (last.decision, last.details["current"]) == ("refused", "1") and "meanwhile" in last.reason
    assert reg.aliases() == {"production": "1"}


def test_rejected_decision_moves_no_alias(settings, registered_iris) -> None:
    reg = Registry(settings, "iris")
    d = decide(
        metric="f1_macro", challenger=0.1, champion=0.9, margin=0.0, gate_reasons=["too low"], interval=WIN
    )
    apply(reg, d, version="1", alias="production", expected="1")
    assert reg.aliases() == {"production": "1"}
    assert AuditLog(settings.audit_url).history(model_name=reg.name)[-1].decision == "rejected"


def test_manual_promote_and_rollback_are_audited(settings, registered_iris, iris_spec) -> None:
    train_register_promote(settings, "iris")
    reg = Registry(settings, "iris")
    with pytest.raises(PromotionRefused, match="reason"):
        manual_promote(settings, iris_spec, "2", to="production", reason="  ", approver="ana")
    with pytest.raises(PromotionRefused, match="approver"):
        manual_promote(settings, iris_spec, "2", to="production", reason="reviewed")
    assert reg.alias_version("production") == "1"
    event = manual_promote(
        settings, iris_spec, "2", to="production", reason="reviewed by the team", approver="ana"
    )
    assert event.details["approver"] == "ana" and "f1_macro" in event.details["fresh_holdout_metrics"]
    assert event.details["evidence_source"] == "sealed"  # iris cannot draw fresh rows
    assert event.details["test"] == "non-inferiority" and event.details["interval"]["resamples"] == 2000
    assert reg.alias_version("production") == "2"
    event = rollback(settings, iris_spec, reason="bad canary")
    assert (event.from_version, event.to_version, event.action) == ("2", "1", "rollback")
    assert reg.alias_version("production") == "1"
    with pytest.raises(PromotionRefused):  # nothing earlier than version 1
        rollback(settings, iris_spec)
    history = AuditLog(settings.audit_url).history(model_name=reg.name)
    actions = [(e.action, e.decision, e.to_version) for e in history]
    assert actions[-2:] == [("promote", "promoted", "2"), ("rollback", "promoted", "1")]


def test_manual_promotion_that_fails_revalidation_is_refused_and_audited(
    settings, registered_iris, iris_spec
):
    from dataclasses import replace

    train_register_promote(settings, "iris")
    strict = replace(iris_spec, model_gate=replace(iris_spec.model_gate, minimums={"f1_macro": 0.999}))
    reg = Registry(settings, "iris")
    with pytest.raises(PromotionRefused, match="failed its checks") as info:
        manual_promote(settings, strict, "2", to="production", reason="try", approver="ana")
    assert any("below the minimum 0.9990" in r for r in info.value.reasons)
    assert reg.alias_version("production") == "1"
    last = AuditLog(settings.audit_url).history(model_name=reg.name)[-1]
    assert (last.decision, last.to_version, last.details["approver"]) == ("rejected", "2", "ana")


def test_a_version_the_service_could_not_load_is_never_promoted(
    settings, registered_iris, iris_spec, corrupt_version
) -> None:
    """A corrupt artifact is refused by the manual path and by the automatic one, audited, alias unmoved."""
    train_register_promote(settings, "iris")  # version 2 ties: challenger
    reg = Registry(settings, "iris")
    corrupt_version(settings, "iris", "2")
    with pytest.raises(PromotionRefused, match="failed its checks") as info:
        manual_promote(settings, iris_spec, "2", to="production", reason="hotfix", approver="ana")
    assert any("version 2 cannot be served" in r for r in info.value.reasons), info.value.reasons
    assert reg.alias_version("production") == "1"
    last = AuditLog(settings.audit_url).history(model_name=reg.name)[-1]
    assert (last.decision, last.to_version, last.alias) == ("rejected", "2", "production")

    from mlops.governance.sealed import carve

    _, sealed = carve(settings, iris_spec, iris_spec.load(settings))
    decision, _ = auto_promote(settings, iris_spec, "2", sealed, [])
    assert decision.outcome == "rejected" and "cannot be served" in decision.reason
    assert reg.alias_version("production") == "1"


def test_a_champion_that_cannot_be_loaded_is_replaced_by_a_good_challenger(
    settings, registered_iris, corrupt_version
) -> None:
    corrupt_version(settings, "iris", "1")  # the production version's files are damaged
    result = train_register_promote(settings, "iris", seed=11)
    assert result["promotion"]["outcome"] == "promoted", result["promotion"]
    assert Registry(settings, "iris").alias_version("production") == result["model"]["version"]
    last = AuditLog(settings.audit_url).history(model_name="iris-classifier")[-1]
    assert (
        "champion v1 unservable" in last.reason
        and "scoring champion v1" in last.details["champion_unservable"]
    )
