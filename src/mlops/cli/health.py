"""Health data: the retention purge, erasure on request, backup and restore of every store.

``mlops purge`` (also run by the monitoring loop and the retention CronJob) and ``mlops erase`` act
on the prediction log; ``mlops backup DIR`` and ``mlops restore DIR`` on every store
(docs/health-data.md is the runbook). Each is audited; ``--json`` prints the report only.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops.cli import render
from mlops.cli.base import JsonOpt, app
from mlops.errors import MlopsError, UsageError
from mlops.settings import get_settings

DatabaseOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--database",
        help="NAME=URL of a database the settings do not name (e.g. mlflow=postgresql://… behind an "
        "MLflow server); repeatable.",
    ),
]


def _databases(values: list[str] | None) -> dict[str, str]:
    out = {}
    for value in values or []:
        name, sep, url = value.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise UsageError(
                f"--database {value!r} is not NAME=URL", hint="e.g. --database mlflow=postgresql://…"
            )
        out[name.strip()] = url.strip()
    return out


@app.command()
def purge(
    now: Annotated[
        datetime | None,
        typer.Option(help="Purge as of this time (UTC; default: now). For a replay or a test."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete prediction-log rows, scorings and labels older than MLOPS_RETENTION_DAYS (audited)."""
    from mlops.stores.retention import purge_expired

    settings = get_settings()
    report = purge_expired(settings, actor=settings.who, now=now)
    render.show(report, as_json, _purged, document=report.as_dict())


def _purged(report: Any) -> None:
    render.console.print(
        f"[green]purged[/] {report.predictions:,} predictions, {report.scorings:,} scorings, "
        f"{report.feedback:,} labels older than {report.cutoff} ({report.retention_days:g} days); "
        f"audit seq {report.audit_seq}",
        highlight=False,
    )


@app.command()
def erase(
    request_ids: Annotated[
        list[str] | None, typer.Argument(help="Request ids (X-Request-Id) whose rows to erase.")
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(help="Erase every request sent with this X-Subject-Key ('-': read it from stdin)."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log; required).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Erase every logged row of requests, or of a subject (audited: ids, hash, counts).

    The audit row keeps the request ids, the subject's keyed hash and the counts: never the key or
    an input. A batch request's id erases all its rows."""
    from mlops.stores.retention import erase as do_erase

    if subject == "-":
        subject = sys.stdin.readline().rstrip("\n")
    settings = get_settings()
    report = do_erase(
        settings, request_ids=request_ids or [], subject_key=subject, actor=settings.who, reason=reason
    )
    render.show(report, as_json, _erased, document=report.as_dict())
    if report.still_spooled:
        raise MlopsError(
            f"{report.still_spooled} spool segments not yet shipped hold rows of these requests",
            hint="run the same `mlops erase` again once the service's shipper wrote them (seconds)",
        )


def _erased(report: Any) -> None:
    who = f"subject {report.subject_hash[:12]}…" if report.subject_hash else ""
    ids = f"{len(report.request_ids)} request ids" if report.request_ids else ""
    of = " and ".join(x for x in (ids, who) if x)
    render.console.print(
        f"[green]erased[/] {report.predictions:,} predictions, {report.scorings:,} scorings, "
        f"{report.feedback:,} labels of {of}; audit seq {report.audit_seq}",
        highlight=False,
    )


@app.command()
def backup(
    target: Annotated[Path, typer.Argument(help="A new (or empty) folder to write the backup to.")],
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Back up every store (state folder, databases) while the service runs.

    SQLite files by SQLite's online backup API, PostgreSQL by pg_dump under one snapshot; a
    manifest with row counts and checksums."""
    from mlops.stores.backup import backup as do_backup

    settings = get_settings()
    manifest = do_backup(settings, target, actor=settings.who, databases=_databases(database))
    render.show(manifest, as_json, lambda m: _backed_up(target, m))


def _backed_up(target: Path, manifest: dict[str, Any]) -> None:
    render.console.print(f"[green]backup[/] of {manifest['state_dir']} → {target}", highlight=False)
    for store in manifest["stores"]:
        size = f"{sum(store['tables'].values()):,} rows" if store["tables"] else f"{store['files']:,} files"
        render.console.print(f"  {store['name']} ({store['kind']}): {size}", highlight=False)


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A folder `mlops backup` wrote.")],
    force: Annotated[
        bool, typer.Option(help="Restore over existing state (the state folder is moved aside, not deleted).")
    ] = False,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore every store from a backup, then check it (stop the service first).

    Checks row counts, file checksums and the audit chain; refuses a non-empty state without
    --force."""
    from mlops.stores.backup import restore as do_restore

    settings = get_settings()
    result = do_restore(settings, source, actor=settings.who, databases=_databases(database), force=force)
    render.show(result, as_json, _restored)
    if not result["ok"]:
        raise MlopsError("the restore does not match its backup", hint="see the problems listed above")


def _restored(result: dict[str, Any]) -> None:
    color = "green" if result["ok"] else "bold red"
    render.console.print(f"[{color}]restore[/] {result['source']} → {result['state_dir']}", highlight=False)
    for check in result["stores"]:
        mark = "[green]ok[/]" if check["ok"] else "[red]differs[/]"
        size = f"{check['rows']:,} rows" if "rows" in check else f"{check.get('files', 0):,} files"
        render.console.print(f"  {check['name']}: {size} {mark}", highlight=False)
        for problem in check["problems"]:
            render.console.print(f"    - {problem}", highlight=False)
    chain = result["audit_chain"]
    render.console.print(
        f"  audit chain: {'[green]intact[/]' if chain['ok'] else '[red]' + chain['reason'] + '[/]'}"
        f" ({chain['rows']} rows)",
        highlight=False,
    )
    if result["moved_aside"]:
        render.console.print(f"  the previous state folder is at {result['moved_aside']}", highlight=False)
