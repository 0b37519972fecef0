"""The prediction log's local spool: append-only segment files, the transport and the outage buffer.

A service worker appends each flushed batch as one segment (one JSON document written by one C call,
``pydantic_core.to_json``, then renamed into place so that a reader never sees half of it); the
shipper process (``mlops.stores.shipper``) inserts segments in bulk and deletes each only after its
rows committed. While the database is down segments simply accumulate, up to the size limit the
writer enforces; when it returns they are replayed (inserts skip rows already written).

Layout under the spool root (``settings.prediction_spool_dir``)::

    <owner>/lock                      flock-ed by the live worker that owns the folder
    <owner>/<ns>-<pid>-<rows>.seg     a batch: {"p": [prediction rows], "s": [scoring rows]}
    <owner>/status.json               the shipper's report: rows committed, failures, last error

A folder whose lock nobody holds belongs to a dead worker: the next shipper to notice adopts its
segments (moves them into its own folder), so nothing a worker accepted is lost when it dies. The
lock is an ``flock``: the kernel releases it with the process, whatever killed it, and a reused pid
cannot pass for the old owner. Segments are not fsync-ed: a crashed process loses nothing (the page
cache keeps its writes), a crashed machine may lose the last seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_json

SUFFIX = ".seg"
STATUS = "status.json"
LOCK = "lock"


@dataclass(frozen=True, slots=True)
class Usage:
    """What the spool holds: ``bytes``/``rows`` of one owner's folder, ``total_bytes`` of all folders."""

    bytes: int
    rows: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Segments read together: their paths and JSON documents, and how many rows they hold."""

    paths: list[Path]
    documents: list[bytes]
    rows: int


def segment_rows(path: Path) -> int:
    """The row count a segment's name carries (no need to read it to know the backlog)."""
    return int(path.stem.rpartition("-")[2])


class Spool:
    """One worker's folder in the spool root; ``claim()`` makes it (locked) for a live writer."""

    def __init__(self, root: Path, owner: str) -> None:
        self.root = Path(root)
        self.owner = owner
        self.folder = self.root / owner
        self._lock_fd: int | None = None

    @classmethod
    def claim(cls, root: Path) -> Spool:
        """A new folder for this process, locked before it becomes visible under its final name (an
        adopter never mistakes a folder being created for a dead worker's)."""
        owner = f"{os.getpid()}-{secrets.token_hex(3)}"
        spool = cls(root, owner)
        staging = spool.root / f".{owner}"
        staging.mkdir(parents=True, exist_ok=True)
        fd = os.open(staging / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        staging.rename(spool.folder)
        spool._lock_fd = fd
        return spool

    def release(self) -> None:
        """Give the folder up: removed if empty, else its segments are adopted by the next shipper."""
        if not self.segments():
            for leftover in (STATUS, LOCK):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / leftover).unlink()
            with contextlib.suppress(OSError):
                self.folder.rmdir()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ----- the writer's side -----
    def append(self, answers: list[tuple[Any, ...]], besides: list[tuple[Any, ...]]) -> int:
        """One segment holding these rows; its size in bytes. Raises ``OSError`` (disk full...)."""
        rows = len(answers) + len(besides)
        data = to_json({"p": answers, "s": besides})
        name = f"{time.time_ns():020d}-{os.getpid()}-{rows}"
        partial = self.folder / f".{name}"
        partial.write_bytes(data)
        partial.rename(self.folder / f"{name}{SUFFIX}")
        return len(data)

    def usage(self) -> Usage:
        """Bytes and rows in this folder, and bytes in the whole spool (the disk the limit protects)."""
        own_bytes = own_rows = total = 0
        with contextlib.suppress(FileNotFoundError):
            for folder in os.scandir(self.root):
                if not folder.is_dir():
                    continue
                mine = folder.name == self.owner
                with contextlib.suppress(FileNotFoundError):
                    for entry in os.scandir(folder.path):
                        if not entry.name.endswith(SUFFIX):
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            size = entry.stat().st_size
                            total += size
                            if mine:
                                own_bytes += size
                                own_rows += segment_rows(Path(entry.name))
        return Usage(own_bytes, own_rows, total)

    # ----- the shipper's side -----
    def segments(self) -> list[Path]:
        """This folder's segments, oldest first."""
        try:
            return sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []

    def read(self, max_rows: int) -> Batch:
        """The oldest segments, up to ``max_rows`` rows (at least one segment), as their JSON text:
        the database parses it (``PredictionStore.insert_segments``)."""
        paths: list[Path] = []
        documents: list[bytes] = []
        rows = 0
        for path in self.segments():
            if paths and rows + segment_rows(path) > max_rows:
                break
            try:
                documents.append(path.read_bytes())
            except FileNotFoundError:  # shipped meanwhile by a shipper that adopted it
                continue
            paths.append(path)
            rows += segment_rows(path)
        return Batch(paths, documents, rows)

    def delete(self, paths: list[Path]) -> None:
        """Segments whose rows are committed."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def adopt(self) -> int:
        """Move the segments of dead owners' folders into this one; segments moved."""
        moved = 0
        try:
            folders = [e for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith(".")]
        except FileNotFoundError:
            return 0
        for folder in folders:
            if folder.name == self.owner:
                continue
            path = Path(folder.path)
            try:
                fd = os.open(path / LOCK, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its worker is alive
                os.close(fd)
                continue
            try:
                for entry in os.scandir(path):
                    if entry.name.endswith(SUFFIX):
                        with contextlib.suppress(FileNotFoundError):
                            Path(entry.path).rename(self.folder / entry.name)
                            moved += 1
                for leftover in (STATUS, LOCK):
                    with contextlib.suppress(FileNotFoundError):
                        (path / leftover).unlink()
                with contextlib.suppress(OSError):  # not empty: a .bad segment stays for an operator
                    path.rmdir()
            finally:
                os.close(fd)
        return moved

    # ----- the shipper's report to the writer -----
    def write_status(self, written: int, failures: int, error: str | None) -> None:
        partial = self.folder / f".{STATUS}"
        partial.write_text(json.dumps({"written": written, "failures": failures, "error": error}))
        partial.rename(self.folder / STATUS)

    def read_status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.folder / STATUS).read_text()))
        except (FileNotFoundError, ValueError):
            return {"written": 0, "failures": 0, "error": None}
