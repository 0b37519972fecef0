"""Backup and restore of every store: the state folder and every database the settings name.

What a backup holds (``manifest.json`` lists each store, its tables' row counts, its files' SHA-256):

- the state folder (``MLOPS_HOME``), file by file: the control and prediction-log databases when
  embedded, MLflow's database and artifacts (``mlartifacts``), ZenML's local store and artifact store
  (``zenml/``), the model cache, Optuna's journal, the development audit key, the spools (rows and
  audit events accepted but not yet written: nothing in transit is lost). Every SQLite file in it is
  copied with SQLite's online backup API (a consistent snapshot while the service writes, WAL
  included), never byte by byte;
- every database outside that folder: the control DB, the prediction log, MLflow's backend store,
  Optuna's RDB storage, and any database named with ``databases={"name": url}`` (e.g. the MLflow
  server's backend store when the settings reach MLflow over HTTP). PostgreSQL is dumped with
  ``pg_dump --format=custom`` under a snapshot exported by the same transaction that counts its rows,
  so the counts describe exactly what was dumped; SQLite by its backup API.

Databases are copied before the folders that hold their artifacts: an artifact written meanwhile is an
orphan after a restore, never a row pointing at a missing file. Object stores (S3 artifact stores of
server mode) are not copied here: the runbook (docs/health-data.md) uses the bucket's versioning.

``restore`` refuses a non-empty state (a state folder with files, a database with tables) unless
``force``; with ``force`` the old state folder is moved aside (``<home>.before-restore-<time>``), not
deleted. It then checks every row count and file hash against the manifest. MLflow and ZenML record
absolute artifact paths, so a backup restores into the state folder it was taken from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import sqlalchemy as sa

from mlops.errors import MlopsError, UsageError
from mlops.settings import mask_url
from mlops.stores.engine import sqlite_path

if TYPE_CHECKING:
    from mlops.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
STATE = "state"  # the state folder's copy inside a backup
AUDIT_SCOPE = "state"  # the audit rows' project: a backup or restore spans every use case
DATABASES = "databases"  # dumps of databases outside the state folder
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_SIDE = ("-wal", "-shm", "-journal")
# Names of files under the state folder, for the manifest's list of stores (the rest is "other").
_STATE_STORES = (
    ("audit.db", "control database"),
    ("audit.key", "audit key (development)"),
    ("audit-spool", "audit spool"),
    ("predictions.db", "prediction log"),
    ("prediction-spool", "prediction-log spool"),
    ("mlflow.db", "MLflow database"),
    ("mlartifacts", "MLflow artifacts"),
    ("zenml", "ZenML store and artifact store"),
    ("model-cache", "model cache"),
    ("optuna", "Optuna journal"),
)


@dataclass
class StoreCopy:
    name: str
    kind: str  # sqlite | postgresql | files
    source: str  # masked URL, or the path in the state folder
    path: str  # inside the backup
    tables: dict[str, int] = field(default_factory=dict)  # row counts (databases)
    files: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----- which databases -----
def databases_of(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every database the settings name, by role (one role per distinct URL), plus ``extra``."""
    named = {
        "control": settings.audit_url,
        "predictions": settings.prediction_log_db_url,
        "mlflow": settings.mlflow_tracking_uri,
        "mlflow-registry": settings.mlflow_registry_uri,
        "optuna": settings.search_storage,
        **(extra or {}),
    }
    out: dict[str, str] = {}
    for role, url in named.items():
        if not url or url.startswith(("http://", "https://", "file:")) or url in out.values():
            continue
        if not url.startswith(("sqlite", "postgresql")):
            raise UsageError(
                f"cannot back up the {role} database ({mask_url(url)}): only SQLite and PostgreSQL can be",
                hint="dump it with its own tool (e.g. mysqldump for ZenML's MySQL): docs/health-data.md",
            )
        out[role] = url
    return out


def _outside(settings: Settings, url: str) -> bool:
    """A database not inside the state folder (the folder's own walk copies those)."""
    path = sqlite_path(url)
    return path is None or not path.resolve().is_relative_to(settings.state_dir)


