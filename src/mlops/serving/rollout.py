"""The data plane of a rollout in each worker: follow the shared record, route canary keys, shadow-score.

``RolloutFollower`` reads the project's active rollout (``stores.rollouts``) every
``poll_interval_s``, as the model manager polls its alias, so every worker and replica converges on
the same record. When the candidate or the generation changes, the candidate is loaded and checked in
a thread (``runtime.load_checked``, off the request path), then one reference assignment publishes an
immutable ``RolloutView`` (the rollout, its loaded candidate, the hash salt). A request reads
``view`` once: ``None`` means no rollout, and the route does nothing else. A control-database outage
keeps the last view (reported in ``status()``); a candidate that fails to load is reported and never
used: production then answers everything.

Routing is a stable hash of (rollout id, key) into ``BUCKETS`` buckets: the candidate takes the
buckets below ``percent``. The same key always lands in the same bucket, so a client sticks to one
version, and raising the percent only adds buckets: every key already on the candidate stays there.
In shadow mode the same hash of the request id picks the share of requests scored by the candidate.

Shadow scoring never touches the response: the route enqueues (rows, request ids, production's
classes) into a bounded queue (``shadow_queue_size``; full: skipped and counted) and a background
task scores what has queued up as one micro-batch in a thread (ONNX Runtime releases the GIL),
compares with production's answers, times it and logs one ``ScoringRecord(role="shadow")`` per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from mlops.serving import instruments
from mlops.stores.predictions import ScoringRecord

if TYPE_CHECKING:
    from mlops.runtime import LoadedModel
    from mlops.serving.model_manager import ModelManager
    from mlops.serving.prediction_writer import PredictionWriter
    from mlops.settings import Settings
    from mlops.stores.rollouts import Rollout, RolloutStore

logger = logging.getLogger(__name__)
BUCKETS = 10_000  # percent * 100: steps of 0.01 %
RETRY_FAILED_S = 60.0  # a candidate that failed to load is tried again after this (transient errors)
READ_TIMEOUT_S = 5.0  # a control database that hangs is reported after this, the last view kept
SHADOW_BATCH = 512  # rows per shadow micro-batch, at most
SHADOW_LINGER_S = 0.005  # the scorer waits this long before each batch: rows gather into it


def bucket(salt: bytes, key: str) -> int:
    """The key's bucket in [0, BUCKETS): blake2b keyed by the rollout's salt (~1 us)."""
    digest = blake2b(key.encode(), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def threshold(percent: float) -> int:
    """Buckets below this go to the candidate: ``percent`` of them, clamped to [0, BUCKETS]."""
    return max(0, min(BUCKETS, round(percent * BUCKETS / 100)))


@dataclass(frozen=True, slots=True)
class RolloutView:
    """One worker's immutable view of the active rollout: what a request reads, once."""

    rollout: Rollout
    candidate: LoadedModel | None  # None: not loaded (yet, or it failed): production answers all
    salt: bytes
    cut: int  # buckets below it are the candidate's
    tag: bytes  # the ``X-Rollout`` header: "<id>.<generation>"

    @classmethod
    def of(cls, rollout: Rollout, candidate: LoadedModel | None) -> RolloutView:
        return cls(
            rollout,
            candidate,
            f"rollout-{rollout.id}".encode(),
            threshold(rollout.percent),
            f"{rollout.id}.{rollout.generation}".encode(),
        )

    @property
    def mode(self) -> str:
        return self.rollout.mode

    def selects(self, key: str) -> bool:
        """Whether ``key`` (a routing key in canary mode, a request id in shadow mode) is the candidate's."""
        return self.cut >= BUCKETS or (self.cut > 0 and bucket(self.salt, key) < self.cut)

    def route(self, key: str) -> LoadedModel | None:
        """The candidate when it answers ``key`` (canary mode, loaded, key in its share), else None:
        production answers."""
        if self.candidate is None or self.rollout.mode != "canary":
            return None
        return self.candidate if self.selects(key) else None


@dataclass(frozen=True, slots=True)
class _Shadowed:
    rows: list[dict[str, Any]]
    ids: list[str]
    classes: Any  # production's answers (class ids: an array or a list)
    candidate: LoadedModel


def _as_list(classes: Any) -> list[int]:
    return classes if isinstance(classes, list) else list(classes.tolist())


