"""The prediction log's writer: every prediction goes to SQL through a local spool and a shipper process.

On the request path ``submit`` only appends the record to an in-memory list: it never blocks and
never raises. Every ``flush_s`` a background step encodes the whole batch (``pydantic_core``, in C)
and appends it to this worker's spool folder as one segment file (``mlops.stores.spool``); a shipper
process (``mlops.stores.shipper``, started here, one per worker) inserts segments in bulk and
deletes each only after its rows committed. Decoding and inserting thus never take this process's
GIL, and the spool is both the transport and the outage buffer: while the database is down the
segments accumulate on local disk, up to ``spool_max_mb``, and are replayed when it returns.

Beyond the spool limit a record is dropped and counted (``mlops_prediction_log_dropped_total``),
unless ``lossless``: then ``admit`` refuses the request (503 with ``Retry-After``) before it is
scored, so no prediction is served unlogged. Nothing accepted is lost: a shutdown writes the last
batch to the spool and gives the shipper ``drain_s`` to empty it; what is not in the database by
then stays in the spool and is shipped at the next start (the next shipper adopts the folders of
workers that are gone, however they ended). The SQL itself is ``mlops.stores.predictions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, status

from mlops import tracing
from mlops.serving import instruments
from mlops.stores.engine import sqlite_path
from mlops.stores.predictions import Labelled, PredictionStore, Record, ScoringRecord
from mlops.stores.spool import STATUS, Spool, Usage

if TYPE_CHECKING:
    from mlops.settings import Settings

logger = logging.getLogger(__name__)
RETRY_AFTER_S = 5  # a full spool empties only once the database is back: not worth a faster retry


class PredictionWriter:
    """In-memory batch on the request path, spooled every ``flush_s``, shipped by a child process.

    ``buffer`` holds what was submitted since the last flush (it never exceeds ``max_queue`` outside
    the lossless setting: a flush starts early at a quarter of it, or at 2048 records). ``batch`` is
    the shipper's largest transaction in rows. ``recent`` keeps the last ``max_queue`` predictions
    for ``/feedback`` on a request not yet in the database.
    """

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 10_000,
        flush_s: float = 0.5,
        batch: int = 20_000,
        drain_s: float = 10.0,
        spool_dir: Path | None = None,
        spool_max_mb: float = 512.0,
        lossless: bool = False,
    ) -> None:
        self.url = url
        self.buffer: list[Record | ScoringRecord] = []
        self.max_queue = max_queue
        self.flush_s = flush_s
        self.batch = batch
        self.drain_s = drain_s
        self.spool_dir = spool_dir or default_spool_dir(url)
        self.spool_max_bytes = int(spool_max_mb * 1024 * 1024)
        self.lossless = lossless
        self.store = PredictionStore(url)  # feedback only: rows go through the spool
        self.write_failures = 0  # the shipper's consecutive failed transactions
        self.full = False  # the spool reached its limit at the last flush
        self.spool: Spool | None = None
        self.recent: OrderedDict[str, Record] = OrderedDict()
        self._wake_at = max(min(max_queue // 4, 2048), 1)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._shipper: subprocess.Popen[bytes] | None = None
        self._written_seen = 0
        self._spooled_rows = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictionWriter:
        return cls(
            settings.prediction_log_db_url,
            max_queue=settings.prediction_log_queue_size,
            flush_s=settings.prediction_log_flush_s,
            spool_dir=settings.prediction_spool_dir,
            spool_max_mb=settings.prediction_log_spool_max_mb,
            lossless=settings.prediction_log_lossless,
        )

    # ----- request path: never blocks, never raises -----
    def submit(self, record: Record) -> None:
        self.recent[record.request_id] = record
        if len(self.recent) > self.max_queue:
            self.recent.popitem(last=False)
        self._accept(record)

    def submit_scoring(self, record: ScoringRecord) -> None:
        """A shadow or canary scoring (``ScoringRecord``): logged as predictions are. Never blocks."""
        self._accept(record)

    def _accept(self, record: Record | ScoringRecord) -> None:
        if not self.lossless and (self.full or len(self.buffer) >= self.max_queue):
            instruments.LOG_DROPPED.inc()
            return
        self.buffer.append(record)
        if len(self.buffer) >= self._wake_at:
            self._wake.set()

    def admit(self) -> None:
        """Called before scoring a request: raises a 503 (with ``Retry-After``) in the lossless setting
        when the spool is full, so no prediction is served unlogged. Otherwise returns at once.

        The spool's size is measured at each flush: requests admitted until the next one may exceed
        the limit by one flush's worth of rows (they are written: an admitted request is logged)."""
        if self.lossless and (self.full or len(self.buffer) >= self.max_queue):
            instruments.LOG_REFUSED.inc()
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the prediction log's spool is full (lossless setting): no prediction is served unlogged",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )

    # ----- background -----
    def start(self) -> None:
        """Claim this worker's spool folder, start the shipper, then flush every ``flush_s``."""
        self.spool = Spool.claim(self.spool_dir)
        self._start_shipper()
        self._task = asyncio.create_task(self._run(), name="prediction-log")

    def _start_shipper(self) -> None:
        assert self.spool is not None
        with contextlib.suppress(FileNotFoundError):  # a new shipper counts from 0
            (self.spool.folder / STATUS).unlink()
        self._written_seen = 0
        command = [sys.executable, "-m", "mlops.stores.shipper", "--url", self.url]
        command += ["--spool", str(self.spool.root), "--owner", self.spool.owner]
        command += ["--batch", str(self.batch), "--drain-s", str(self.drain_s)]
        self._shipper = subprocess.Popen(command, stdin=subprocess.PIPE)
        assert self._shipper.stdin is not None
        os.set_blocking(self._shipper.stdin.fileno(), False)  # the doorbell never blocks the loop

    def _ring(self) -> None:
        """Wake the shipper (a new segment); restart it if it died (its segments are still there)."""
        shipper = self._shipper
        if shipper is None:
            return
        if shipper.poll() is not None:
            logger.error("prediction log: the shipper exited (%s); restarting it", shipper.returncode)
            self._count_written()
            self._start_shipper()
            return
        assert shipper.stdin is not None
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(shipper.stdin.fileno(), b"\n")

    async def stop(self) -> None:
        """Graceful shutdown: the last batch goes to the spool, then the shipper ships what it can
        within ``drain_s`` (a supervisor's kill follows a slow shutdown). What is not in the database
        by then stays in the spool, shipped at the next start: nothing accepted is lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=self.drain_s)
        shipper = self._shipper
        if shipper is not None:
            assert shipper.stdin is not None
            with contextlib.suppress(OSError):
                shipper.stdin.close()  # end of file: ship what is left, then exit
            try:
                await asyncio.to_thread(shipper.wait, max(deadline - loop.time(), 0.1))
            except subprocess.TimeoutExpired:
                shipper.kill()
                await asyncio.to_thread(shipper.wait)
        if self.spool is not None:
            self._count_written()
            left = self.spool.usage().rows
            if left:
                logger.warning("prediction log: %d rows stay in the spool, shipped at next start", left)
            self.spool.release()
        if self.buffer:  # the spool could not be written (a full or failing disk): these are lost
            instruments.LOG_DROPPED.inc(len(self.buffer))
            logger.error("prediction log: %d records lost at shutdown (spool unwritable)", len(self.buffer))
            self.buffer = []
        instruments.LOG_QUEUE.set(0)
        instruments.LOG_SPOOL_BYTES.set(0)
        self.store.dispose()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_s)
            self._wake.clear()
            await self._flush()
        await self._flush()  # the last batch: uvicorn has finished the in-flight requests

    async def _flush(self) -> None:
        """Spool what was submitted since the last flush (off the event loop), then refresh the
        spool's figures and the shipper's. Never raises: a failed spool write keeps the batch."""
        batch, self.buffer = self.buffer, []
        try:
            if batch and tracing.tracer is not None:  # a span per written batch, none for idle ticks
                with tracing.span("prediction_log.flush", {"prediction_log.rows": len(batch)}):
                    usage = await asyncio.to_thread(self._spool, batch)
            else:
                usage = await asyncio.to_thread(self._spool, batch)
        except Exception as exc:  # a full or failing disk: keep the batch (bounded by max_queue)
            logger.warning("prediction log: spool write of %d records failed: %s", len(batch), exc)
            self.buffer[:0] = batch
            if not self.lossless and len(self.buffer) > self.max_queue:
                excess = len(self.buffer) - self.max_queue
                instruments.LOG_DROPPED.inc(excess)
                del self.buffer[:excess]
            return
        if batch:
            self._ring()
        self.full = usage.total_bytes >= self.spool_max_bytes
        self._spooled_rows = usage.rows
        self._count_written()
        instruments.LOG_SPOOL_BYTES.set(usage.bytes)
        instruments.LOG_QUEUE.set(len(self.buffer) + usage.rows)

    def _spool(self, batch: list[Record | ScoringRecord]) -> Usage:
        assert self.spool is not None
        if batch:
            answers = [r.values() for r in batch if type(r) is Record]
            besides = [r.values() for r in batch if type(r) is ScoringRecord]
            self.spool.append(answers, besides)
        return self.spool.usage()

    def _count_written(self) -> None:
        """``mlops_prediction_log_written_total`` from the shipper's report: rows committed."""
        assert self.spool is not None
        report: dict[str, Any] = self.spool.read_status()
        written = int(report.get("written", 0))
        if written > self._written_seen:
            instruments.LOG_WRITTEN.inc(written - self._written_seen)
            self._written_seen = written
        self.write_failures = int(report.get("failures", 0))

    # ----- feedback -----
    def record_feedback(self, request_id: str, project: str, true_label: int) -> Labelled | None:
        """Store ground truth for a known prediction; None when the request id is unknown. A prediction
        still buffered or spooled here is written with it (the shipper's insert later skips it)."""
        return self.store.record_feedback(request_id, project, true_label, self.recent.get(request_id))


def default_spool_dir(url: str) -> Path:
    """Beside a SQLite file (``log.db`` -> ``log.db.spool``); for a server database a folder in the
    temporary directory named after the URL (the service passes ``settings.prediction_spool_dir``)."""
    path = sqlite_path(url)
    if path is not None:
        return path.with_name(f"{path.name}.spool")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mlops-prediction-spool-{digest}"
