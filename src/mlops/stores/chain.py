"""The audit log's hash chain and its anchor key: one definition, shared by the log and its migration.

The format is FROZEN: every stored row's hash was computed with it, so changing a byte here makes
every existing log fail verification. A row's hash is ``sha256(prev_hash + canonical JSON)`` where the
canonical JSON holds every column except ``id`` and ``hash``, keys sorted, ``at`` as ISO 8601 UTC with
microseconds, ``details`` as the parsed JSON value (not the stored text). The chain's head (last seq and
hash) is anchored in ``audit_anchor`` with an HMAC, so rewriting the whole chain needs the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import MlopsError

if TYPE_CHECKING:
    from mlops.settings import Settings

GENESIS = "0" * 64
CHAIN = "audit_log"  # the anchor row's key: one chain per control database
KEY_FILE = "audit.key"
# pg_advisory_xact_lock key of the chain (distinct from the migrator's and from hashtext() of alias keys).
PG_CHAIN_LOCK = 0x6D6C6F7061756469


def utc_iso(at: datetime) -> str:
    """``at`` as ISO 8601 UTC with microseconds; a naive value (SQLite) is UTC already."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(row: Mapping[str, Any]) -> str:
    """The hashed content of an audit row (a mapping of its columns)."""
    content = {k: v for k, v in row.items() if k not in {"id", "hash"}}
    content["at"] = utc_iso(content["at"])
    details = content.get("details")
    content["details"] = json.loads(details) if isinstance(details, str) else details
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256((str(row["prev_hash"]) + canonical(row)).encode()).hexdigest()


def anchor_hmac(key: bytes, seq: int, head_hash: str) -> str:
    return hmac.new(key, f"{seq}:{head_hash}".encode(), hashlib.sha256).hexdigest()


def resolve_key(configured: str | None, *, environment: str, key_file: Path | None) -> bytes:
    """The anchor's HMAC key: the configured one (``MLOPS_AUDIT_HMAC_KEY``); else, in development only,
    a random key created once in ``key_file`` (mode 0600). Anywhere else no key is refused: an anchor
    signed with a key anyone can read protects nothing."""
    if configured:
        return configured.encode()
    if environment != "development":
        raise MlopsError(
            f"no audit HMAC key in {environment}: the audit log's anchor cannot be signed or verified",
            hint="set MLOPS_AUDIT_HMAC_KEY to a random secret (e.g. `openssl rand -hex 32`)",
        )
    if key_file is None:
        raise MlopsError(
            "no audit HMAC key and no state folder to keep one in", hint="set MLOPS_AUDIT_HMAC_KEY"
        )
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two first writers cannot create two keys
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
    key = key_file.read_text().strip()
    if not key:
        raise MlopsError(
            f"the audit key file {key_file} is empty", hint="restore it, or set MLOPS_AUDIT_HMAC_KEY"
        )
    return key.encode()


def key_for(url: str, settings: Settings | None = None) -> bytes:
    """The key for the database at ``url`` under ``settings`` (default: the process's): the configured
    key, else the key file beside an embedded SQLite database (``<home>/audit.key`` for the default
    ``<home>/audit.db``), else ``<home>/audit.key``."""
    from mlops.settings import get_settings
    from mlops.stores.engine import sqlite_path

    settings = settings or get_settings()
    configured = settings.audit_hmac_key.get_secret_value() if settings.audit_hmac_key else None
    path = sqlite_path(url)
    folder = path.parent if path is not None else settings.state_dir
    return resolve_key(configured, environment=settings.environment, key_file=folder / KEY_FILE)