# ----- backup -----
def backup(
    settings: Settings, target: Path, *, actor: str, databases: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Copy every store into ``target`` (a new or empty folder), the manifest written last, then
    audit the backup (in the live log: the backup's own copy ends before that row)."""
    target = target.expanduser().resolve()
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"backup folder {target} is not empty", hint="name a new folder for each backup")
    if target.is_relative_to(settings.state_dir):
        raise UsageError(f"backup folder {target} is inside the state folder", hint="back up elsewhere")
    roles = databases_of(settings, databases)
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / DATABASES).mkdir(parents=True)
    stores: list[StoreCopy] = []
    try:
        for role, url in roles.items():  # databases first, their artifacts after (see the docstring)
            if _outside(settings, url):
                stores.append(_dump(role, url, partial / DATABASES))
        stores += _copy_state(settings.state_dir, partial / STATE, roles)
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "state_dir": str(settings.state_dir),
            "stores": [s.as_dict() for s in stores],
            "checksums": _checksums(partial),
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if target.exists():
            target.rmdir()
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _audit(settings, "backup", "succeeded", f"backup to {target}", actor, _summary(stores))
    return manifest


def _summary(stores: list[StoreCopy] | list[dict[str, Any]]) -> dict[str, Any]:
    """Per store: its rows or files (what the audit keeps of a backup: counts, no content)."""
    out = {}
    for store in stores:
        s = store.as_dict() if isinstance(store, StoreCopy) else store
        out[s["name"]] = {"rows": sum(s["tables"].values())} if s["tables"] else {"files": s["files"]}
    return out


def _audit(
    settings: Settings, action: str, decision: str, reason: str, actor: str, details: dict[str, Any]
) -> int | None:
    from mlops.stores.audit import AuditEvent, AuditLog

    log = AuditLog.for_settings(settings)
    try:
        event = AuditEvent(
            action=action,
            project=AUDIT_SCOPE,
            model_name="",
            decision=decision,
            reason=reason,
            actor=actor,
            details=details,
        )
        return log.record(event).seq
    finally:
        log.dispose()


def _dump(role: str, url: str, folder: Path) -> StoreCopy:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is None or not path.exists():
            raise UsageError(f"the {role} database {url} does not exist", hint="check its URL")
        out = folder / f"{role}.sqlite"
        tables = _sqlite_copy(path, out)
        return StoreCopy(role, "sqlite", str(path), f"{DATABASES}/{out.name}", tables, 1, out.stat().st_size)
    out = folder / f"{role}.dump"
    tables = _pg_dump(url, out)
    return StoreCopy(
        role, "postgresql", mask_url(url), f"{DATABASES}/{out.name}", tables, 1, out.stat().st_size
    )


def _copy_state(state: Path, out: Path, roles: Mapping[str, str]) -> list[StoreCopy]:
    """The state folder, file by file (SQLite files by the backup API), grouped into named stores."""
    if not state.exists():
        return []
    names = {sqlite_path(u).resolve(): r for r, u in roles.items() if sqlite_path(u)}  # type: ignore[union-attr]
    stores: dict[str, StoreCopy] = {}
    sqlite_files = {p for p in _files(state) if _is_sqlite(p)}
    for path in sorted(_files(state)):
        if any(str(path).endswith(s) and Path(str(path)[: -len(s)]) in sqlite_files for s in _SQLITE_SIDE):
            continue  # a database's WAL or journal: its content is in the backup API's copy
        relative = path.relative_to(state)
        label = _store_label(relative)
        store = stores.setdefault(label, StoreCopy(label, "files", str(state / relative.parts[0]), STATE))
        dest = out / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path in sqlite_files:
            database = StoreCopy(
                names.get(path.resolve(), str(relative)), "sqlite", str(path), f"{STATE}/{relative}"
            )
            database.tables = _sqlite_copy(path, dest)
            database.files, database.bytes = 1, dest.stat().st_size
            stores[f"sqlite:{relative}"] = database
            continue
        try:
            shutil.copy2(path, dest)
        except FileNotFoundError:  # removed meanwhile (a spool segment shipped): not state any more
            continue
        store.files += 1
        store.bytes += dest.stat().st_size
    return [s for s in stores.values() if s.files]


def _store_label(relative: Path) -> str:
    top = relative.parts[0]
    return next((label for name, label in _STATE_STORES if name == top), f"other: {top}")


