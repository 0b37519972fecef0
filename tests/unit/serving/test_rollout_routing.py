"""The rollout data plane: a stable hash routes keys (sticky, a ramp keeps its keys, the share is the
percent), the shadow queue is bounded, a failing canary candidate is answered by production."""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from tests.support.serving import EXAMPLE, sample

from mlops import runtime
from mlops.projects import get_project
from mlops.serving.app import create_app
from mlops.serving.rollout import BUCKETS, RolloutView, ShadowScorer, bucket, threshold
from mlops.stores.rollouts import Rollout, RolloutStore

KEYS = [f"client-{i}" for i in range(2000)]


def _rollout(percent: float, *, mode: str = "canary", rollout_id: int = 7, generation: int = 1) -> Rollout:
    now = datetime.now(UTC)
    return Rollout(
        id=rollout_id,
        project="iris",
        model_name="iris-classifier",
        candidate="2",
        baseline="1",
        mode=mode,  # type: ignore[arg-type]
        percent=percent,
        state="active",
        generation=generation,
        started_at=now,
        updated_at=now,
        ended_at=None,
        actor="pytest",
        reason="",
    )


def _on_candidate(view: RolloutView) -> set[str]:
    return {key for key in KEYS if view.selects(key)}


@pytest.fixture(scope="module")
def production(shared_settings) -> runtime.LoadedModel:
    return runtime.load_checked(shared_settings, "iris", "1", threads=1)


def broken(model: runtime.LoadedModel) -> runtime.LoadedModel:
    """A real candidate that raises on every request: its ONNX scorer builds its feeds from another
    project's features (the iris rows lack them: KeyError inside the scorer)."""
    scorer = copy.copy(model.scorer)
    scorer.spec = get_project("readmission")  # type: ignore[attr-defined]
    return replace(model, version="2", scorer=scorer)


def test_the_same_key_always_lands_in_the_same_bucket_of_its_rollout() -> None:
    salt = b"rollout-7"
    first = [bucket(salt, key) for key in KEYS]
    assert first == [bucket(salt, key) for key in KEYS]
    assert all(0 <= b < BUCKETS for b in first)
    # another rollout draws another sample of keys (the salt is the rollout id)
    assert first != [bucket(b"rollout-8", key) for key in KEYS]
    view = RolloutView.of(_rollout(10), None)
    assert _on_candidate(view) == _on_candidate(RolloutView.of(_rollout(10, generation=5), None))


def test_raising_the_percent_keeps_every_key_already_on_the_candidate() -> None:
    shares = [_on_candidate(RolloutView.of(_rollout(p), None)) for p in (1, 5, 10, 25, 50, 100)]
    for lower, higher in itertools.pairwise(shares):
        assert lower <= higher and len(lower) < len(higher)
    assert shares[-1] == set(KEYS)
    assert _on_candidate(RolloutView.of(_rollout(0), None)) == set()
    assert (threshold(0), threshold(0.01), threshold(10), threshold(100), threshold(150)) == (
        0,
        1,
        1000,
        BUCKETS,
        BUCKETS,
    )


@pytest.mark.parametrize("percent", [1, 5, 10, 25, 50])
def test_the_share_of_keys_on_the_candidate_is_within_the_99_binomial_interval(percent: float) -> None:
    n, p = len(KEYS), percent / 100
    half = 2.576 * math.sqrt(n * p * (1 - p))  # normal approximation of the 99 % interval
    chosen = len(_on_candidate(RolloutView.of(_rollout(percent), None)))
    assert n * p - half <= chosen <= n * p + half, (percent, chosen)


def test_only_a_loaded_canary_candidate_answers(production) -> None:
    canary = RolloutView.of(_rollout(100), production)
    assert all(canary.route(key) is production for key in KEYS[:50])
    assert RolloutView.of(_rollout(100), None).route("k") is None  # not loaded: production answers
    assert RolloutView.of(_rollout(100, mode="shadow"), production).route("k") is None
    half = RolloutView.of(_rollout(50), production)
    assert {half.route(key) is None for key in KEYS} == {True, False}
    assert half.tag == b"7.1"


def test_a_full_shadow_queue_skips_and_counts(production) -> None:
    scorer = ShadowScorer(None, "iris", size=2)
    before = sample("mlops_candidate_scorings_total", version="1", mode="shadow", result="skipped")
    for i in range(5):
        scorer.submit(production, [EXAMPLE], [f"r{i}"], [0])
    assert len(scorer.queue) == 2 and scorer.skipped == 3
    after = sample("mlops_candidate_scorings_total", version="1", mode="shadow", result="skipped")
    assert after - before == 3


