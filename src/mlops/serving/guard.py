"""The rollout guard: one leader among every worker and replica ends a canary that breaches its
budgets (the decision is ``mlops.governance.rollout.guard_once``).

Every worker runs a ``RolloutGuard``; every ``rollout_guard_interval_s`` it tries to take or renew the
lease ``rollout-guard:<project>`` (``stores/leases.py``, ttl ``rollout_guard_lease_s``) and only while
it holds it runs one check, in a thread (the checks are SQL and, on a breach, a registry call). A
leader that dies stops renewing; after the ttl another worker's next try takes over. Two leaders for
a moment (a check slower than the ttl) cannot both end the rollout: its end is a compare-and-set on
the record's generation. The guard never raises into the service: every failure is logged and the
next round tries again. ``run`` is the same loop without a service (``mlops rollout guard``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

from mlops.serving import instruments
from mlops.settings import Settings
from mlops.stores.leases import LeaseStore

logger = logging.getLogger(__name__)


def lease_name(project: str) -> str:
    return f"rollout-guard:{project}"


def holder_id() -> str:
    """This process, unique across hosts and restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class GuardRound:
    """One round of the guard (blocking: run it in a thread): the lease, then, when held, the check."""

    def __init__(self, settings: Settings, project: str, holder: str | None = None) -> None:
        self.settings = settings
        self.project = project
        self.holder = holder or holder_id()
        self.leases = LeaseStore.for_settings(settings)
        self.leader = False

    def __call__(self) -> dict[str, Any] | None:
        from mlops.governance.rollout import guard_once

        try:
            self.leader = self.leases.acquire(
                lease_name(self.project), self.holder, self.settings.rollout_guard_lease_s
            )
        except Exception as exc:  # the control database is down: nobody leads meanwhile
            self.leader = False
            instruments.GUARD_LEADER.set(0)
            logger.warning(
                "rollout guard: lease not taken (%s)", self.settings.redact(str(exc)).splitlines()[0]
            )
            return None
        instruments.GUARD_LEADER.set(1 if self.leader else 0)
        if not self.leader:
            return None
        result = guard_once(self.settings, self.project)
        if result is not None:
            instruments.ROLLOUT_ROLLBACKS.labels(self.project, result["breach"]).inc()
        return result

    def release(self) -> None:
        if self.leader:
            try:
                self.leases.release(lease_name(self.project), self.holder)
            except Exception as exc:
                logger.warning("rollout guard: lease not released (%s): it lapses", exc)
            self.leader = False
        instruments.GUARD_LEADER.set(0)

    def dispose(self) -> None:
        self.leases.dispose()


class RolloutGuard:
    """The guard as a background task of a service worker: ``start()`` in the lifespan, ``await
    stop()`` at shutdown (the lease is released, so the next leader need not wait for it)."""

    def __init__(self, settings: Settings, project: str) -> None:
        self.settings = settings
        self.project = project
        self.round = GuardRound(settings, project)
        self.last: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def leader(self) -> bool:
        return self.round.leader

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rollout-guard")

    async def _run(self) -> None:
        while True:
            try:
                result = await asyncio.to_thread(self.round)
                if result is not None:
                    self.last = result
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never into the service: the next round tries again
                logger.warning(
                    "rollout guard: check failed (%s)", self.settings.redact(str(exc)).splitlines()[0]
                )
            await asyncio.sleep(self.settings.rollout_guard_interval_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # its rounds catch everything else
                await task
        try:
            await asyncio.to_thread(self.round.release)
        finally:
            self.round.dispose()


def run(
    settings: Settings, project: str, *, once: bool = False, rounds: int | None = None
) -> list[dict[str, Any]]:
    """The guard as a foreground loop (server mode: one process beside the replicas, or a sidecar).
    ``once``: one round; ``rounds``: stop after that many. Returns the rollbacks it made."""
    guard = GuardRound(settings, project)
    done: list[dict[str, Any]] = []
    count = 0
    try:
        while True:
            try:
                result = guard()
            except Exception as exc:
                if once:
                    raise
                logger.warning("rollout guard: check failed (%s)", settings.redact(str(exc)).splitlines()[0])
                result = None
            if result is not None:
                done.append(result)
            count += 1
            if once or (rounds is not None and count >= rounds):
                return done
            time.sleep(settings.rollout_guard_interval_s)
    finally:
        guard.release()
        guard.dispose()
