"""Rollouts against a real registry (two trained iris versions in a temporary MLflow) and real
SQLite stores: start's checks, the record and its audit rows, the evidence read from the prediction
log's tables, ramp's and promote's refusals with reasons, the guard's automatic rollback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.rollout_evidence import EvidenceWriter

from mlops.errors import NotFound, PromotionRefused, Unavailable, UsageError
from mlops.governance import rollout
from mlops.governance.history import alias_history
from mlops.registry import Registry
from mlops.settings import Settings
from mlops.stores.audit import AuditLog
from mlops.stores.rollouts import RolloutStore


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str, str]:
    """One registry for the module: production and a second servable version (the candidate)."""
    from tests.support.training import train_register_promote

    from mlops.configure import configure_libraries

    home = tmp_path_factory.mktemp("rollout") / "state"
    settings = Settings(home=home, actor="pytest")
    configure_libraries(settings)
    first = train_register_promote(settings, "iris")["model"]["version"]
    second = train_register_promote(settings, "iris", seed=7)["model"]["version"]
    reg = Registry(settings, "iris")
    production = reg.alias_version("production")
    candidate = second if production == first else first
    return settings, str(production), str(candidate)


@pytest.fixture
def env(trained, tmp_path: Path) -> Iterator[tuple[Settings, str, str, EvidenceWriter]]:
    """Fresh control and prediction-log databases per test; the registry's aliases reset."""
    base, production, candidate = trained
    settings = base.model_copy(
        update={
            "audit_db_url": f"sqlite:///{tmp_path / 'control.db'}",
            "prediction_log_url": f"sqlite:///{tmp_path / 'predictions.db'}",
            "rollout_min_requests": 50,
            "rollout_looks": 5,
        }
    )
    reg = Registry(settings, "iris")
    reg.set_alias("production", production)
    if reg.alias_version("candidate") is not None:
        reg.drop_alias("candidate")
    writer = EvidenceWriter(settings.prediction_log_db_url)
    yield settings, production, candidate, writer
    writer.dispose()


def actions(settings: Settings) -> list[tuple[str, str, str | None]]:
    return [(e.action, e.decision, e.alias) for e in AuditLog.for_settings(settings).history(project="iris")]


def test_start_sets_the_candidate_alias_writes_the_record_and_audits_it(env, iris_spec) -> None:
    settings, production, candidate, _ = env
    started = rollout.start(settings, iris_spec, candidate, "canary", 10, "ana", "try it on live traffic")
    record = RolloutStore.for_settings(settings).active("iris")
    assert record is not None and record.candidate == candidate and record.baseline == production
    assert (record.mode, record.percent, record.actor, record.generation) == ("canary", 10.0, "ana", 1)
    assert started["rollout"]["id"] == record.id
    assert Registry(settings, "iris").alias_version("candidate") == candidate
    assert actions(settings) == [("rollout.start", "started", "candidate")]
    with pytest.raises(PromotionRefused, match="already active"):
        rollout.start(settings, iris_spec, candidate, "shadow", None, "bo", "again")


def test_start_refuses_production_itself_an_unknown_version_and_bad_input(env, iris_spec) -> None:
    settings, production, candidate, _ = env
    with pytest.raises(PromotionRefused) as refused:
        rollout.start(settings, iris_spec, production, "shadow", None, "ana", "why not")
    assert any("already holds 'production'" in r for r in refused.value.reasons)
    assert actions(settings) == [("rollout.start", "refused", "candidate")]
    with pytest.raises(NotFound):
        rollout.start(settings, iris_spec, "999", "shadow", None, "ana", "no such version")
    with pytest.raises(UsageError, match="mode"):
        rollout.start(settings, iris_spec, candidate, "blue-green", None, "ana", "x")
    with pytest.raises(UsageError, match="percent"):
        rollout.start(settings, iris_spec, candidate, "canary", 0, "ana", "x")
    with pytest.raises(UsageError, match="reason"):
        rollout.start(settings, iris_spec, candidate, "canary", 5, "ana", " ")
    assert RolloutStore.for_settings(settings).active("iris") is None
    assert Registry(settings, "iris").alias_version("candidate") is None


def test_a_registry_outage_refuses_the_start_and_moves_nothing(env, iris_spec, tmp_path) -> None:
    settings, _, candidate, _ = env
    down = settings.model_copy(
        update={"tracking_uri": "http://127.0.0.1:1", "promotion_scoring_timeout_s": 5}
    )
    with pytest.raises(Unavailable):
        rollout.start(down, iris_spec, candidate, "canary", 5, "ana", "registry down")
    assert RolloutStore.for_settings(settings).active("iris") is None
    assert Registry(settings, "iris").alias_version("candidate") is None


