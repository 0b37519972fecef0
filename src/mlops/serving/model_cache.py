"""The service's local cache of the versions it served: ready at start even with the registry down.

After every successful load and swap the service writes the version's ONNX file and its metadata
(name, version, run id, threshold, metrics, tags, creation time, use case, the alias it served
under, the ONNX sha256) under ``settings.model_cache_dir``, one pair of files per version:

    <model_cache_dir>/<project>/<name>-v<version>.onnx   the verified ONNX bytes
    <model_cache_dir>/<project>/<name>-v<version>.json   the metadata, written last

Each file is written to a temporary file in the same folder and renamed over the old one, so a
reader (another worker, the next start) sees a whole file or none, never half of one; the last
``KEEP`` versions per project are kept (by when they were last served), older ones deleted.

At start the service serves the newest entry saved under its alias while its first registry poll
confirms or swaps it (``serving.model_manager``). An entry is served only if its metadata reads,
its ONNX bytes have the sha256 the metadata records, ONNX Runtime opens them and
``runtime.check_scorer`` passes; any other entry is ignored, logged and counted
(``mlops_model_cache_corrupt``), never served.

Trust: the sha256 here guards against corruption (a torn disk, a truncated copy), not against an
attacker: whoever can write the state folder can write both files. The control is the same as for
the registry: only the service's own account may write the state folder. The registry still has
the last word: the first poll that reaches it compares its recorded sha256 with the cached bytes and
replaces an entry that differs.

Only versions served by ONNX Runtime are cached: a native (scikit-learn) version needs its skops
file, the allow-list check and the registry to load, so a service whose production version failed
ONNX parity waits for the registry at start, as before. No mlflow import anywhere in this module.
``settings.model_cache`` False turns the cache off (nothing read, nothing written).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.serving import instruments

if TYPE_CHECKING:
    from mlops.runtime import LoadedModel
    from mlops.settings import Settings

logger = logging.getLogger(__name__)
KEEP = 2  # versions kept per project: the one served and the one before it
FORMAT = 1  # the metadata layout; an entry of another format is ignored (not counted as corrupt)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Entry:
    """One cached version, as its metadata file describes it."""

    path: Path  # the metadata file
    meta: dict[str, Any]

    @property
    def onnx_path(self) -> Path:
        return self.path.with_suffix(".onnx")

    @property
    def saved_ns(self) -> int:
        return int(self.meta.get("saved_ns", 0))


class ModelCache:
    """The cached versions of one project (``root`` is ``settings.model_cache_dir``)."""

    def __init__(self, root: Path, project: str, *, keep: int = KEEP) -> None:
        self.project = project
        self.folder = root / _safe(project)
        self.keep = keep

    @classmethod
    def from_settings(cls, settings: Settings, project: str) -> ModelCache | None:
        """The project's cache, or None when ``settings.model_cache`` is off."""
        return cls(settings.model_cache_dir, project) if settings.model_cache else None

    # ----- writing -----
    def save(self, model: LoadedModel, alias: str) -> Path | None:
        """Keep ``model`` (served under ``alias``) as the newest entry; return its metadata file.

        None, and nothing written, for a model ONNX Runtime does not serve or whose bytes are not
        the ones the registry recorded (the cache only ever holds what the registry vouched for).
        """
        data = model.onnx_bytes
        if model.runtime != "onnx" or data is None:
            return None
        digest = hashlib.sha256(data).hexdigest()
        if model.tags.get("onnx_sha256") != digest:
            logger.warning(
                "not caching %s v%s: its ONNX bytes differ from the recorded sha256",
                model.name,
                model.version,
            )
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"{_safe(model.name)}-v{_safe(model.version)}"
        onnx_path, meta_path = self.folder / f"{stem}.onnx", self.folder / f"{stem}.json"
        if not (onnx_path.is_file() and _sha256_file(onnx_path) == digest):  # a re-served version: kept
            _write_atomic(onnx_path, data)
        meta = {
            "format": FORMAT,
            "project": self.project,
            "spec": model.spec.name,
            "alias": alias,
            "name": model.name,
            "version": model.version,
            "run_id": model.run_id,
            "threshold": model.threshold,
            "metrics": model.metrics,
            "tags": model.tags,
            "created_at": model.created_at,
            "onnx_sha256": digest,
            "saved_ns": time.time_ns(),
        }
        _write_atomic(meta_path, json.dumps(meta, sort_keys=True, indent=1).encode())  # last: the commit
        self._prune()
        return meta_path

    def _prune(self) -> None:
        """Delete all but the ``keep`` most recently served entries (and stray temporary files)."""
        for old in self.entries()[self.keep :]:
            for path in (old.path, old.onnx_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for path in self.folder.glob(".tmp-*"):
            if time.time() - path.stat().st_mtime > 3600:  # a writer that died mid-write
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    # ----- reading -----
    def entries(self) -> list[Entry]:
        """Readable entries, most recently served first; unreadable metadata is counted and skipped."""
        found: list[Entry] = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                meta = json.loads(path.read_bytes())
                if not isinstance(meta, dict):
                    raise ValueError(f"metadata is a {type(meta).__name__}, not an object")
                int(meta.get("saved_ns", 0))
            except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
                _corrupt(path, f"unreadable metadata: {exc}")
                continue
            if meta.get("format") == FORMAT:
                found.append(Entry(path, meta))
        return sorted(found, key=lambda e: e.saved_ns, reverse=True)

    def load(self, alias: str, name: str, *, threads: int = 0) -> LoadedModel | None:
        """The newest entry served under ``alias`` as ``name`` that passes every check, or None.

        Checks, in order: the metadata names this project, model and alias; the ONNX bytes have the
        recorded sha256; ONNX Runtime opens them; ``runtime.check_scorer`` passes. A failed check
        counts the entry corrupt and moves on to the next older entry.
        """
        from mlops import runtime

        for entry in self.entries():
            meta = entry.meta
            if (meta.get("project"), meta.get("alias"), meta.get("name")) != (self.project, alias, name):
                continue
            try:
                data = entry.onnx_path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if digest != meta.get("onnx_sha256"):
                    raise ValueError(
                        f"sha256 {digest[:12]}… != recorded {str(meta.get('onnx_sha256'))[:12]}…"
                    )
                threshold = meta.get("threshold")
                model = runtime.from_onnx(
                    self.project,
                    data,
                    name=str(meta["name"]),
                    version=str(meta["version"]),
                    run_id=str(meta.get("run_id", "")),
                    threshold=float(threshold) if threshold is not None else None,
                    metrics={str(k): float(v) for k, v in dict(meta.get("metrics") or {}).items()},
                    tags={str(k): str(v) for k, v in dict(meta.get("tags") or {}).items()},
                    created_at=str(meta.get("created_at", "")),
                    threads=threads,
                )
                runtime.check_scorer(model.spec, model.scorer, model.threshold)
            except Exception as exc:  # whatever fails, the entry is not served
                _corrupt(entry.path, f"{type(exc).__name__}: {exc}")
                continue
            return model
        return None


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part) or "_"


def _corrupt(path: Path, why: str) -> None:
    instruments.CACHE_CORRUPT.inc()
    logger.warning("model cache entry %s ignored: %s", path.name, why)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, rename it over ``path``."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