def test_the_shadow_scorer_scores_what_queued_up_off_the_request_path(production) -> None:
    """Queued answers are scored by the background task: agreement (production's class vs the
    candidate's), latency per row and ok counts by the candidate's version."""
    candidate = replace(production, version="shadow-1")
    classes, _ = production.predict_rows([EXAMPLE])
    wrong = (int(classes[0]) + 1) % 3

    async def scenario() -> int:
        scorer = ShadowScorer(None, "iris", size=100)
        scorer.start()
        scorer.submit(candidate, [EXAMPLE], ["a"], classes)  # agrees
        scorer.submit(candidate, [EXAMPLE, EXAMPLE], ["b-0", "b-1"], [wrong, wrong])  # disagree
        for _ in range(500):
            if scorer.scored == 3:
                break
            await asyncio.sleep(0.01)
        await scorer.stop()
        return scorer.scored

    assert asyncio.run(scenario()) == 3
    assert sample("mlops_shadow_agreement_total", version="shadow-1", agree="true") == 1
    assert sample("mlops_shadow_agreement_total", version="shadow-1", agree="false") == 2
    assert sample("mlops_candidate_scorings_total", version="shadow-1", mode="shadow", result="ok") == 3
    assert sample("mlops_candidate_scoring_duration_seconds_count", version="shadow-1", mode="shadow") == 3


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _own_stores(shared_settings, tmp_path):
    """The shared registry, with a control database and a prediction log of this test's own."""
    return shared_settings.model_copy(
        update={
            "audit_db_url": f"sqlite:///{tmp_path / 'control.db'}",
            "prediction_log_url": f"sqlite:///{tmp_path / 'predictions.db'}",
        }
    )


def _scorings(settings) -> list[dict]:
    import sqlalchemy as sa

    from mlops.stores.tables import scorings

    engine = sa.create_engine(settings.prediction_log_db_url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.select(scorings))]
    finally:
        engine.dispose()


def test_shadow_scores_are_logged_under_the_answers_request_id(shared_settings, tmp_path, production) -> None:
    """Shadow mode: production answers; the candidate's scoring of the same request is logged beside
    it (role shadow, the candidate's version, the same request id) once the background task ran."""
    settings = _own_stores(shared_settings, tmp_path)
    store = RolloutStore.for_settings(settings)
    store.start(
        project="iris", model_name=production.name, candidate="1", baseline="1", mode="shadow", percent=100,
        actor="pytest",
    )  # fmt: skip
    app = create_app(settings)
    with TestClient(app) as client:
        follower = app.state.rollout
        assert _wait(lambda: follower.view is not None and follower.view.candidate is not None), (
            follower.status()
        )
        ids = set()
        for _ in range(5):
            response = client.post("/predict", json=EXAMPLE)
            assert response.status_code == 200 and response.headers["x-model-version"] == "1"
            ids.add(response.json()["request_id"])
        batch = client.post("/predict/batch", json={"rows": [EXAMPLE, EXAMPLE]}).json()
        ids |= {p["request_id"] for p in batch["predictions"]}
        assert _wait(lambda: follower.shadow.scored >= 7), follower.status()
    store.dispose()
    rows = [r for r in _scorings(settings) if r["request_id"] in ids]
    assert {r["request_id"] for r in rows} == ids
    assert {(r["role"], r["model_version"], r["error"]) for r in rows} == {("shadow", "1", None)}
    assert all(r["prediction"] is not None and r["latency_ms"] > 0 for r in rows)


def test_a_canary_candidate_that_fails_is_answered_by_production(
    shared_settings, tmp_path, production
) -> None:
    """The service follows a real rollout record (its own control database); the candidate then
    raises on every request: the client gets production's 200, the fallback is counted and logged."""
    settings = _own_stores(shared_settings, tmp_path)
    store = RolloutStore.for_settings(settings)
    rollout = store.start(
        project="iris", model_name=production.name, candidate="1", baseline="1", mode="canary", percent=100,
        actor="pytest",
    )  # fmt: skip
    app = create_app(settings)
    with TestClient(app) as client:
        follower = app.state.rollout
        assert _wait(lambda: follower.view is not None and follower.view.candidate is not None), (
            follower.status()
        )
        assert follower.status()["candidate_loaded"] and follower.status()["rollout_id"] == rollout.id
        answered = client.post("/predict", json=EXAMPLE, headers={"X-Routing-Key": "alice"})
        assert answered.status_code == 200 and answered.headers["x-rollout"] == f"{rollout.id}.1"
        assert answered.headers["x-model-version"] == answered.json()["model_version"] == "1"

        follower.view = RolloutView.of(follower.view.rollout, broken(production))
        fallbacks = sample("mlops_canary_fallbacks_total", version="2")
        errors = sample("mlops_candidate_scorings_total", version="2", mode="canary", result="error")
        failed_ids = set()
        for path, body in (("/predict", EXAMPLE), ("/predict/batch", {"rows": [EXAMPLE, EXAMPLE]})):
            response = client.post(path, json=body, headers={"X-Routing-Key": "bob"})
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == "1" and response.headers["x-model-version"] == "1"
            failed_ids |= {a["request_id"] for a in response.json().get("predictions", [response.json()])}
        assert sample("mlops_canary_fallbacks_total", version="2") - fallbacks == 2
        assert (
            sample("mlops_candidate_scorings_total", version="2", mode="canary", result="error") - errors == 3
        )

        store.end(rollout.id, expected_generation=rollout.generation, state="aborted")
        client.portal.call(follower.check)
        assert follower.view is None and follower.status()["rollout_id"] is None
        plain = client.post("/predict", json=EXAMPLE)
        assert "x-rollout" not in plain.headers and plain.headers["x-model-version"] == "1"
    store.dispose()
    logged = [r for r in _scorings(settings) if r["role"] == "canary"]
    assert {r["request_id"] for r in logged} == failed_ids
    assert all(
        r["model_version"] == "2" and r["prediction"] is None and "Error" in r["error"] for r in logged
    )