def test_abort_ends_the_record_drops_the_alias_and_audits_it(env, iris_spec) -> None:
    settings, _, candidate, _ = env
    rollout.start(settings, iris_spec, candidate, "shadow", None, "ana", "shadow it")
    with pytest.raises(UsageError, match="reason"):
        rollout.abort(settings, "iris", "ana", "")
    result = rollout.abort(settings, "iris", "ana", "seen enough")
    assert result["rollout"]["state"] == "aborted" and result["candidate_alias"] == "dropped"
    assert RolloutStore.for_settings(settings).active("iris") is None
    assert Registry(settings, "iris").alias_version("candidate") is None
    assert actions(settings)[-1] == ("rollout.abort", "aborted", "candidate")
    with pytest.raises(NotFound, match="no active rollout"):
        rollout.abort(settings, "iris", "ana", "again")
    assert AuditLog.for_settings(settings).verify().ok


def test_status_without_a_rollout_says_inactive(env) -> None:
    settings = env[0]
    assert rollout.status(settings, "iris")["active"] is False
    assert rollout.status(settings, "iris")["rollout"] is None


def test_shadow_status_shows_agreement_latency_paired_interval_and_drift(env, iris_spec) -> None:
    settings, production, candidate, writer = env
    rollout.start(settings, iris_spec, candidate, "shadow", None, "ana", "shadow it")
    for i in range(60):  # 60 labelled requests: production right on all, the candidate on 54
        rid = writer.answer(production, prediction=0, latency_ms=1.0)
        writer.scoring(rid, candidate, "shadow", prediction=0 if i >= 6 else 1, latency_ms=float(i + 1))
        writer.label(rid, 0)
    rid = writer.answer(production)
    writer.scoring(rid, candidate, "shadow", error="ValueError: bad input")
    report = rollout.status(settings, "iris")
    ev = report["evidence"]
    cand, prod = ev["candidate"], ev["production"]
    assert report["active"] and cand["version"] == candidate and prod["version"] == production
    assert (cand["requests"], cand["errors"]) == (61, 1)
    assert ev["agreement"]["agree"] == 54 and ev["agreement"]["compared"] == 60
    assert cand["latency_ms"]["p50"] == pytest.approx(
        30.0
    )  # 1..60 ms and the failure's 2 ms and cand["latency_ms"]["p99"] > 59
    assert cand["live"]["labelled"] == 60 and cand["live"]["accuracy"] == pytest.approx(0.9)
    assert prod["live"]["accuracy"] == 1.0
    diff = ev["difference"]
    assert diff["method"] == "newcombe-paired" and diff["estimate"] == pytest.approx(-0.1)
    assert diff["lo"] < -0.1 < diff["hi"] < 0
    assert (
        ev["drift"]["psi"] is not None and ev["look"]["look"] == 50
    )  # first look: 50 // 5 = 10 labels a look


def test_the_guard_rolls_back_a_failing_canary_with_the_breach_in_audit_and_status(env, iris_spec) -> None:
    settings, production, candidate, writer = env
    rollout.start(settings, iris_spec, candidate, "canary", 10, "ana", "canary it")
    writer.canary(candidate, production, ok=5, prod=40)
    assert rollout.guard_once(settings, "iris") is None  # healthy so far
    writer.canary(candidate, production, failed=10)
    result = rollout.guard_once(settings, "iris")
    assert result is not None and result["breach"] == "error_rate"
    assert result["rollout"]["state"] == "rolled_back" and result["candidate_alias"] == "dropped"
    assert RolloutStore.for_settings(settings).active("iris") is None
    assert Registry(settings, "iris").alias_version("candidate") is None
    assert Registry(settings, "iris").alias_version("production") == production
    event = AuditLog.for_settings(settings).history(project="iris")[-1]
    assert (event.action, event.decision, event.actor) == (
        "rollout.auto_abort",
        "rolled_back",
        "rollout-guard",
    )
    assert event.details["breach"] == "error_rate" and event.details["figures"]["errors"] == 10
    report = rollout.status(settings, "iris")
    assert report["active"] is False and report["last_incident"]["breach"] == "error_rate"
    assert rollout.guard_once(settings, "iris") is None  # nothing active any more
    assert "rollback" not in {e.action for e in AuditLog.for_settings(settings).history()}


def test_the_guard_rolls_back_on_latency_and_on_accuracy_shown_worse(env, iris_spec) -> None:
    settings, production, candidate, writer = env
    rollout.start(settings, iris_spec, candidate, "canary", 10, "ana", "slow one")
    writer.canary(candidate, production, ok=120, latency_ms=80.0)
    assert rollout.guard_once(settings, "iris")["breach"] == "latency"
    rollout.start(settings, iris_spec, candidate, "canary", 10, "ana", "wrong one")
    writer.canary(candidate, production, ok=20, prod=20, right=False)  # all wrong vs all right: 20 labels
    result = rollout.guard_once(settings, "iris")
    assert result is not None and result["breach"] == "accuracy"
    assert "shown worse" in result["reason"]


def test_the_guard_leaves_a_shadow_rollout_alone(env, iris_spec) -> None:
    settings, production, candidate, writer = env
    rollout.start(settings, iris_spec, candidate, "shadow", None, "ana", "shadow")
    for _ in range(20):
        writer.scoring(writer.answer(production), candidate, "shadow", error="boom")
    assert rollout.guard_once(settings, "iris") is None
    assert RolloutStore.for_settings(settings).active("iris") is not None


