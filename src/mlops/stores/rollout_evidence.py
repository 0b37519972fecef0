"""The SQL readers of a rollout's online evidence, from the prediction log's tables.

Where each fact lives (the serving data plane writes them, ``stores/tables.py``):

- a version's answers: ``predictions`` rows with its ``model_version`` (production's, and a canary
  candidate's for the routing keys it answers);
- a shadow candidate's scorings: ``scorings`` rows with ``role = 'shadow'`` (``prediction`` NULL and
  ``error`` set when it failed), joined to production's answer by ``request_id``;
- a canary candidate's failures: ``scorings`` rows with ``role = 'canary'`` and ``error`` set
  (production answered those requests: their answer is in ``predictions``);
- labels: ``feedback``, one per request, joined to every scoring of that request.

Counts are aggregated in SQL (a bounded result whatever the traffic); latencies and scores are
samples of the most recent rows, capped at ``SAMPLE_CAP``, for the percentiles and the drift.
``labelled_cutoff`` gives the label time of the n-th label, so a fixed look reads exactly the
labels counted up to it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from mlops.stores.engine import create_engine
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import feedback, predictions, rollouts, scorings

SAMPLE_CAP = 5_000  # latencies and scores per version and read: a bounded read, a stable p99


@dataclass(frozen=True)
class Traffic:
    """One version's requests since a time: how many, how many failed, a sample of latencies."""

    requests: int
    errors: int
    latencies_ms: list[float]

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Paired:
    """Labelled requests both versions scored (shadow): who was right."""

    both: int = 0
    only_candidate: int = 0
    only_production: int = 0
    neither: int = 0

    @property
    def n(self) -> int:
        return self.both + self.only_candidate + self.only_production + self.neither

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _floats(rows: Any) -> list[float]:
    return [float(v) for (v,) in rows if v is not None]


def _top_probability(text: str | None) -> float | None:
    """The predicted class's probability from a JSON ``{label: probability}``."""
    if not text:
        return None
    try:
        values = json.loads(text).values()
        return float(max(values)) if values else None
    except (ValueError, TypeError, AttributeError):
        return None


