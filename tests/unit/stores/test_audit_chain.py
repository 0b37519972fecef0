"""The audit chain's pieces on the embedded default: the anchor key (a 0600 file made once in
development, refused elsewhere), the spool's torn last line, the frozen canonical form."""

from __future__ import annotations

import json
import stat

import pytest
from pydantic import SecretStr

from mlops.errors import MlopsError
from mlops.settings import Settings
from mlops.stores import chain
from mlops.stores.audit import AuditEvent, AuditLog


def event(reason: str = "r") -> AuditEvent:
    return AuditEvent(
        action="promote", project="iris", model_name="m", decision="refused", reason=reason, actor="me"
    )


def test_the_development_key_is_a_0600_file_made_once_beside_the_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'audit.db'}"
    first = AuditLog(url, settings=Settings(home=tmp_path / "state")).key
    key_file = tmp_path / "state" / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(first) == 64
    assert AuditLog(url).key == first  # every writer of this database signs with the same key


def test_a_configured_key_signs_and_a_different_one_fails_verification(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    settings = Settings(home=tmp_path, audit_hmac_key=SecretStr("k-" + "a" * 30))
    AuditLog(url, settings=settings).record(event())
    assert AuditLog(url, settings=settings).verify().ok
    other = Settings(home=tmp_path, audit_hmac_key=SecretStr("k-" + "b" * 30))
    report = AuditLog(url, settings=other).verify()
    assert (report.ok, report.reason) == (False, "hmac invalid (anchor forged or wrong key)")


def test_no_key_outside_development_is_refused_before_writing(tmp_path) -> None:
    settings = Settings.model_construct(home=tmp_path, environment="production", audit_hmac_key=None)
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", spool_dir=tmp_path / "spool", settings=settings)
    with pytest.raises(MlopsError, match="no audit HMAC key in production") as refused:
        log.record(event())
    assert "MLOPS_AUDIT_HMAC_KEY" in refused.value.hint
    assert not (tmp_path / "audit.key").exists() and not (tmp_path / "spool").exists()


def test_the_key_never_travels_as_a_step_parameter(tmp_path) -> None:
    settings = Settings(home=tmp_path, audit_hmac_key=SecretStr("k-" + "c" * 30))
    assert "audit_hmac_key" not in settings.step_parameters()


def test_a_torn_last_line_of_the_spool_is_skipped_never_blocks(tmp_path, caplog) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = AuditLog(url, spool_dir=tmp_path / "spool")
    assert log.spool_path is not None and log.spool_path.name == "audit.jsonl"
    log.spool_path.parent.mkdir(parents=True)
    whole = event("spooled before the crash").as_dict()
    log.spool_path.write_text(json.dumps(whole) + "\n" + json.dumps(event("torn").as_dict())[:40])
    log.record(event("after the crash"))
    assert [e.reason for e in log.history()] == ["spooled before the crash", "after the crash"]
    assert "unreadable" in caplog.text and log.spool_path.read_text() == ""
    assert log.verify().ok


def test_the_canonical_form_is_stable() -> None:
    """Frozen: a change here breaks the verification of every stored log."""
    from datetime import UTC, datetime

    row = {
        "id": 9,
        "hash": "ignored",
        "seq": 1,
        "prev_hash": chain.GENESIS,
        "at": datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        "details": '{"b": 1, "a": [1.5, null]}',
        "reason": "é",
    }
    assert chain.canonical(row) == (
        '{"at":"2026-12-01T10:00:00.000000+00:00","details":{"a":[1.5,null],"b":1},'
        '"prev_hash":"' + "0" * 64 + '","reason":"é","seq":1}'
    )
    assert chain.row_hash(row) == chain.row_hash({**row, "at": datetime(2026, 12, 1, 10, 0)})  # naive = UTC
