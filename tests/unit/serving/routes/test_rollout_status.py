"""GET /rollout on real SQLite stores: inactive, an active canary's evidence, a store outage (503)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.support.rollout_evidence import EvidenceWriter

from mlops.serving.routes import rollout
from mlops.settings import Settings
from mlops.stores.rollouts import RolloutStore


def client_for(settings: Settings) -> TestClient:
    app = FastAPI()
    app.state.settings = settings
    app.include_router(rollout.router)
    return TestClient(app)


def test_no_rollout_is_a_200_saying_inactive(tmp_path: Path) -> None:
    response = client_for(Settings(home=tmp_path)).get("/rollout")
    assert response.status_code == 200
    assert response.json()["active"] is False and response.json()["rollout"] is None


def test_an_active_canary_shows_its_evidence_per_version(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    RolloutStore.for_settings(settings).start(
        project="iris",
        model_name="iris-classifier",
        candidate="2",
        baseline="1",
        mode="canary",
        percent=10,
        actor="t",
    )
    writer = EvidenceWriter(settings.prediction_log_db_url)
    writer.canary("2", "1", ok=8, failed=2, prod=30, latency_ms=4.0)
    writer.dispose()
    body = client_for(settings).get("/rollout").json()
    assert body["active"] is True and body["rollout"]["mode"] == "canary"
    cand, prod = body["evidence"]["candidate"], body["evidence"]["production"]
    assert (cand["version"], cand["requests"], cand["errors"], cand["error_rate"]) == ("2", 10, 2, 0.2)
    assert (
        prod["version"] == "1" and prod["requests"] == 32
    )  # its own 30 and the 2 it answered for the candidate
    assert cand["latency_ms"]["p50"] is not None


def test_a_store_outage_is_a_503_documented_in_the_schema(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, audit_db_url="postgresql://postgres@127.0.0.1:1/nothing")
    client = client_for(settings)
    response = client.get("/rollout")
    assert response.status_code == 503 and response.json()["detail"] == "rollout stores unavailable"
    assert "503" in client.get("/openapi.json").json()["paths"]["/rollout"]["get"]["responses"]
