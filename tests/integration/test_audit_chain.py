"""The audit log's hash chain on SQLite and on the machine's PostgreSQL: an untouched log verifies;
with the append-only guard dropped (what a database owner can do), an edited row, a deleted row, a
deleted tail and a rewritten chain are each caught and named; concurrent writers never fork the chain;
an outage spools and the next write catches up, in order; a c0001 log with rows is chained by c0002.

PostgreSQL: 127.0.0.1:5432, user postgres; missing, it skips locally and FAILS under ``CI=true``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops.stores import chain, migrate
from mlops.stores.audit import AuditEvent, AuditLog
from tests.support.control_db import LEGACY_AUDIT_ROWS, control_databases, drop_guards, execute, rewrite_chain


@pytest.fixture(params=["sqlite", "postgresql"])
def new_control(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    with control_databases(request.param, tmp_path) as make:
        yield make


def event(n: int, **kw) -> AuditEvent:
    base = {
        "action": "promote",
        "project": "iris",
        "model_name": "iris-classifier",
        "decision": "promoted",
        "reason": f"decision {n}",
        "actor": "pytest",
        "alias": "production",
        "to_version": str(n),
        "details": {"n": n, "score": 0.1 * n, "ci": [0.01, 0.2]},
    }
    return AuditEvent(**{**base, **kw})


def five_rows(url: str) -> AuditLog:
    log = AuditLog(url)
    for n in range(1, 6):
        log.record(event(n))
    return log


def test_an_untouched_log_verifies_and_heads_match(new_control) -> None:
    log = five_rows(new_control())
    report = log.verify()
    assert report.ok and report.rows == 5 and report.head_seq == 5, report
    assert log.head() == (5, report.head_hash)
    assert [e.seq for e in log.history()] == [1, 2, 3, 4, 5]
    assert log.verify([f"3:{log.history()[2].hash}", f"5:{report.head_hash}"]).ok


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"),
    [
        ("UPDATE audit_log SET reason = 'forged' WHERE seq = 2", 2, "hash mismatch (row edited)"),
        (
            'UPDATE audit_log SET details = \'{"n": 3, "score": 0.9}\' WHERE seq = 3',
            3,
            "hash mismatch (row edited)",
        ),
        ("DELETE FROM audit_log WHERE seq = 3", 3, "gap: seq 3 missing (row deleted)"),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "anchor mismatch (tail deleted or chain rewritten)"),
        ("DELETE FROM audit_log WHERE seq >= 4", 4, "anchor mismatch (tail deleted or chain rewritten)"),
    ],
)
def test_an_edited_or_deleted_row_is_named(new_control, tamper: str, seq: int, reason: str) -> None:
    url = new_control()
    log = five_rows(url)
    drop_guards(url)
    execute(url, tamper)
    report = log.verify()
    assert not report.ok and (report.broken_seq, report.reason) == (seq, reason), report


def test_a_rewritten_chain_is_caught_by_the_anchor_or_its_hmac(new_control) -> None:
    url = new_control()
    log = five_rows(url)
    drop_guards(url)
    rewrite_chain(url, edit_seq=2, reason="forged", anchor=False)  # every row consistent again
    report = log.verify()
    assert (report.ok, report.reason) == (False, "anchor mismatch (tail deleted or chain rewritten)"), report
    rewrite_chain(url, edit_seq=2, reason="forged", anchor=True)  # and the anchor moved, without the key
    report = log.verify()
    assert (report.ok, report.broken_seq, report.reason) == (
        False,
        5,
        "hmac invalid (anchor forged or wrong key)",
    )
    forged = chain.anchor_hmac(b"a guessed key", report.head_seq, report.head_hash)
    execute(url, f"UPDATE audit_anchor SET hmac = '{forged}'")
    assert log.verify().reason == "hmac invalid (anchor forged or wrong key)"


def test_a_deleted_tail_with_its_anchor_rewound_is_caught_by_the_external_head(new_control) -> None:
    url = new_control()
    log = five_rows(url)
    tagged = f"5:{log.head()[1]}"  # what ledger records in the registered model's `audit.head` tag
    drop_guards(url)
    execute(url, "DELETE FROM audit_log WHERE seq = 5")
    seq, digest = log.head()
    execute(url, f"UPDATE audit_anchor SET seq = {seq}, hash = '{digest}'")
    assert log.verify().reason.startswith("hmac invalid")
    # even with the key (an insider re-signing the anchor), the external head is ahead of the table
    execute(url, f"UPDATE audit_anchor SET hmac = '{chain.anchor_hmac(log.key, seq, digest)}'")
    assert log.verify().ok
    report = log.verify([tagged])
    assert (report.ok, report.broken_seq) == (False, 5) and "ahead of the table" in report.reason


def test_the_guards_still_refuse_changes(new_control) -> None:
    url = new_control()
    five_rows(url)
    for statement in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            execute(url, statement)
    if url.startswith("postgresql"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            execute(url, "TRUNCATE audit_log")


def test_concurrent_writers_never_fork_the_chain(new_control) -> None:
    url = new_control()
    AuditLog(url).record(event(0))
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        log = AuditLog(url)  # its own engine: as another process would
        try:
            for n in range(8):
                log.record(event(100 * w + n, actor=f"writer-{w}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            log.dispose()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    log = AuditLog(url)
    seqs = [e.seq for e in log.history()]
    assert seqs == list(range(1, 34))
    report = log.verify()
    assert report.ok and report.rows == 33, report


def test_an_outage_spools_and_the_next_write_catches_up_in_order(new_control, tmp_path, caplog) -> None:
    url = new_control()
    spool = tmp_path / "audit-spool"
    AuditLog(url, spool_dir=spool).record(event(1))
    down = _unreachable(url)
    with down() as down_url:
        outage = AuditLog(down_url, spool_dir=spool)
        first = outage.record(event(2, decision="refused", reason="registry unreachable"))
        second = outage.record(event(3, decision="refused", reason="still down"))
    assert first.spooled and second.spooled and first.seq is None
    assert "spooled" in caplog.text
    log = AuditLog(url, spool_dir=spool)
    assert log.spool_path is not None and len(log.spool_path.read_text().splitlines()) == 2
    back = log.record(event(4, reason="store back"))
    assert back.seq == 4 and not back.spooled
    events = log.history()
    assert [(e.seq, e.reason) for e in events] == [
        (1, "decision 1"),
        (2, "registry unreachable"),
        (3, "still down"),
        (4, "store back"),
    ]
    assert events[1].at == first.at  # the original time kept
    assert "spooled_at" in events[1].details and log.spool_path.read_text() == ""
    assert log.verify().ok
    assert log.replay_spool() == 0  # nothing written twice


def _unreachable(url: str):
    """A context giving a URL of the same database name that cannot be reached: a closed port on
    Postgres; on SQLite the file held under an exclusive lock by another connection (busy timeout)."""
    from contextlib import contextmanager

    @contextmanager
    def down():
        if url.startswith("postgresql"):
            yield url.replace("127.0.0.1:5432", "127.0.0.1:1")
            return
        engine = sa.create_engine(url, connect_args={"timeout": 0})
        conn = engine.raw_connection()
        conn.isolation_level = None  # type: ignore[attr-defined]
        cur = conn.cursor()
        cur.execute("BEGIN EXCLUSIVE")
        try:
            yield url
        finally:
            cur.execute("ROLLBACK")
            conn.close()
            engine.dispose()

    return down


def test_c0002_chains_the_rows_of_a_c0001_log_so_it_verifies(request, tmp_path) -> None:
    for backend in ("sqlite", "postgresql"):
        with control_databases(backend, tmp_path) as make:
            url = make()  # at head; rebuild it at c0001 with rows
            from alembic import command

            engine = migrate.create_engine(url)
            with engine.begin() as conn:
                command.downgrade(migrate.alembic_config(url, ["control"], conn), "c0001")
            engine.dispose()
            execute(url, *LEGACY_AUDIT_ROWS)
            migrate.upgrade(url, ["control"])
            migrate.check(url, ["control"])
            log = AuditLog(url)
            assert [(e.seq, e.actor) for e in log.history()] == [(1, "ana"), (2, "bo"), (3, "ci")]
            assert log.verify().ok, backend
            log.record(event(4))
            assert log.verify().ok and log.head()[0] == 4
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                execute(url, "DELETE FROM audit_log")
            log.dispose()


def test_mlops_audit_verify_exits_0_then_6_naming_the_row(new_control, tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    from pydantic import SecretStr

    from mlops.settings import Settings

    url = new_control()
    key = "k-" + "9" * 40
    log = AuditLog(url, settings=Settings(home=tmp_path, audit_hmac_key=SecretStr(key)))
    for n in range(1, 4):
        log.record(event(n))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env |= {"MLOPS_HOME": str(tmp_path / "cli"), "MLOPS_AUDIT_DB_URL": url, "MLOPS_AUDIT_HMAC_KEY": key}

    def verify() -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "mlops.cli", "audit", "verify", "--no-registry", "--json"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)

    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rows"] == 3
    drop_guards(url)
    execute(url, "DELETE FROM audit_log WHERE seq = 3")
    tampered = verify()
    assert tampered.returncode == 6 and "Traceback" not in tampered.stderr, tampered.stderr
    assert json.loads(tampered.stdout)["broken_seq"] == 3
    assert "seq 3: anchor mismatch (tail deleted or chain rewritten)" in " ".join(tampered.stderr.split())
