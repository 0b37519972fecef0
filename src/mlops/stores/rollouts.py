"""The rollout record: which candidate is being tried, how (shadow or canary), on what share.

Shared state, not per process: every worker and replica reads the active rollout of its project on
its poll; ``mlops rollout`` changes it. One active rollout per project, by a unique constraint
(``active_key``), and every change is a compare-and-set on ``generation``: a change names the
generation it read and is refused (``RolloutConflict``) when another one came first. Deciding
(evidence, budgets) and auditing are governance's (``mlops.governance.rollout``); ``conn`` lets a
change share the audit row's transaction.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from mlops.errors import MlopsError
from mlops.stores.engine import create_engine
from mlops.stores.locks import transaction_control, write_transaction
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import rollouts

if TYPE_CHECKING:
    from mlops.settings import Settings

Mode = Literal["shadow", "canary"]
State = Literal["active", "promoted", "aborted", "rolled_back"]
MODES: tuple[str, ...] = ("shadow", "canary")
ENDED: tuple[str, ...] = ("promoted", "aborted", "rolled_back")


class RolloutConflict(MlopsError):
    """A rollout is already active, or the record changed since it was read (compare-and-set)."""

    exit_code = 5


@dataclass(frozen=True, slots=True)
class Rollout:
    id: int
    project: str
    model_name: str
    candidate: str
    baseline: str | None
    mode: Mode
    percent: float
    state: State
    generation: int
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    actor: str
    reason: str
    incident: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state == "active"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "model_name": self.model_name,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "mode": self.mode,
            "percent": self.percent,
            "state": self.state,
            "generation": self.generation,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "actor": self.actor,
            "reason": self.reason,
            "incident": self.incident,
        }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps no zone: UTC


def _rollout(row: Any) -> Rollout:
    started, updated = _utc(row.started_at), _utc(row.updated_at)
    assert started is not None and updated is not None
    return Rollout(
        id=int(row.id),
        project=row.project,
        model_name=row.model_name,
        candidate=row.candidate,
        baseline=row.baseline,
        mode=row.mode,
        percent=float(row.percent),
        state=row.state,
        generation=int(row.generation),
        started_at=started,
        updated_at=updated,
        ended_at=_utc(row.ended_at),
        actor=row.actor,
        reason=row.reason or "",
        incident=json.loads(row.incident or "{}"),
    )


class RolloutStore:
    """The ``rollouts`` table of the control database."""

    def __init__(self, url: str, *, engine: sa.Engine | None = None) -> None:
        self.url = url
        self.engine = transaction_control(engine or create_engine(url))

    @classmethod
    def for_settings(cls, settings: Settings) -> RolloutStore:
        return cls(settings.audit_url)

    def _ready(self) -> None:
        ensure_schema(self.engine, "control")

    # ----- reads -----
    def active(self, project: str) -> Rollout | None:
        """The project's active rollout, if any: what every worker's poll reads."""
        self._ready()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(rollouts).where(rollouts.c.active_key == project)).first()
        return _rollout(row) if row is not None else None

    def latest(self, project: str) -> Rollout | None:
        """The project's most recent rollout, active or ended (status shows how the last one ended)."""
        self._ready()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(rollouts)
                .where(rollouts.c.project == project)
                .order_by(rollouts.c.id.desc())
                .limit(1)
            ).first()
        return _rollout(row) if row is not None else None

    def get(self, rollout_id: int) -> Rollout | None:
        self._ready()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
        return _rollout(row) if row is not None else None

    # ----- changes: each one transaction (or the caller's ``conn``) -----
    def transaction(self) -> AbstractContextManager[sa.Connection]:
        """A write transaction on the control database (the audit row can join it)."""
        self._ready()
        return write_transaction(self.engine)

    def start(
        self,
        *,
        project: str,
        model_name: str,
        candidate: str,
        baseline: str | None,
        mode: Mode,
        percent: float,
        actor: str,
        reason: str = "",
        conn: sa.Connection | None = None,
    ) -> Rollout:
        """A new active rollout; ``RolloutConflict`` when the project already has one."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        now = datetime.now(UTC)
        values = {
            "project": project,
            "model_name": model_name,
            "candidate": candidate,
            "baseline": baseline,
            "mode": mode,
            "percent": float(percent),
            "state": "active",
            "generation": 1,
            "started_at": now,
            "updated_at": now,
            "actor": actor,
            "reason": reason,
            "incident": "{}",
            "active_key": project,
        }
        with self._conn(conn) as c:
            try:
                with c.begin_nested():
                    result = c.execute(rollouts.insert().values(**values))
            except sa.exc.IntegrityError:
                current = c.execute(sa.select(rollouts).where(rollouts.c.active_key == project)).first()
                which = f"rollout {current.id} of version {current.candidate}" if current else "a rollout"
                raise RolloutConflict(
                    f"{which} is already active for {project!r}",
                    hint="`mlops rollout status`; end it with `mlops rollout promote` or `abort` first",
                ) from None
            key = result.inserted_primary_key
            assert key is not None
            row = c.execute(sa.select(rollouts).where(rollouts.c.id == int(key[0]))).one()
        return _rollout(row)

    def update(
        self,
        rollout_id: int,
        *,
        expected_generation: int,
        mode: Mode | None = None,
        percent: float | None = None,
        conn: sa.Connection | None = None,
    ) -> Rollout:
        """Change the mode or share of an active rollout (a ramp step): compare-and-set on generation."""
        values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
        if mode is not None:
            if mode not in MODES:
                raise ValueError(f"mode {mode!r} is not one of {MODES}")
            values["mode"] = mode
        if percent is not None:
            values["percent"] = float(percent)
        return self._change(rollout_id, expected_generation, values, conn)

    def end(
        self,
        rollout_id: int,
        *,
        expected_generation: int,
        state: State,
        incident: dict[str, Any] | None = None,
        conn: sa.Connection | None = None,
    ) -> Rollout:
        """End an active rollout (promoted, aborted or rolled back): compare-and-set on generation."""
        if state not in ENDED:
            raise ValueError(f"state {state!r} is not one of {ENDED}")
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "state": state,
            "ended_at": now,
            "updated_at": now,
            "active_key": None,
            "incident": json.dumps(incident or {}, sort_keys=True, default=str),
        }
        return self._change(rollout_id, expected_generation, values, conn)

    def _change(
        self, rollout_id: int, expected: int, values: dict[str, Any], conn: sa.Connection | None
    ) -> Rollout:
        with self._conn(conn) as c:
            updated = c.execute(
                rollouts.update()
                .where(
                    rollouts.c.id == rollout_id,
                    rollouts.c.generation == expected,
                    rollouts.c.state == "active",
                )
                .values(generation=rollouts.c.generation + 1, **values)
            )
            row = c.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
            if not updated.rowcount:
                if row is None:
                    raise RolloutConflict(f"no rollout {rollout_id}")
                raise RolloutConflict(
                    f"rollout {rollout_id} changed meanwhile (generation {row.generation}, state "
                    f"{row.state}; expected generation {expected}, active): refused",
                    hint="re-read it with `mlops rollout status` and decide again",
                )
        return _rollout(row)

    def _conn(self, conn: sa.Connection | None) -> AbstractContextManager[sa.Connection]:
        return nullcontext(conn) if conn is not None else self.transaction()

    def dispose(self) -> None:
        self.engine.dispose()