def _files(root: Path) -> Iterator[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def _sqlite_copy(source: Path, dest: Path) -> dict[str, int]:
    """A consistent copy of a live SQLite database (the online backup API) and its row counts."""
    src = sqlite3.connect(_read_only(source), uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no WAL beside it
        return _sqlite_counts(dst)
    finally:
        dst.close()
        src.close()


def _read_only(path: Path) -> str:
    return f"file:{quote(str(path))}?mode=ro"


def _sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in sorted(names)}


# ----- PostgreSQL -----
def _libpq(url: str) -> tuple[dict[str, str], str]:
    """The environment libpq reads (password included: never on a command line) and the database."""
    parsed = sa.engine.make_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for name, value in (
        ("PGHOST", parsed.host),
        ("PGPORT", parsed.port),
        ("PGUSER", parsed.username),
        ("PGPASSWORD", parsed.password),
    ):
        if value is not None:
            env[name] = str(value)
    return env, str(parsed.database or "")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MlopsError(
            f"{name} not found", hint="install the PostgreSQL client (Debian: postgresql-client)"
        )
    return found


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MlopsError(f"{what} failed: {done.stderr.strip()[-2000:]}", hint="see the PostgreSQL message")


def _pg_engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})


def _pg_dump(url: str, out: Path) -> dict[str, int]:
    """``pg_dump`` under a snapshot that this transaction exported after counting its rows in it."""
    engine = _pg_engine(url)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
                counts = _pg_counts(conn)
                env, database = _libpq(url)
                _run(
                    [
                        _tool("pg_dump"),
                        "--format=custom",
                        f"--snapshot={snapshot}",
                        f"--file={out}",
                        database,
                    ],
                    env,
                    f"pg_dump of {mask_url(url)}",
                )
    finally:
        engine.dispose()
    return counts


def _pg_counts(conn: sa.Connection) -> dict[str, int]:
    rows = conn.exec_driver_sql(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    ).all()
    counts = {}
    for schema, name in sorted(rows):
        label = name if schema == "public" else f"{schema}.{name}"
        counts[label] = conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}"."{name}"').scalar_one()
    return counts


def _pg_tables(url: str) -> dict[str, int]:
    engine = _pg_engine(url)
    try:
        with engine.connect() as conn:
            return _pg_counts(conn)
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise MlopsError(
            f"cannot reach the database {mask_url(url)}: {reason}",
            hint="start PostgreSQL, and create the (empty) database first: createdb NAME",
        ) from None
    finally:
        engine.dispose()