class EvidenceReader:
    """Read-only queries on the prediction log (``Settings.prediction_log_db_url``)."""

    def __init__(self, url: str, *, engine: sa.Engine | None = None) -> None:
        self.url = url
        self.engine = engine or create_engine(url)

    def _ready(self) -> None:
        ensure_schema(self.engine, "predictions")

    # ----- traffic -----
    def answered(self, project: str, version: str, since: datetime) -> Traffic:
        """Requests ``version`` answered (``predictions``), with no failures among them: a failed
        canary answer is production's row plus a ``canary`` scoring (``canary_failures``)."""
        self._ready()
        where = (
            predictions.c.project == project,
            predictions.c.model_version == version,
            predictions.c.at >= since,
        )
        with self.engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(predictions).where(*where)).scalar_one()
            latencies = _floats(
                conn.execute(
                    sa.select(predictions.c.latency_ms)
                    .where(*where)
                    .order_by(predictions.c.at.desc())
                    .limit(SAMPLE_CAP)
                )
            )
        return Traffic(int(n), 0, latencies)

    def scored(self, project: str, version: str, role: str, since: datetime) -> Traffic:
        """``scorings`` of ``version`` in ``role`` (shadow: every scoring, canary: the failures)."""
        self._ready()
        where = (
            scorings.c.project == project,
            scorings.c.model_version == version,
            scorings.c.role == role,
            scorings.c.at >= since,
        )
        failed = sa.func.sum(sa.case((scorings.c.error.is_not(None), 1), else_=0))
        with self.engine.connect() as conn:
            n, errors = conn.execute(sa.select(sa.func.count(), failed).where(*where)).one()
            latencies = _floats(
                conn.execute(
                    sa.select(scorings.c.latency_ms)
                    .where(*where, scorings.c.latency_ms.is_not(None))
                    .order_by(scorings.c.at.desc())
                    .limit(SAMPLE_CAP)
                )
            )
        return Traffic(int(n), int(errors or 0), latencies)

    def canary(self, project: str, version: str, since: datetime) -> Traffic:
        """A canary candidate's requests: its answers plus its failures (production answered those)."""
        answered = self.answered(project, version, since)
        failed = self.scored(project, version, "canary", since)
        latencies = (answered.latencies_ms + failed.latencies_ms)[:SAMPLE_CAP]
        return Traffic(answered.requests + failed.errors, failed.errors, latencies)

    def agreement(self, project: str, version: str, since: datetime) -> tuple[int, int]:
        """Shadow: (agreeing, compared) requests where ``version`` scored and production answered."""
        self._ready()
        same = sa.func.sum(sa.case((scorings.c.prediction == predictions.c.prediction, 1), else_=0))
        query = (
            sa.select(same, sa.func.count())
            .select_from(scorings.join(predictions, predictions.c.request_id == scorings.c.request_id))
            .where(
                scorings.c.project == project,
                scorings.c.model_version == version,
                scorings.c.role == "shadow",
                scorings.c.prediction.is_not(None),
                scorings.c.at >= since,
            )
        )
        with self.engine.connect() as conn:
            agree, n = conn.execute(query).one()
        return int(agree or 0), int(n)

    # ----- labels -----
    def labelled(
        self, project: str, version: str, since: datetime, until: datetime | None = None
    ) -> tuple[int, int]:
        """(correct, labelled) of ``version``'s answers since ``since`` (labels up to ``until``)."""
        self._ready()
        right = sa.func.sum(sa.case((predictions.c.prediction == feedback.c.true_label, 1), else_=0))
        query = (
            sa.select(right, sa.func.count())
            .select_from(predictions.join(feedback, feedback.c.request_id == predictions.c.request_id))
            .where(
                predictions.c.project == project,
                predictions.c.model_version == version,
                predictions.c.at >= since,
            )
        )
        if until is not None:
            query = query.where(feedback.c.at <= until)
        with self.engine.connect() as conn:
            ok, n = conn.execute(query).one()
        return int(ok or 0), int(n)

    def paired(self, project: str, version: str, since: datetime, until: datetime | None = None) -> Paired:
        """Shadow: labelled requests that production answered and ``version`` scored, by who was right."""
        self._ready()
        cand = scorings.c.prediction == feedback.c.true_label
        prod = predictions.c.prediction == feedback.c.true_label

        def count(condition: Any) -> Any:
            return sa.func.sum(sa.case((condition, 1), else_=0))

        query = (
            sa.select(
                count(sa.and_(cand, prod)),
                count(sa.and_(cand, sa.not_(prod))),
                count(sa.and_(sa.not_(cand), prod)),
                count(sa.and_(sa.not_(cand), sa.not_(prod))),
            )
            .select_from(
                scorings.join(predictions, predictions.c.request_id == scorings.c.request_id).join(
                    feedback, feedback.c.request_id == scorings.c.request_id
                )
            )
            .where(
                scorings.c.project == project,
                scorings.c.model_version == version,
                scorings.c.role == "shadow",
                scorings.c.prediction.is_not(None),
                scorings.c.at >= since,
            )
        )
        if until is not None:
            query = query.where(feedback.c.at <= until)
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
        return Paired(*(int(v or 0) for v in row))

    def labelled_cutoff(
        self, project: str, version: str, mode: str, since: datetime, nth: int
    ) -> datetime | None:
        """The label time of ``version``'s ``nth`` label (in label order) since ``since``: a fixed look
        counts the labels up to it. None when there are fewer labels."""
        self._ready()
        if mode == "shadow":
            query = (
                sa.select(feedback.c.at)
                .select_from(scorings.join(feedback, feedback.c.request_id == scorings.c.request_id))
                .where(
                    scorings.c.project == project,
                    scorings.c.model_version == version,
                    scorings.c.role == "shadow",
                    scorings.c.prediction.is_not(None),
                    scorings.c.at >= since,
                )
            )
        else:
            query = (
                sa.select(feedback.c.at)
                .select_from(predictions.join(feedback, feedback.c.request_id == predictions.c.request_id))
                .where(
                    predictions.c.project == project,
                    predictions.c.model_version == version,
                    predictions.c.at >= since,
                )
            )
        query = query.order_by(feedback.c.at, feedback.c.id).offset(nth - 1).limit(1)
        with self.engine.connect() as conn:
            at = conn.execute(query).scalar()
        return _utc(at) if at is not None else None

    # ----- scores, for drift -----
    def scores(self, project: str, version: str, since: datetime, *, role: str | None = None) -> list[float]:
        """The predicted class's probability of ``version``'s most recent answers (``role`` None) or
        scorings (``role`` "shadow"), at most ``SAMPLE_CAP``."""
        self._ready()
        if role is None:
            query = (
                sa.select(predictions.c.probabilities)
                .where(
                    predictions.c.project == project,
                    predictions.c.model_version == version,
                    predictions.c.at >= since,
                )
                .order_by(predictions.c.at.desc())
            )
        else:
            query = (
                sa.select(scorings.c.probabilities)
                .where(
                    scorings.c.project == project,
                    scorings.c.model_version == version,
                    scorings.c.role == role,
                    scorings.c.probabilities.is_not(None),
                    scorings.c.at >= since,
                )
                .order_by(scorings.c.at.desc())
            )
        with self.engine.connect() as conn:
            texts = conn.execute(query.limit(SAMPLE_CAP)).scalars().all()
        return [p for p in (_top_probability(t) for t in texts) if p is not None]

    def dispose(self) -> None:
        self.engine.dispose()


def last_incident(engine: sa.Engine, project: str) -> dict[str, Any] | None:
    """The most recent rollout of ``project`` that ended with an incident (the guard's rollback), from
    the control database's ``rollouts``: its id, candidate, end and the incident (breach, figures)."""
    query = (
        sa.select(
            rollouts.c.id, rollouts.c.candidate, rollouts.c.state, rollouts.c.ended_at, rollouts.c.incident
        )
        .where(rollouts.c.project == project, rollouts.c.state == "rolled_back")
        .order_by(rollouts.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    ended = _utc(row.ended_at).isoformat() if row.ended_at else None
    return {
        "rollout": int(row.id),
        "candidate": row.candidate,
        "state": row.state,
        "ended_at": ended,
        **json.loads(row.incident or "{}"),
    }
