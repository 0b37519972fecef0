"""Which model answers: load the alias target once, poll the alias, swap atomically.

A new version is loaded and smoke-tested in a worker thread, off the request path; only then does
one reference assignment make it current. A request holds the ``LoadedModel`` it started with, so
in-flight requests finish on their model. A registry outage keeps the last good model serving, and
a registry that hangs instead of refusing (a partition, an overloaded server) is reported unreachable
after ``RESOLVE_TIMEOUT_S``, not only when the client library gives up (~50 s of retries); a
version that fails to load or to predict is rejected and counted; it is tried again only after
``RETRY_REJECTED_S`` (a transient artifact-store error must not bar a good version for ever).
Drift gauges come from the monitoring pipeline's results, which change far less often than an alias:
they are re-read every ``DRIFT_REFRESH_S``, not on every (1 s) poll.

Ready from the local cache (``serving.model_cache``): ``start`` first tries the version this
service last served, from the state folder, without importing mlflow; when it answers, the service
is ready at once and the first poll runs in the background, after the usual interval. That poll
confirms the cached version (the alias still points at it and the registry's recorded sha256 is the
cached bytes') or swaps in the alias's version as any poll does; until then
``mlops_model_served_from_cache`` is 1 and ``state()`` says ``source: cache``,
``registry_confirmed: false``. Every successful load and swap is saved to the cache in a worker
thread, off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from mlops import tracing
from mlops.runtime import LoadedModel
from mlops.serving import instruments
from mlops.serving.model_cache import ModelCache
from mlops.settings import Settings

logger = logging.getLogger(__name__)
RETRY_REJECTED_S = 300.0
RESOLVE_TIMEOUT_S = 5.0
DRIFT_REFRESH_S = 30.0


class ModelManager:
    def __init__(self, settings: Settings, project: str, alias: str) -> None:
        self.settings = settings
        self.project = project
        self.alias = alias
        self.current: LoadedModel | None = None
        self.registry_reachable = False
        self.last_poll: datetime | None = None
        self.last_error = ""
        self.rejected: dict[str, float] = {}  # version -> monotonic time of its rejection
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._registry: Any = None
        self._resolving: asyncio.Future[str | None] | None = None  # the registry call under way
        self._drift_read_at = -math.inf  # monotonic time of the last drift refresh
        self.cache = ModelCache.from_settings(settings, project)
        self.source: str | None = None  # where ``current`` came from: "cache" or "registry"
        self.confirmed = False  # a registry poll has vouched for ``current`` (always, if from it)

    # ----- lifecycle -----
    async def start(self) -> None:
        """Serve the cached version if one answers, else load the alias target once (before
        serving); then poll the alias in the background.

        From the cache, the first poll comes one ``poll_interval_s`` after ready, like every other:
        it imports mlflow (~3 s of CPU on this machine's cores), and the first requests should not
        share the interpreter with that import."""
        instruments.MODEL_LOADED.set(0)
        instruments.MODEL_FROM_CACHE.set(0)
        cached = None
        if self.cache is not None:
            with tracing.span("model.swap", self._swap_attributes(None, "cache")):
                cached = await asyncio.to_thread(self._from_cache)
                if cached is not None:
                    tracing.annotate({"model.to_version": cached.version})
                    self._swap(cached, source="cache")
                else:  # nothing to serve from the cache: the registry's load follows
                    tracing.annotate({"model.swap.result": "nothing cached"})
        if cached is None:
            await self.check(patient=True)  # not serving yet: the first answer is worth waiting for
        self._task = asyncio.create_task(self._poll_forever(), name="model-poll")

    async def stop(self) -> None:
        """Stop polling. On Python 3.11 ``asyncio.wait_for`` swallows a cancel that arrives as the
        awaited call completes, so the cancel is sent again until the task has ended, and the loop
        also checks a stop flag."""
        self._stopping = True
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: a poll loop that ended otherwise has already logged why

    async def _poll_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.check()
            except Exception:  # the poll must outlive any surprise; the next one tries again
                logger.exception("model poll failed")

    # ----- the check -----
    async def check(self, *, patient: bool = False) -> dict[str, Any]:
        """Resolve the alias; load, smoke-test and swap if it points elsewhere. Never raises.

        The registry gets ``RESOLVE_TIMEOUT_S`` to answer, or as long as its client takes if ``patient``.
        """
        timeout = None if patient else RESOLVE_TIMEOUT_S
        async with self._lock:
            if self._resolving is None:  # a call still hanging from an earlier check is not doubled
                self._resolving = asyncio.ensure_future(asyncio.to_thread(self._resolve))
            try:
                version = await asyncio.wait_for(asyncio.shield(self._resolving), timeout)
            except TimeoutError:
                self._set_reachable(False, f"registry did not answer within {timeout} s")
                return self.state()
            except Exception as exc:  # registry down or misconfigured: keep serving
                self._set_reachable(False, self.settings.redact(f"{type(exc).__name__}: {exc}"))
                return self.state()
            finally:
                if self._resolving.done():
                    self._resolving = None
            self._set_reachable(True, "")
            if time.monotonic() - self._drift_read_at >= DRIFT_REFRESH_S:
                self._drift_read_at = time.monotonic()
                await asyncio.to_thread(self._refresh_drift)
            if version is None:
                self.last_error = f"no version holds alias {self.alias!r}"
                return self.state()
            differs = False  # the cached copy serving is not the registry's file
            if self.current is not None and self.current.version == version:
                if self.confirmed or await self._confirm(version) != "differs":
                    return self.state()
                differs = True  # load the registry's copy, as for a new version
            if time.monotonic() - self.rejected.get(version, -math.inf) < RETRY_REJECTED_S:
                return self.state()
            with tracing.span("model.swap", self._swap_attributes(version, "registry")) as span:
                try:
                    candidate = await asyncio.to_thread(self._load_and_smoke_test, version)
                except Exception as exc:
                    self.rejected[version] = time.monotonic()
                    instruments.SWAPS.labels(result="rejected").inc()
                    error = self.settings.redact(f"{type(exc).__name__}: {exc}")
                    self.last_error = f"version {version} rejected: {error}"
                    logger.error("model %s", self.last_error)
                    tracing.failed(span, self.last_error, {"model.swap.result": "rejected"})
                    if differs:  # fail closed: neither copy is one the registry vouches for
                        self._withdraw()
                    return self.state()
                self.rejected.pop(version, None)
                self._swap(candidate, source="registry")
            if self.cache is not None:
                await asyncio.to_thread(self._to_cache, candidate)
            return self.state()

    def _resolve(self) -> str | None:
        if self._registry is None:
            from mlops.registry import Registry

            self._registry = Registry(self.settings, self.project)
        version: str | None = self._registry.alias_version(self.alias)
        return version

    async def _confirm(self, version: str) -> str:
        """The alias points at the cached version: confirm it if the registry's recorded sha256 is
        the cached bytes'. A registry error leaves it unconfirmed (``"error"``: the next poll tries
        again); another digest (``"differs"``) counts the entry corrupt: the caller loads the
        registry's copy and keeps serving the cached one until that swaps in."""
        model = self.current
        if model is None or model.onnx_bytes is None:
            return "differs"
        try:
            recorded = await asyncio.wait_for(
                asyncio.to_thread(self._recorded_sha256, version), RESOLVE_TIMEOUT_S
            )
        except Exception as exc:
            self.last_error = self.settings.redact(
                f"confirming the cached version: {type(exc).__name__}: {exc}"
            )
            return "error"
        if recorded == await asyncio.to_thread(lambda: hashlib.sha256(model.onnx_bytes or b"").hexdigest()):
            self.confirmed = True
            instruments.MODEL_FROM_CACHE.set(0)
            logger.info("registry confirmed the cached %s v%s", model.name, model.version)
            return "confirmed"
        instruments.CACHE_CORRUPT.inc()
        self.last_error = f"cached version {version} differs from the registry's; reloading it"
        logger.warning("model %s", self.last_error)
        return "differs"

    def _recorded_sha256(self, version: str) -> str | None:
        sha: str | None = self._registry.version(version).tags.get("onnx_sha256")
        return sha

    def _from_cache(self) -> LoadedModel | None:
        """The newest cached version served under this alias that passes every check (no mlflow)."""
        assert self.cache is not None
        name = self.settings.registered_model_name(self.project)
        with tracing.span("model.load", {"model.name": name, "model.source": "cache"}) as span:
            try:
                model = self.cache.load(self.alias, name, threads=1)
            except Exception:  # an unreadable cache folder must not stop the service starting
                logger.exception("model cache unreadable")
                return None
            if span is not None and model is not None:
                span.set_attributes({"model.version": model.version, "model.runtime": model.runtime})
            return model

    def _to_cache(self, model: LoadedModel) -> None:
        assert self.cache is not None
        try:
            self.cache.save(model, self.alias)
        except Exception:  # a full disk must not fail a swap that already happened
            logger.exception("could not cache %s v%s", model.name, model.version)

    def _load_and_smoke_test(self, version: str) -> LoadedModel:
        from mlops import runtime

        name = self.settings.registered_model_name(self.project)
        attributes = {"model.name": name, "model.version": version, "model.source": "registry"}
        with tracing.span("model.load", attributes) as span:
            model = runtime.load_checked(self.settings, self.project, version, threads=1)
            if span is not None:
                span.set_attribute("model.runtime", model.runtime)
            return model

    def _swap_attributes(self, version: str | None, source: str) -> dict[str, str]:
        """A ``model.swap`` span's attributes: which version serves now, which is coming, from where."""
        attributes = {
            "model.name": self.settings.registered_model_name(self.project),
            "model.alias": self.alias,
            "model.source": source,
            "model.from_version": self.current.version if self.current else "",
        }
        if version is not None:
            attributes["model.to_version"] = version
        return attributes

    def _swap(self, model: LoadedModel, *, source: str = "registry") -> None:
        previous = self.current
        self.current = model  # one reference assignment: requests see the old or the new model, whole
        self.source, self.confirmed = source, source == "registry"
        instruments.MODEL_FROM_CACHE.set(0 if self.confirmed else 1)
        if previous is not None:
            labels = (previous.name, previous.version, self.alias, previous.runtime)
            instruments.MODEL_INFO.labels(*labels).set(0)  # multiprocess mode keeps removed series: zero it
            with contextlib.suppress(KeyError):
                instruments.MODEL_INFO.remove(*labels)
        instruments.MODEL_INFO.labels(model.name, model.version, self.alias, model.runtime).set(1)
        instruments.MODEL_LOADED.set(1)
        instruments.SWAPS.labels(result="success").inc()
        tracing.annotate({"model.swap.result": "success", "model.runtime": model.runtime})
        logger.info("serving %s v%s (%s, from the %s)", model.name, model.version, model.runtime, source)

    def _withdraw(self) -> None:
        """Stop serving ``current`` (not ready until a good version swaps in)."""
        model, self.current, self.source, self.confirmed = self.current, None, None, False
        if model is not None:
            instruments.MODEL_INFO.labels(model.name, model.version, self.alias, model.runtime).set(0)
        instruments.MODEL_LOADED.set(0)
        instruments.MODEL_FROM_CACHE.set(0)
        tracing.annotate({"model.swap.result": "withdrawn"})
        logger.error(
            "stopped serving %s v%s: its cached copy is not the registry's",
            model and model.name,
            model and model.version,
        )

    def _set_reachable(self, ok: bool, error: str) -> None:
        self.registry_reachable = ok
        self.last_poll = datetime.now(UTC)
        if error:
            self.last_error = error
        instruments.REGISTRY_REACHABLE.set(1 if ok else 0)

    def _refresh_drift(self) -> None:
        """Export the latest drift result of the monitoring pipeline; no result leaves the gauges alone."""
        try:
            from mlops.stores.drift import latest_drift

            latest = latest_drift(self.settings.prediction_log_db_url, self.project)
        except Exception:  # monitoring is optional for serving
            return
        if not latest:
            return
        instruments.DRIFT_SHARE.set(float(latest["share"]))
        instruments.DRIFT_DETECTED.set(1 if latest["detected"] else 0)
        for feature, score in latest.get("features", {}).items():
            instruments.DRIFT_SCORE.labels(feature=feature).set(float(score))

    def state(self) -> dict[str, Any]:
        return {
            "model_loaded": self.current is not None,
            "model_version": self.current.version if self.current else None,
            "source": self.source if self.current else None,
            "registry_confirmed": self.confirmed if self.current else False,
            "registry_reachable": self.registry_reachable,
            "last_poll": self.last_poll.isoformat() if self.last_poll else None,
            "last_error": self.last_error or None,
            "rejected_versions": sorted(self.rejected),
        }