# ----- restore -----
def restore(
    settings: Settings,
    source: Path,
    *,
    actor: str,
    databases: Mapping[str, str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Bring every store of the backup at ``source`` back, check each against the manifest and the
    restored audit chain, then audit the restore in it."""
    source = source.expanduser().resolve()
    manifest = read_manifest(source)
    state = settings.state_dir
    if Path(manifest["state_dir"]) != state:
        raise UsageError(
            f"this backup is of the state folder {manifest['state_dir']}, not {state}",
            hint=f"restore with MLOPS_HOME={manifest['state_dir']} (MLflow and ZenML record absolute paths)",
        )
    roles = databases_of(settings, databases)
    targets: dict[str, str] = {}
    for store in manifest["stores"]:
        if store["path"].startswith(f"{DATABASES}/"):
            url = roles.get(store["name"])
            if url is None:
                raise UsageError(
                    f"the backup holds the {store['name']} database, and no database is configured for it",
                    hint=f"pass --database {store['name']}=URL (an empty database)",
                )
            targets[store["name"]] = url
    _check_checksums(source, manifest)
    occupied = _occupied(state, manifest, targets)
    if occupied and not force:
        raise UsageError(
            "refusing to restore over existing state: " + "; ".join(occupied),
            hint="restore into an empty state, or pass --force (the state folder is moved aside)",
        )
    moved = None
    if state.exists() and any(state.iterdir()):
        moved = state.with_name(f"{state.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        try:
            state.rename(moved)
        except OSError as exc:  # a mount point (a volume) cannot be renamed
            raise MlopsError(
                f"cannot move the state folder {state} aside: {exc.strerror}",
                hint="empty it yourself (move its content elsewhere), then restore without --force",
            ) from None
    if (source / STATE).exists():
        shutil.copytree(source / STATE, state, dirs_exist_ok=True)
    else:
        state.mkdir(parents=True, exist_ok=True)
    for store in manifest["stores"]:
        if store["name"] in targets:
            _load(store, source / store["path"], targets[store["name"]], clean=force)
    checks = _verify(state, source, manifest, targets)
    from mlops.stores.audit import AuditLog

    log = AuditLog.for_settings(settings)
    try:
        chain = log.verify()
    finally:
        log.dispose()
    ok = all(c["ok"] for c in checks) and chain.ok
    details = {"backup_created_at": manifest["created_at"], "stores": _summary(manifest["stores"]), "ok": ok}
    seq = _audit(
        settings, "restore", "succeeded" if ok else "failed", f"restore from {source}", actor, details
    )
    return {
        "source": str(source),
        "state_dir": str(state),
        "backup_created_at": manifest["created_at"],
        "moved_aside": str(moved) if moved else None,
        "stores": checks,
        "audit_chain": chain.as_dict(),
        "audit_seq": seq,
        "ok": ok,
    }


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    if not path.is_file():
        raise UsageError(
            f"{source} is not a backup: no {MANIFEST}", hint="name a folder `mlops backup` wrote"
        )
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path} is not readable JSON: {exc}", hint="the backup is damaged") from None
    if manifest.get("format") != FORMAT:
        raise UsageError(
            f"backup format {manifest.get('format')!r} is not {FORMAT}", hint="restore with its version"
        )
    return manifest


def _occupied(state: Path, manifest: dict[str, Any], targets: Mapping[str, str]) -> list[str]:
    found = []
    if state.exists() and any(state.iterdir()):
        found.append(f"state folder {state} is not empty")
    for role, url in targets.items():
        if url.startswith("sqlite"):
            path = sqlite_path(url)
            if path is not None and path.exists() and _sqlite_tables(path):
                found.append(f"{role} database {path} holds tables")
        elif _pg_tables(url):
            found.append(f"{role} database {mask_url(url)} holds tables")
    return found


def _sqlite_tables(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(_read_only(path), uri=True)
    try:
        return _sqlite_counts(conn)
    finally:
        conn.close()


def _load(store: dict[str, Any], dump: Path, url: str, *, clean: bool) -> None:
    if store["kind"] == "sqlite":
        path = sqlite_path(url)
        if path is None:
            raise UsageError(
                f"the {store['name']} backup is SQLite; {mask_url(url)} is not", hint="restore to SQLite"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        src, dst = sqlite3.connect(dump), sqlite3.connect(path)
        try:
            src.backup(dst)  # through SQLite's own locking: a WAL beside the target stays consistent
        finally:
            dst.close()
            src.close()
        return
    if not url.startswith("postgresql"):
        raise UsageError(
            f"the {store['name']} backup is PostgreSQL; {mask_url(url)} is not", hint="restore to PostgreSQL"
        )
    env, database = _libpq(url)
    argv = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    if clean:
        argv += ["--clean", "--if-exists"]
    _run([*argv, f"--dbname={database}", str(dump)], env, f"pg_restore into {mask_url(url)}")


def _verify(
    state: Path, source: Path, manifest: dict[str, Any], targets: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Each store of the manifest as restored: its row counts and files compared with the backup's."""
    checks = []
    for store in manifest["stores"]:
        check: dict[str, Any] = {"name": store["name"], "kind": store["kind"], "ok": True, "problems": []}
        if store["tables"]:
            if store["name"] in targets:
                url = targets[store["name"]]
                path = sqlite_path(url)
                now = _sqlite_tables(path) if path is not None else _pg_tables(url)
            else:
                now = _sqlite_tables(state / Path(store["path"]).relative_to(STATE))
            for table, rows in store["tables"].items():
                if now.get(table) != rows:
                    check["problems"].append(f"{table}: {now.get(table)} rows, backup {rows}")
            check["tables"] = len(store["tables"])
            check["rows"] = sum(store["tables"].values())
        else:
            check["files"] = store["files"]
        check["ok"] = not check["problems"]
        checks.append(check)
    restored = _checksums(source, only=STATE)
    mismatched = [
        p for p, digest in restored.items() if _sha256(state / Path(p).relative_to(STATE)) != digest
    ]
    checks.append(
        {
            "name": "state files",
            "kind": "files",
            "files": len(restored),
            "ok": not mismatched,
            "problems": [f"{p}: differs from the backup" for p in mismatched[:20]],
        }
    )
    return checks


# ----- checksums -----
def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksums(root: Path, only: str | None = None) -> dict[str, str]:
    base = root / only if only else root
    out = {}
    for path in sorted(_files(base)):
        relative = path.relative_to(root).as_posix()
        if relative != MANIFEST:
            out[relative] = _sha256(path) or ""
    return out


def _check_checksums(source: Path, manifest: dict[str, Any]) -> None:
    damaged = [p for p, digest in manifest["checksums"].items() if _sha256(source / p) != digest]
    if damaged:
        raise MlopsError(
            f"the backup at {source} is damaged: {len(damaged)} files differ from its manifest"
            f" ({damaged[0]}, …)",
            hint="restore from another backup",
        )
