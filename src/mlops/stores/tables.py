"""Every table of the project's own databases, as SQLAlchemy Core metadata (the migrations' target).

Two databases, named in ``Settings.databases``:

- ``control``: the audit log, alias intents, rollouts, leases and retrain jobs:
  small, precious.
- ``predictions``: the high-volume prediction log with its feedback, the shadow and canary scorings,
  and the drift results computed from it.

Column names and types are those the tables had before migrations existed (commit 117f35d), so data
written then reads back unchanged. A change here needs a revision in ``migrations/versions``
(``alembic check`` in tests/integration/test_migrations.py fails otherwise).
"""

from __future__ import annotations

import sqlalchemy as sa

control = sa.MetaData()
prediction_log = sa.MetaData()
METADATA: dict[str, sa.MetaData] = {"control": control, "predictions": prediction_log}

audit_log = sa.Table(
    "audit_log",
    control,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(50)),
    sa.Column("from_version", sa.String(50)),
    sa.Column("to_version", sa.String(50)),
    sa.Column("decision", sa.String(50), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False, default="{}"),
    # the hash chain (c0002): gap-free sequence, previous row's hash, this row's hash (stores/chain.py)
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("seq", name="uq_audit_log_seq"),
)

# The chain's head, outside the chain: one row per chain, UPDATEd on every append in the same
# transaction, signed with an HMAC (not append-only: the signature protects it, not a trigger).
audit_anchor = sa.Table(
    "audit_anchor",
    control,
    sa.Column("chain", sa.String(50), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("hmac", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# Alias moves in flight: written before the MLflow write, closed after the audit row (governance/ledger).
alias_intents = sa.Table(
    "alias_intents",
    control,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(50), nullable=False),
    sa.Column("expected", sa.String(50)),
    sa.Column("new", sa.String(50), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # pending | done | abandoned
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("audit_seq", sa.Integer),
)

# Progressive delivery (c0003): one row per rollout of a candidate. Every worker's poll reads the
# active one; ``generation`` grows on every change (compare-and-set: a change names the generation it
# read). ``active_key`` is the project while the rollout is active and NULL once it ended: a unique
# constraint then allows one active rollout per project, across every replica.
rollouts = sa.Table(
    "rollouts",
    control,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(100), nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("candidate", sa.String(50), nullable=False),
    sa.Column("baseline", sa.String(50)),  # the production version when it started
    sa.Column("mode", sa.String(20), nullable=False),  # shadow | canary
    sa.Column("percent", sa.Float, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # active | promoted | aborted | rolled_back
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),  # a step's evidence counts from here
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("incident", sa.Text, nullable=False, default="{}"),  # JSON: the breach that ended it
    sa.Column("active_key", sa.String(100)),
    sa.UniqueConstraint("active_key", name="uq_rollouts_active_key"),
)

# Leases (c0003): a named leadership held for a while by one holder (the rollout guard: one leader
# among every worker and replica). Taken or renewed by a compare-and-set UPDATE (stores/leases.py).
leases = sa.Table(
    "leases",
    control,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# Retrain jobs (c0004): one row per job, written by the service that records it and by the runner
# that claims it (``runner``, ``pid``), which heartbeats while it trains and writes the outcome.
# ``active_key`` is the project while the job is queued or running and NULL once it finished: a unique
# constraint then allows one active job per project across every worker and replica. A job whose
# ``heartbeat_at`` is older than the lease is failed by whoever reads it next (stores/jobs.py).
jobs = sa.Table(
    "jobs",
    control,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project", sa.String(100), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),  # train
    sa.Column("state", sa.String(20), nullable=False),  # queued | running | succeeded | failed
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),  # NULL: waits for a runner, no lease yet
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("runner", sa.String(200)),  # who claimed it: host:pid (NULL: nobody yet)
    sa.Column("pid", sa.Integer),
    sa.Column("model_version", sa.String(50)),
    sa.Column("result", sa.Text),  # JSON: errors.JobResult as the runner read it
    sa.Column("error", sa.Text),
    sa.Column("log_tail", sa.Text, nullable=False, default=""),  # the last lines, bounded
    sa.Column("active_key", sa.String(100)),
    sa.UniqueConstraint("active_key", name="uq_jobs_active_key"),
)

predictions = sa.Table(
    "predictions",
    prediction_log,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("project", sa.String(100), nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("runtime", sa.String(20), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("prediction", sa.Integer, nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("probabilities", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    # p0004: the request's trace (tracing on), and the keyed hash of its subject key (erasure by subject)
    sa.Column("trace_id", sa.String(32)),
    sa.Column("subject_hash", sa.String(64), index=True),
    # p0003: a version's rows in a time window (the online evidence of rollouts)
    sa.Index("ix_predictions_pva", "project", "model_version", "at"),
)

# A label belongs to the REQUEST, not to a version: one row per request id (a second label replaces
# the first, p0002), and live accuracy per version joins it to every prediction row of that request
# (the answering version's today; a shadow version's too once shadow scoring logs its rows).
# ``correct`` is the answering version's verdict, kept for readers of the p0001 schema.
feedback = sa.Table(
    "feedback",
    prediction_log,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),  # p0005: the retention sweep
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("true_label", sa.Integer, nullable=False),
    sa.Column("correct", sa.Boolean, nullable=False),
)

drift_results = sa.Table(
    "drift_results",
    prediction_log,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("project", sa.String(100), nullable=False, index=True),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("reference_hash", sa.String(128), nullable=False),
    sa.Column("current_rows", sa.Integer, nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("detected", sa.Boolean, nullable=False),
    sa.Column("features", sa.Text, nullable=False),  # JSON: name -> {score, drifted, method}
    sa.Column("report_path", sa.Text, nullable=False, default=""),
)

# Scorings besides the answer (p0003): a shadow version's prediction of a request, or a canary
# candidate's failure on a request production then answered. One row per (request, version); the
# answer itself stays in ``predictions``. ``error`` is set (prediction NULL) when the version failed.
scorings = sa.Table(
    "scorings",
    prediction_log,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),  # shadow | canary
    sa.Column("prediction", sa.Integer),
    sa.Column("label", sa.String(200)),
    sa.Column("probabilities", sa.Text),
    sa.Column("latency_ms", sa.Float),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("request_id", "model_version", name="uq_scorings_request_version"),
    sa.Index("ix_scorings_pva", "project", "model_version", "at"),
)
