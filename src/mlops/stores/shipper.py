"""The prediction log's shipper: a process that inserts a worker's spool segments into the database.

Started by the service worker's ``PredictionWriter`` (one per worker) as
``python -m mlops.stores.shipper --url URL --spool ROOT --owner NAME``. It runs in its own process so
that decoding and inserting rows never take the GIL from the requests. It reads segments in bulk
(up to ``--batch`` rows per transaction), inserts them, and deletes a segment only once its rows
committed: a crash at any point replays a segment, never loses one (inserts skip rows already
written). A database outage leaves the segments where they are and retries with backoff.

Its stdin is the worker's doorbell: a byte per new segment wakes it; end of file (the worker
stopping, or dying) means "ship what is left and exit", bounded by ``--drain-s``. What is still
spooled then stays on disk for the next shipper, which adopts dead workers' folders. It reports rows
committed in ``status.json`` in the worker's folder (the worker turns it into
``mlops_prediction_log_written_total``).
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import time
from pathlib import Path

from mlops.stores.predictions import PredictionStore
from mlops.stores.spool import Spool

logger = logging.getLogger("mlops.stores.shipper")
RETRY_MAX_S = 2.0  # each second of backoff after the database returns is a second of replay delayed
ADOPT_EVERY_S = 5.0


class Shipper:
    """Ships one worker's spool folder (and what it adopts) to ``url``."""

    def __init__(self, url: str, spool: Spool, *, batch: int = 20_000, drain_s: float = 10.0) -> None:
        self.store = PredictionStore(url)
        self.spool = spool
        self.batch = batch
        self.drain_s = drain_s
        self.written = 0
        self.failures = 0
        self.error: str | None = None

    def ship_once(self) -> int:
        """Insert the oldest segments (one transaction) and delete them; rows shipped, 0 if none or
        if the database refused (then ``failures`` counts it)."""
        batch = self.spool.read(self.batch)
        if not batch.paths:
            return 0
        try:
            written = self.store.insert_segments(batch.documents)
        except Exception as exc:  # an outage: keep the segments, retry later
            self.failures += 1
            self.error = f"{type(exc).__name__}: {exc}"[:500]
            logger.warning("prediction log: %d rows not shipped, will retry: %s", batch.rows, self.error)
            self.spool.write_status(self.written, self.failures, self.error)
            return 0
        self.spool.delete(batch.paths)
        self.written += written
        self.failures, self.error = 0, None
        self.spool.write_status(self.written, self.failures, self.error)
        return batch.rows

    def run(self, doorbell: int) -> None:
        """Until the doorbell closes; then drain, bounded by ``drain_s``. After a failed transaction
        the next attempt waits for the backoff, however often the doorbell rings meanwhile."""
        open_ = True
        deadline = float("inf")
        next_adopt = retry_at = 0.0
        while True:
            now = time.monotonic()
            if now >= next_adopt:
                self.spool.adopt()
                next_adopt = now + ADOPT_EVERY_S
            shipped = 0
            if now >= retry_at:
                shipped = self.ship_once()
                if self.failures:
                    retry_at = time.monotonic() + min(0.1 * 2 ** min(self.failures, 6), RETRY_MAX_S)
            pending = bool(self.spool.segments())
            now = time.monotonic()
            if not open_ and (not pending or now >= deadline):
                break
            if shipped and pending:
                continue  # a backlog: ship it without waiting
            wait = max(retry_at - now, 0.0) if self.failures else ADOPT_EVERY_S
            if not open_:  # draining: nothing rings any more
                time.sleep(min(wait if self.failures else 0.05, max(deadline - now, 0.0)))
                continue
            ready, _, _ = select.select([doorbell], [], [], wait)
            if ready and not os.read(doorbell, 65536):
                open_ = False
                deadline = time.monotonic() + self.drain_s
        left = self.spool.segments()
        if left:
            logger.warning("prediction log: %d segments left in the spool for the next start", len(left))
        self.spool.write_status(self.written, self.failures, self.error)
        self.store.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.stores.shipper", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--spool", required=True, type=Path)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--drain-s", type=float, default=10.0)
    args = parser.parse_args(argv)
    # A Ctrl-C or a supervisor's SIGTERM reaches the whole process group: the shipper ignores both and
    # drains when its worker closes the doorbell (or dies), bounded by --drain-s. SIGKILL still ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Shipper(args.url, Spool(args.spool, args.owner), batch=args.batch, drain_s=args.drain_s).run(
        sys.stdin.fileno()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
