"""Fail closed, against a real MLflow registry: faults are injected into the real client (a method that
raises what MLflow raises when its server is down, a call that hangs past the timeout, artifact files
deleted on disk, an audit store on a closed port), never by replacing our own code."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlops.errors import PromotionRefused, Unavailable
from mlops.governance.promote import auto_promote, manual_promote
from mlops.governance.sealed import carve
from mlops.registry import Registry
from mlops.stores.audit import AuditLog
from tests.support.training import train_register_promote

ORIGINAL_DOWNLOAD_URI = MlflowClient.get_model_version_download_uri


def _server_down(*_: object, **__: object) -> None:
    """What MLflow's REST client raises when the tracking server refuses the connection."""
    try:
        raise requests.exceptions.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=5000): refused")
    except requests.exceptions.ConnectionError as exc:
        raise MlflowException(f"API request to http://127.0.0.1:5000/api failed with exception {exc}")  # noqa: B904


def fail_loading(monkeypatch: pytest.MonkeyPatch, version: str, effect=_server_down) -> None:
    """Every client fails to resolve ``version``'s files (other versions load normally)."""

    def download_uri(self: MlflowClient, name: str, v: str) -> str:
        if str(v) == version:
            effect()
        return ORIGINAL_DOWNLOAD_URI(self, name, v)

    monkeypatch.setattr(MlflowClient, "get_model_version_download_uri", download_uri)


def delete_artifacts(settings, version: str) -> Path:
    reg = Registry(settings, "iris")
    source = reg.client.get_model_version(reg.name, version).source
    model_id = source.removeprefix("models:/").split("/")[0]
    root = Path(unquote(urlparse(reg.client.get_logged_model(model_id).artifact_location).path))
    shutil.rmtree(root)
    return root


def last_event(settings):
    return AuditLog(settings.audit_url).history(model_name="iris-classifier")[-1]


def test_registry_down_while_scoring_the_champion_refuses_and_moves_nothing(
    settings, registered_iris, monkeypatch
) -> None:
    fail_loading(monkeypatch, "1")
    with pytest.raises(Unavailable) as info:
        train_register_promote(settings, "iris", seed=7)
    assert info.value.exit_code == 75 and info.value.retryable
    assert "scoring champion v1" in str(info.value)
    assert Registry(settings, "iris").aliases() == {"production": "1"}  # no challenger alias either
    event = last_event(settings)
    assert (event.decision, event.to_version, event.from_version) == ("refused", "2", "1")
    assert "cannot be judged now" in event.reason and "API request" in event.reason
    assert event.details["retryable"] is True and "ConnectionError" in event.details["unavailable"]


def test_a_champion_scoring_past_the_timeout_is_refused(settings, registered_iris, monkeypatch) -> None:
    fail_loading(monkeypatch, "1", effect=lambda: time.sleep(3))
    hurried = settings.model_copy(update={"promotion_scoring_timeout_s": 0.5})
    with pytest.raises(Unavailable, match=r"exceeded 0\.5s"):
        train_register_promote(hurried, "iris", seed=7)
    assert Registry(settings, "iris").alias_version("production") == "1"
    assert last_event(settings).decision == "refused"


def test_a_champion_whose_artifact_is_gone_is_judged_absent_and_audited(settings, registered_iris) -> None:
    delete_artifacts(settings, "1")
    result = train_register_promote(settings, "iris", seed=7)
    assert result["promotion"]["outcome"] == "promoted", result["promotion"]
    assert Registry(settings, "iris").alias_version("production") == "2"
    event = last_event(settings)
    assert event.decision == "promoted" and "champion v1 unservable" in event.reason
    assert "scoring champion v1" in event.details["champion_unservable"]


def test_the_audit_store_down_too_still_refuses(settings, registered_iris, iris_spec, monkeypatch) -> None:
    train_register_promote(settings, "iris")  # version 2: kept, challenger
    _, sealed = carve(settings, iris_spec, iris_spec.load(settings))
    fail_loading(monkeypatch, "1")
    no_audit = settings.model_copy(update={"audit_db_url": "postgresql://postgres@127.0.0.1:1/none"})
    with pytest.raises(Unavailable):
        auto_promote(no_audit, iris_spec, "2", sealed, [], registry=Registry(no_audit, "iris"))
    assert Registry(settings, "iris").alias_version("production") == "1"


def test_the_regression_check_against_production_fails_closed(
    settings, registered_iris, iris_spec, monkeypatch
):
    """Training into staging while production cannot be scored: refused, staging untouched; with
    production's artifact deleted instead, it is noted as unservable and the candidate goes on."""
    train_register_promote(settings, "iris")  # version 2
    staging_spec = replace(iris_spec, promotion_target="staging")
    _, sealed = carve(settings, iris_spec, iris_spec.load(settings))
    with monkeypatch.context() as patch:
        fail_loading(patch, "1")
        with pytest.raises(Unavailable, match="scoring production v1"):
            auto_promote(settings, staging_spec, "2", sealed, [])
    reg = Registry(settings, "iris")
    assert reg.alias_version("staging") is None
    delete_artifacts(settings, "1")
    decision, _ = auto_promote(settings, staging_spec, "2", sealed, [])
    assert decision.outcome == "promoted" and reg.alias_version("staging") == "2"
    assert "scoring production v1" in last_event(settings).details["production_unservable"]


def test_manual_promotion_with_the_registry_down_is_refused_and_audited(
    settings, registered_iris, iris_spec, monkeypatch
) -> None:
    train_register_promote(settings, "iris")  # version 2
    monkeypatch.setattr(MlflowClient, "get_model_version", _server_down)
    with pytest.raises(Unavailable, match="reading version 2"):
        manual_promote(settings, iris_spec, "2", to="production", reason="release", approver="ana")
    monkeypatch.undo()
    assert Registry(settings, "iris").alias_version("production") == "1"
    event = last_event(settings)
    assert (event.decision, event.to_version, event.alias) == ("refused", "2", "production")


def test_manual_promotion_needs_an_approver_from_the_allow_list(settings, registered_iris, iris_spec) -> None:
    train_register_promote(settings, "iris")  # version 2
    listed = settings.model_copy(update={"approvers": "ana,bo"})
    with pytest.raises(PromotionRefused, match="'eve' is not in MLOPS_APPROVERS"):
        manual_promote(listed, iris_spec, "2", to="production", reason="release", approver="eve")
    event = last_event(settings)
    assert (event.decision, event.details["approver"]) == ("refused", "eve") and "eve" in event.reason
    assert Registry(settings, "iris").alias_version("production") == "1"
    event = manual_promote(listed, iris_spec, "2", to="production", reason="release", approver="bo")
    assert event.decision == "promoted" and Registry(settings, "iris").alias_version("production") == "2"
