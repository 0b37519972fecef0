"""Health data on SQLite: the retention purge's exact cutoff, erasure by request id and by subject,
the audit chain verifying after both, and nothing else deleted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from mlops.errors import UsageError
from mlops.serving.middleware import RequestMiddleware
from mlops.settings import Settings
from mlops.stores.audit import AuditLog
from mlops.stores.predictions import PredictionStore, Record, ScoringRecord
from mlops.stores.retention import erase, hash_subject, purge_expired, subject_secret
from mlops.stores.tables import feedback, predictions, scorings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _record(request_id: str, at: datetime, subject: str | None = None) -> Record:
    inputs = {"sepal_length": 5.1, "patient": f"secret-input-{request_id}"}
    return Record(
        request_id, at, "iris", "m", "1", "onnx", inputs, 0, "setosa", {"setosa": 0.9}, 0.4, None, subject
    )


def _scoring(request_id: str, at: datetime) -> ScoringRecord:
    return ScoringRecord(request_id, at, "iris", "m", "2", "shadow", 0, "setosa", {"setosa": 0.8}, 0.5)


def _ids(settings: Settings, table: sa.Table) -> list[str]:
    engine = sa.create_engine(settings.prediction_log_db_url)
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.select(table.c.request_id)).scalars())
    finally:
        engine.dispose()


def _label(store: PredictionStore, request_id: str) -> None:
    assert store.record_feedback(request_id, "iris", 0) is not None


def _audit(settings: Settings) -> AuditLog:
    return AuditLog.for_settings(settings)


@pytest.fixture
def store(settings: Settings):
    s = PredictionStore(settings.prediction_log_db_url)
    yield s
    s.dispose()


def test_purge_deletes_strictly_older_rows_and_their_scorings_and_labels(settings, store) -> None:
    cutoff = NOW - timedelta(days=settings.retention_days)
    tick = timedelta(microseconds=1)
    store.insert(
        [
            _record("old", cutoff - tick),
            _record("edge", cutoff),  # exactly at the cutoff: kept
            _record("new", NOW - timedelta(days=1)),
            _scoring("old", cutoff - tick),
            _scoring("edge", cutoff),
            _scoring("orphan", cutoff - timedelta(days=3)),  # its prediction purged long ago
        ]
    )
    for request_id in ("old", "edge", "new"):
        _label(store, request_id)

    report = purge_expired(settings, actor="pytest", now=NOW)

    assert (report.predictions, report.scorings, report.feedback) == (1, 2, 1)
    assert report.cutoff == cutoff.isoformat()
    assert _ids(settings, predictions) == ["edge", "new"]
    assert _ids(settings, scorings) == ["edge"]
    assert _ids(settings, feedback) == ["edge", "new"]
    log = _audit(settings)
    event = log.history()[-1]
    assert (event.action, event.decision, event.seq) == ("purge", "purged", report.audit_seq)
    assert event.details["predictions"] == 1 and event.details["cutoff"] == cutoff.isoformat()
    assert log.verify().ok
    log.dispose()


def test_a_purge_goes_in_batches_and_a_second_one_finds_nothing(settings, store) -> None:
    old = NOW - timedelta(days=settings.retention_days + 1)
    store.insert([_record(f"r{i}", old + timedelta(seconds=i)) for i in range(7)])

    first = purge_expired(settings, actor="pytest", now=NOW, batch_rows=3)
    second = purge_expired(settings, actor="pytest", now=NOW)

    assert first.predictions == 7 and first.batches == 3
    assert second.predictions == second.scorings == second.feedback == 0
    assert _ids(settings, predictions) == []
    log = _audit(settings)
    assert [e.action for e in log.history()] == ["purge", "purge"] and log.verify().ok
    log.dispose()


def test_erasure_by_request_id_takes_a_batch_requests_rows_and_nothing_else(settings, store) -> None:
    base = "a" * 32
    store.insert(
        [
            _record(base, NOW),
            _record(f"{base}-0", NOW),
            _record(f"{base}-1", NOW),
            _record(f"{base}-x", NOW),  # not a row of that batch request
            _record(f"{base}b", NOW),  # another request sharing the prefix
            _record("other", NOW),
            _scoring(f"{base}-1", NOW),
            _scoring("other", NOW),
        ]
    )
    _label(store, f"{base}-0")
    _label(store, "other")
    before = _audit(settings).verify()

    report = erase(settings, request_ids=[base], actor="pytest", reason="erasure request #1")

    assert (report.predictions, report.scorings, report.feedback) == (3, 1, 1)
    assert _ids(settings, predictions) == sorted([f"{base}-x", f"{base}b", "other"])
    assert _ids(settings, scorings) == ["other"] and _ids(settings, feedback) == ["other"]
    log = _audit(settings)
    event = log.history()[-1]
    assert (event.action, event.reason, event.details["request_ids"]) == (
        "erase",
        "erasure request #1",
        [base],
    )
    assert "secret-input" not in json.dumps(event.as_dict())  # ids and counts, never an input
    after = log.verify()
    assert before.ok and after.ok and after.rows == before.rows + 1
    log.dispose()

    one = erase(settings, request_ids=[f"{base}-x"], actor="pytest", reason="one row")
    assert one.predictions == 1 and f"{base}-x" not in _ids(settings, predictions)


def test_erasure_by_subject_finds_the_rows_by_the_keyed_hash_only(settings, store) -> None:
    secret = subject_secret(settings)
    patient = hash_subject(secret, "P-000123")
    store.insert(
        [
            _record("p1", NOW, patient),
            _record("p2", NOW - timedelta(days=2), patient),
            _record("q1", NOW, hash_subject(secret, "P-000124")),
            _record("anonymous", NOW),
        ]
    )
    _label(store, "p2")
    assert len(patient) == 64 and patient != hash_subject(secret, "p-000123")

    report = erase(settings, subject_key="  P-000123 ", actor="pytest", reason="patient asked")

    assert (report.predictions, report.feedback, report.subject_hash) == (2, 1, patient)
    assert _ids(settings, predictions) == ["anonymous", "q1"]
    log = _audit(settings)
    assert log.history()[-1].details["subject_hash"] == patient and log.verify().ok
    log.dispose()
    for database in settings.state_dir.glob("*.db"):  # the raw key is written nowhere
        assert b"P-000123" not in database.read_bytes()


def test_erasure_reports_rows_still_in_the_spool(settings, store) -> None:
    folder = settings.prediction_spool_dir / "123-abc"
    folder.mkdir(parents=True)
    (folder / "00000000000000000001-123-1.seg").write_bytes(
        b'{"p": [["abcd-0", "2026-12-01T12:00:00Z"]], "s": []}'
    )

    report = erase(settings, request_ids=["abcd"], actor="pytest", reason="spool")

    assert report.still_spooled == 1 and report.predictions == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "nothing to erase"),
        ({"request_ids": ["r1"], "reason": " "}, "needs a reason"),
        ({"subject_key": "   "}, "empty X-Subject-Key"),
        ({"subject_key": "x" * 300}, "longer than"),
        ({"request_ids": ["bad\nid"]}, "not a request id"),
    ],
)
def test_erasure_refuses_bad_input(settings, kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        erase(settings, actor="pytest", **{"reason": "r", **kwargs})


def test_the_middleware_stores_the_keyed_hash_and_refuses_a_bad_header(settings) -> None:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"subject_hash": request.scope["state"].get("subject_hash")})

    app = Starlette(routes=[Route("/", echo)])
    app.state.settings = settings
    app.add_middleware(RequestMiddleware)
    client = TestClient(app)
    expected = hash_subject(subject_secret(settings), "P-000123")

    assert client.get("/", headers={"X-Subject-Key": "P-000123"}).json() == {"subject_hash": expected}
    assert client.get("/").json() == {"subject_hash": None}
    refused = client.get("/", headers={"X-Subject-Key": "  "})
    assert refused.status_code == 400 and refused.json()["detail"]["field"] == "X-Subject-Key"
    assert refused.headers["x-request-id"]


def test_the_cli_purges_and_erases_with_json_reports(settings, store, monkeypatch) -> None:
    from mlops.cli import app, render

    store.insert([_record("old", NOW - timedelta(days=settings.retention_days + 1)), _record("keep", NOW)])
    monkeypatch.setattr(render, "json_out", __import__("io").StringIO())
    out = CliRunner().invoke(app, ["purge", "--now", NOW.strftime("%Y-%m-%dT%H:%M:%S"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(render.json_out.getvalue())["predictions"] == 1

    refused = CliRunner().invoke(app, ["erase", "keep"])
    assert refused.exit_code == 2 and "needs a reason" in refused.output
    done = CliRunner().invoke(app, ["erase", "keep", "--reason", "asked"])
    assert done.exit_code == 0 and "1 predictions" in done.output
    assert _ids(settings, predictions) == []


def test_nothing_is_deleted_when_the_audit_cannot_record_it(settings, store, tmp_path) -> None:
    from mlops.errors import MlopsError, Unavailable

    store.insert([_record("old", NOW - timedelta(days=settings.retention_days + 1))])
    (tmp_path / "a-folder").mkdir()
    down = settings.model_copy(update={"audit_db_url": f"sqlite:///{tmp_path / 'a-folder'}"})  # cannot open
    with pytest.raises(Unavailable, match="nothing was deleted"):
        purge_expired(down, actor="pytest", now=NOW)
    keyless = settings.model_copy(update={"environment": "staging"})  # no MLOPS_AUDIT_HMAC_KEY
    with pytest.raises(MlopsError, match="no audit HMAC key"):
        erase(keyless, request_ids=["old"], actor="pytest", reason="r")
    assert _ids(settings, predictions) == ["old"]
