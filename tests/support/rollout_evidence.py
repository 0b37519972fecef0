"""Online evidence as the serving data plane writes it, straight into the real prediction-log
tables (``predictions``, ``scorings``, ``feedback``): answers, shadow scorings, canary failures and
labels, with the latencies and the right or wrong answers a test needs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from mlops.stores.engine import create_engine
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import feedback, predictions, scorings

PROBS = {"setosa": 0.9, "versicolor": 0.05, "virginica": 0.05}


class EvidenceWriter:
    """Rows of one project's prediction log, each at now (strictly increasing: a look's cutoff is exact)."""

    def __init__(self, url: str, project: str = "iris", model_name: str = "iris-classifier") -> None:
        self.engine = create_engine(url)
        ensure_schema(self.engine, "predictions")
        self.project, self.model_name = project, model_name
        self.clock = datetime.now(UTC)

    def _tick(self) -> datetime:
        self.clock = max(datetime.now(UTC), self.clock + timedelta(microseconds=10))
        return self.clock

    def answer(
        self,
        version: str,
        *,
        prediction: int = 0,
        latency_ms: float = 2.0,
        label: int | None = None,
        request_id: str | None = None,
        probabilities: dict[str, float] | None = None,
    ) -> str:
        rid = request_id or uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                predictions.insert().values(
                    request_id=rid,
                    at=self._tick(),
                    project=self.project,
                    model_name=self.model_name,
                    model_version=version,
                    runtime="onnx",
                    inputs="{}",
                    prediction=prediction,
                    label=str(prediction),
                    probabilities=json.dumps(probabilities or PROBS),
                    latency_ms=latency_ms,
                )
            )
        if label is not None:
            self.label(rid, label)
        return rid

    def scoring(
        self,
        request_id: str,
        version: str,
        role: str,
        *,
        prediction: int | None = 0,
        latency_ms: float | None = 2.0,
        error: str | None = None,
        probabilities: dict[str, float] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                scorings.insert().values(
                    request_id=request_id,
                    at=self._tick(),
                    project=self.project,
                    model_name=self.model_name,
                    model_version=version,
                    role=role,
                    prediction=None if error else prediction,
                    label=None if error else str(prediction),
                    probabilities=None if error else json.dumps(probabilities or PROBS),
                    latency_ms=latency_ms,
                    error=error,
                )
            )

    def label(self, request_id: str, true_label: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                feedback.insert().values(
                    request_id=request_id,
                    at=self._tick(),
                    project=self.project,
                    true_label=true_label,
                    correct=False,
                )
            )

    def canary(
        self,
        candidate: str,
        production: str,
        *,
        ok: int = 0,
        failed: int = 0,
        prod: int = 0,
        latency_ms: float = 2.0,
        right: bool | None = None,
    ) -> None:
        """``ok`` candidate answers, ``failed`` candidate failures (production answered), ``prod``
        production answers; ``right``: label every answer (the candidate's right or wrong, production's
        right)."""
        for i in range(max(ok, prod)):  # interleaved, as live traffic is
            if i < prod:
                self.answer(production, prediction=0, label=None if right is None else 0)
            if i < ok:
                self.answer(
                    candidate,
                    prediction=0,
                    latency_ms=latency_ms,
                    label=None if right is None else int(not right),
                )
        for _ in range(failed):
            rid = self.answer(production)
            self.scoring(rid, candidate, "canary", error="RuntimeError: boom", prediction=None)

    def dispose(self) -> None:
        self.engine.dispose()

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