class ShadowScorer:
    """A bounded queue of answered requests and the task scoring them with the candidate."""

    def __init__(self, log: PredictionWriter | None, project: str, size: int) -> None:
        self.log = log
        self.project = project
        self.size = size
        self.queue: deque[_Shadowed] = deque()
        self.scored = 0
        self.skipped = 0
        self.batches = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._metrics: dict[tuple[str, str, str], Any] = {}  # labelled children, cached off the hot path

    # ----- request path: never blocks, never raises -----
    def submit(
        self, candidate: LoadedModel, rows: list[dict[str, Any]], ids: list[str], classes: Any
    ) -> None:
        if len(self.queue) >= self.size:
            self.skipped += len(rows)
            self._child("scorings", candidate.version, "skipped").inc(len(rows))
            return
        self.queue.append(_Shadowed(rows, ids, classes, candidate))
        if not self._wake.is_set():
            self._wake.set()

    # ----- background -----
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shadow-scorer")

    async def stop(self) -> None:
        """Stop scoring; what is still queued is dropped (it would delay shutdown, and the answers
        it shadows are all logged)."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5.0)
        self.queue.clear()

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self.queue and not self._stopping:
                await asyncio.sleep(SHADOW_LINGER_S)  # rows gather: a thread hop per batch, not per request
                batch: list[_Shadowed] = []
                rows = 0
                while self.queue and rows < SHADOW_BATCH:
                    item = self.queue.popleft()
                    batch.append(item)
                    rows += len(item.rows)
                self.batches += 1
                try:
                    records = await asyncio.to_thread(self._score, batch)
                except Exception:  # the scorer must outlive any surprise: the next batch tries again
                    logger.exception("shadow scoring failed")
                    continue
                self._log(records)

    def _log(self, records: list[ScoringRecord]) -> None:
        if self.log is None:
            return
        try:
            for record in records:
                self.log.submit_scoring(record)
        except Exception:  # never raises by contract; the scorer must outlive a surprise all the same
            logger.exception("prediction log refused shadow scoring records")

    def _score(self, batch: list[_Shadowed]) -> list[ScoringRecord]:
        """Score a micro-batch (one call per candidate version in it), in a worker thread."""
        records: list[ScoringRecord] = []
        by_version: dict[str, list[_Shadowed]] = {}
        for item in batch:
            by_version.setdefault(item.candidate.version, []).append(item)
        for items in by_version.values():
            records += self._score_one(items[0].candidate, items)
        return records

    def _score_one(self, model: LoadedModel, items: list[_Shadowed]) -> list[ScoringRecord]:
        rows = [row for item in items for row in item.rows]
        ids = [i for item in items for i in item.ids]
        answers = [c for item in items for c in _as_list(item.classes)]
        now = datetime.now(UTC)
        started = time.perf_counter()
        try:
            classes, proba = model.predict_rows(rows)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            self._child("scorings", model.version, "error").inc(len(rows))
            return [self._record(model, i, now, None, None, None, None, error) for i in ids]
        per_row = (time.perf_counter() - started) / len(rows)
        latency = self._child("latency", model.version, "")
        for _ in rows:
            latency.observe(per_row)
        self._child("scorings", model.version, "ok").inc(len(rows))
        names = model.spec.class_names
        agree = disagree = 0
        records = []
        for request_id, cls, p, answer in zip(
            ids, classes.tolist(), proba.round(6).tolist(), answers, strict=True
        ):
            if cls == answer:
                agree += 1
            else:
                disagree += 1
            probabilities = dict(zip(names, p, strict=True))
            records.append(
                self._record(model, request_id, now, cls, names[cls], probabilities, per_row * 1000)
            )
        if agree:
            self._child("agreement", model.version, "true").inc(agree)
        if disagree:
            self._child("agreement", model.version, "false").inc(disagree)
        self.scored += len(rows)
        return records

    def _record(
        self,
        model: LoadedModel,
        request_id: str,
        at: datetime,
        cls: int | None,
        label: str | None,
        probabilities: dict[str, float] | None,
        latency_ms: float | None,
        error: str | None = None,
    ) -> ScoringRecord:
        return ScoringRecord(
            request_id,
            at,
            self.project,
            model.name,
            model.version,
            "shadow",
            cls,
            label,
            probabilities,
            latency_ms,
            error,
        )

    def _child(self, metric: str, version: str, value: str) -> Any:
        """A labelled child of a shadow metric (``labels()`` takes a lock and builds a key per call)."""
        key = (metric, version, value)
        child = self._metrics.get(key)
        if child is None:
            if metric == "scorings":
                child = instruments.CANDIDATE_SCORINGS.labels(version=version, mode="shadow", result=value)
            elif metric == "latency":
                child = instruments.CANDIDATE_LATENCY.labels(version=version, mode="shadow")
            else:
                child = instruments.SHADOW_AGREEMENT.labels(version=version, agree=value)
            self._metrics[key] = child
        return child


class RolloutFollower:
    """Follows the project's active rollout in this worker; publishes ``view`` for the predict routes."""

    def __init__(self, settings: Settings, project: str, manager: ModelManager) -> None:
        self.settings = settings
        self.project = project
        self.manager = manager
        self.view: RolloutView | None = None  # the hot path's one attribute check
        self.shadow = ShadowScorer(None, project, settings.shadow_queue_size)
        self.control_reachable: bool | None = None
        self.last_poll: datetime | None = None
        self.last_error = ""
        self.candidate_error = ""
        self.failed: dict[tuple[int, str], float] = {}  # (rollout id, version) -> monotonic time of failure
        self._store: RolloutStore | None = None
        self._reading: asyncio.Future[Rollout | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[None] | None = None  # the candidate's load, when one is under way
        self._stopping = False
        self._gauge: tuple[str, str, str, str] | None = None
        self._canary: dict[tuple[str, str], Any] = {}

    # ----- lifecycle -----
    def start(self, log: PredictionWriter) -> None:
        """Poll in the background (the first read at once: readiness never waits for it) and score shadows."""
        self.shadow.log = log
        self.shadow.start()
        self._task = asyncio.create_task(self._poll_forever(), name="rollout-poll")

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._task, self._loading):
            while task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
        self._task = self._loading = None
        await self.shadow.stop()
        self._set_gauge(None)
        if self._store is not None:
            self._store.dispose()

    async def _poll_forever(self) -> None:
        while not self._stopping:
            try:
                await self.check()
            except Exception:  # the poll must outlive any surprise; the next one tries again
                logger.exception("rollout poll failed")
            await asyncio.sleep(self.settings.poll_interval_s)

    # ----- the check -----
    async def check(self) -> dict[str, Any]:
        """Read the active rollout; load the candidate if it changed; publish the new view. Never raises."""
        if self._reading is None:  # a read still hanging from an earlier check is not doubled
            self._reading = asyncio.ensure_future(asyncio.to_thread(self._read))
        try:
            rollout = await asyncio.wait_for(asyncio.shield(self._reading), READ_TIMEOUT_S)
        except TimeoutError:
            return self._unreachable(f"control database did not answer within {READ_TIMEOUT_S} s")
        except Exception as exc:  # control database down: keep the last view
            return self._unreachable(self.settings.redact(f"{type(exc).__name__}: {exc}"))
        finally:
            if self._reading.done():
                self._reading = None
        self.control_reachable, self.last_poll, self.last_error = True, datetime.now(UTC), ""
        await self._follow(rollout)
        return self.status()

    def _read(self) -> Rollout | None:
        if self._store is None:
            from mlops.stores.rollouts import RolloutStore

            self._store = RolloutStore.for_settings(self.settings)
        return self._store.active(self.project)

    def _unreachable(self, error: str) -> dict[str, Any]:
        if self.control_reachable is not False:
            logger.warning("rollout poll: %s (keeping the last rollout state)", error)
        self.control_reachable, self.last_poll, self.last_error = False, datetime.now(UTC), error
        return self.status()

    async def _follow(self, rollout: Rollout | None) -> None:
        """Publish the view of ``rollout`` at once (a ramp, a mode change, an end: no load to wait
        for); a candidate still to load is loaded by a task of its own, so a slow load (the first
        one imports mlflow) never holds up the next poll: a ramp or an abort meanwhile is seen on time."""
        current = self.view
        if rollout is None:
            if current is not None:
                logger.info("rollout %s ended: production answers everything", current.rollout.id)
                self._publish(None)
            return
        kept = None
        if current is not None and current.rollout.id == rollout.id and current.candidate is not None:
            kept = current.candidate if current.candidate.version == rollout.candidate else None
        if current is None or (current.rollout.id, current.rollout.generation) != (
            rollout.id,
            rollout.generation,
        ):
            self._publish(RolloutView.of(rollout, kept))  # production answers until the candidate is loaded
        if kept is None and self._due(rollout) and (self._loading is None or self._loading.done()):
            self._loading = asyncio.create_task(self._load_and_publish(rollout), name="rollout-candidate")

    async def _load_and_publish(self, rollout: Rollout) -> None:
        model = await self._load(rollout)
        latest = self.view  # the record may have moved on meanwhile (a ramp): its latest view
        if model is None or latest is None or latest.candidate is not None:
            return
        if (latest.rollout.id, latest.rollout.candidate) == (rollout.id, rollout.candidate):
            self._publish(RolloutView.of(latest.rollout, model))

    def _due(self, rollout: Rollout) -> bool:
        failed_at = self.failed.get((rollout.id, rollout.candidate), -math.inf)
        return time.monotonic() - failed_at >= RETRY_FAILED_S

    async def _load(self, rollout: Rollout) -> LoadedModel | None:
        serving = self.manager.current
        if serving is not None and serving.version == rollout.candidate:
            return serving  # the candidate is what production serves (a rollout of it): loaded already
        try:
            model = await asyncio.to_thread(self._load_checked, rollout.candidate)
        except Exception as exc:
            self.failed[(rollout.id, rollout.candidate)] = time.monotonic()
            self.candidate_error = self.settings.redact(f"{type(exc).__name__}: {exc}")
            logger.error(
                "rollout %s: candidate v%s not loaded, production answers everything: %s",
                rollout.id,
                rollout.candidate,
                self.candidate_error,
            )
            return None
        self.failed.pop((rollout.id, rollout.candidate), None)
        self.candidate_error = ""
        logger.info("rollout %s: candidate v%s loaded (%s)", rollout.id, model.version, model.runtime)
        return model

    def _load_checked(self, version: str) -> LoadedModel:
        from mlops import runtime

        return runtime.load_checked(self.settings, self.project, version, threads=1)

    def _publish(self, view: RolloutView | None) -> None:
        self.view = view  # one reference assignment: a request sees the old or the new view, whole
        if view is None:
            self._set_gauge(None)
        else:
            r = view.rollout
            self._set_gauge((self.project, r.candidate, r.baseline or "", r.mode), r.percent)

    def _set_gauge(self, labels: tuple[str, str, str, str] | None, percent: float = 0.0) -> None:
        if self._gauge is not None and self._gauge != labels:
            instruments.ROLLOUT_PERCENT.labels(*self._gauge).set(0)  # multiprocess keeps series: zero it
            with contextlib.suppress(KeyError):
                instruments.ROLLOUT_PERCENT.remove(*self._gauge)
        self._gauge = labels
        if labels is not None:
            instruments.ROLLOUT_PERCENT.labels(*labels).set(percent)

    # ----- what the predict routes call -----
    def canary_failed(self, candidate: LoadedModel, request_ids: list[str], exc: BaseException) -> None:
        """The candidate raised on a canary request that production then answered: counted and logged."""
        instruments.CANARY_FALLBACKS.labels(version=candidate.version).inc()
        self.canary_result(candidate.version, "error", len(request_ids))
        error = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning("canary v%s failed a request, production answered: %s", candidate.version, error)
        now = datetime.now(UTC)
        log = self.shadow.log
        if log is None:
            return
        fields = (candidate.name, candidate.version, "canary", None, None, None, None, error)
        try:  # the answer is production's already: the log must not turn it into an error
            for request_id in request_ids:
                log.submit_scoring(ScoringRecord(request_id, now, self.project, *fields))
        except Exception:
            logger.exception("prediction log refused a canary scoring record")

    def canary_result(self, version: str, result: str, rows: int, seconds: float | None = None) -> None:
        key = (version, result)
        child = self._canary.get(key)
        if child is None:
            child = self._canary[key] = instruments.CANDIDATE_SCORINGS.labels(
                version=version, mode="canary", result=result
            )
        child.inc(rows)
        if seconds is not None:
            latency = self._canary.get((version, ""))
            if latency is None:
                latency = self._canary[(version, "")] = instruments.CANDIDATE_LATENCY.labels(
                    version=version, mode="canary"
                )
            for _ in range(rows):
                latency.observe(seconds / rows)

    def status(self) -> dict[str, Any]:
        """This worker's view, for ``/ready`` and ``/rollout``."""
        view = self.view
        rollout = view.rollout if view else None
        return {
            "rollout_id": rollout.id if rollout else None,
            "generation": rollout.generation if rollout else None,
            "mode": rollout.mode if rollout else None,
            "percent": rollout.percent if rollout else None,
            "candidate": rollout.candidate if rollout else None,
            "candidate_loaded": bool(view and view.candidate is not None),
            "candidate_error": self.candidate_error or None,
            "control_db_reachable": self.control_reachable,
            "last_poll": self.last_poll.isoformat() if self.last_poll else None,
            "last_error": self.last_error or None,
            "shadow_queue": len(self.shadow.queue),
            "shadow_scored": self.shadow.scored,
            "shadow_skipped": self.shadow.skipped,
            "shadow_batches": self.shadow.batches,
        }