def test_ramp_needs_the_steps_evidence_then_raises_the_share(env, iris_spec) -> None:
    settings, production, candidate, writer = env
    rollout.start(settings, iris_spec, candidate, "canary", None, "ana", "canary it")
    assert RolloutStore.for_settings(settings).active("iris").percent == 1.0
    with pytest.raises(PromotionRefused) as refused:
        rollout.ramp(settings, iris_spec)
    assert any("fewer than the 50 needed" in r for r in refused.value.reasons)
    writer.canary(candidate, production, ok=50, prod=50)
    result = rollout.ramp(settings, iris_spec)
    assert result["rollout"]["percent"] == 5.0 and result["rollout"]["generation"] == 2
    with pytest.raises(PromotionRefused):  # the new step's evidence counts from its start
        rollout.ramp(settings, iris_spec)
    with pytest.raises(UsageError, match="not above"):
        rollout.ramp(settings, iris_spec, 5)
    assert [a for a in actions(settings) if a[0] == "rollout.ramp"] == [
        ("rollout.ramp", "refused", "candidate"),
        ("rollout.ramp", "ramped", "candidate"),
        ("rollout.ramp", "refused", "candidate"),
    ]


def test_promote_is_refused_with_reasons_then_moves_production_through_the_ledger(env, iris_spec) -> None:
    settings, production, candidate, writer = env
    rollout.start(settings, iris_spec, candidate, "canary", 25, "ana", "canary it")
    with pytest.raises(PromotionRefused) as refused:
        rollout.promote(settings, iris_spec, "ana", "looks fine")
    assert any("candidate requests" in r for r in refused.value.reasons)
    assert Registry(settings, "iris").alias_version("production") == production
    writer.canary(candidate, production, ok=60, prod=60, right=True)
    settings = settings.model_copy(update={"noninferiority_margin": 0.2})  # 50 labels a side: a wide margin
    result = rollout.promote(settings, iris_spec, "ana", "live evidence is in")
    reg = Registry(settings, "iris")
    assert reg.alias_version("production") == candidate and reg.alias_version("candidate") is None
    assert result["rollout"]["state"] == "promoted"
    rows = AuditLog.for_settings(settings).history(project="iris")
    move = [e for e in rows if e.action == "promote" and e.decision == "promoted"][-1]
    assert (move.alias, move.from_version, move.to_version) == ("production", production, candidate)
    assert move.details["rollout"] == result["rollout"]["id"] and move.details["evidence"]["candidate"]
    assert rows[-1].action == "rollout.promote" and rows[-1].decision == "promoted"
    assert alias_history(reg, "production")[-1] == candidate  # `mlops rollback` would go back one
    assert AuditLog.for_settings(settings).verify().ok


def test_promote_refuses_a_candidate_not_shown_noninferior(env, iris_spec) -> None:
    settings, production, candidate, writer = env
    rollout.start(settings, iris_spec, candidate, "canary", 25, "ana", "canary it")
    writer.canary(candidate, production, ok=30, prod=30, right=True)
    writer.canary(candidate, production, ok=0, prod=0)
    for _ in range(3):  # 3 wrong of 33 vs 0 of 30: not shown worse, not shown non-inferior
        writer.answer(candidate, prediction=1, label=0)
    writer.canary(candidate, production, ok=20)
    with pytest.raises(PromotionRefused) as refused:
        rollout.promote(settings, iris_spec, "ana", "close enough?")
    assert any("non-inferiority margin" in r for r in refused.value.reasons)
    assert Registry(settings, "iris").alias_version("production") == production


def test_promote_needs_an_allowed_approver_and_an_unmoved_production(env, iris_spec) -> None:
    settings, production, candidate, writer = env
    rollout.start(settings, iris_spec, candidate, "canary", 25, "ana", "canary it")
    writer.canary(candidate, production, ok=60, prod=60)  # enough requests, no labels yet
    listed = settings.model_copy(update={"approvers": "dr.bo"})
    with pytest.raises(PromotionRefused) as refused:
        rollout.promote(listed, iris_spec, "ana", "ship it")
    assert refused.value.reasons == ["promotion to production needs an approver (--approver)"]
    with pytest.raises(PromotionRefused) as refused:
        rollout.promote(listed, iris_spec, "ana", "ship it", approver="eve")
    assert refused.value.reasons == ["approver 'eve' is not in MLOPS_APPROVERS"]
    Registry(settings, "iris").set_alias("production", candidate)  # someone promoted by hand meanwhile
    with pytest.raises(PromotionRefused) as refused:
        rollout.promote(listed, iris_spec, "ana", "ship it", approver="dr.bo")
    assert any(f"production moved from v{production} to v{candidate}" in r for r in refused.value.reasons)
    refusals = [a for a in actions(settings) if a[0] == "rollout.promote"]
    assert refusals == [("rollout.promote", "refused", "candidate")] * 3
