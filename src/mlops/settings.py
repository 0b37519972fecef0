"""One settings object for every mode; read from the environment (prefix ``MLOPS_``) or ``.env``.

Nothing here touches the disk, the network or the process environment: ``mlops.configure`` is the
one place that points ZenML and MLflow at the project's state folder (entry points only).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "password", "admin"}
# URLs that may carry a password (``postgresql://user:password@host/db``).
URL_FIELDS = (
    "tracking_uri",
    "registry_uri",
    "audit_db_url",
    "prediction_log_url",
    "alert_webhook_url",
    "search_storage",
)
# Never step parameters (ZenML stores those in its database and shows them in the dashboard): the API
# keys, and the webhook URL (its token is usually in the path, where ``mask_url`` cannot see it).
NOT_STEP_PARAMETERS = frozenset({"admin_api_key", "predict_api_key", "alert_webhook_url", "audit_hmac_key"})


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: safe to log, print or return."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_", env_file=".env", extra="ignore")

    environment: Literal["development", "staging", "production"] = "development"
    project: str = "iris"
    home: Path = Field(Path(".mlops"), description="State folder of the embedded mode.")

    # MLflow tracking + registry; empty means SQLite under `home`.
    tracking_uri: str = ""
    registry_uri: str = ""
    experiment_name: str = ""
    model_name: str = Field("", description="Registered model name; empty means '<project>-classifier'.")

    # Governance
    audit_db_url: str = ""
    promotion_margin: float = Field(
        0.0, ge=0.0, description="Challenger must beat champion by more than this."
    )
    actor: str = Field("", description="Who acts; defaults to the OS user.")
    alert_webhook_url: str = ""

    # Training
    seed: int = 42
    test_size: float = Field(0.3, gt=0.0, lt=1.0)
    onnx_prob_tolerance: float = 1e-4
    data_path: Path | None = None

    # Monitoring
    drift_share_threshold: float = Field(
        0.3, gt=0, le=1, description="Share of drifted features that is drift."
    )
    drift_retrain_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="The monitor retrains only at or above this share; 0: whenever drift is detected.",
    )
    service_url: str = "http://127.0.0.1:8000"

    # Serving
    host: str = "127.0.0.1"
    port: int = 8000
    serving_alias: str = "production"
    poll_interval_s: float = Field(
        1.0, gt=0, description="Seconds between alias polls: bounds the hot-swap time."
    )
    keep_alive_s: int = Field(
        75,
        gt=0,
        description="Seconds an idle client connection stays open. Longer than any client's or load "
        "balancer's idle timeout (httpx 5 s, AWS ALB 60 s): the client drops it first, instead of "
        "sending a request on a connection the server is closing.",
    )
    max_batch_rows: int = Field(1000, gt=0)
    prediction_log_url: str = ""
    prediction_log_queue_size: int = 10_000
    prediction_log_flush_s: float = 0.5
    prediction_log_spool_max_mb: float = Field(
        512.0, gt=0, description="Local spool of the prediction log (a database outage): its size limit."
    )
    prediction_log_lossless: bool = Field(
        False, description="A full spool refuses predictions (503 + Retry-After) instead of dropping rows."
    )
    model_cache: bool = Field(
        True, description="Serve the last served version from the state folder at start."
    )

    # Progressive delivery: shadow and canary rollouts of a candidate (docs/rollouts.md)
    rollout_steps: str = Field("1,5,25,50", description="Canary ramp, in percent of routing keys.")
    rollout_min_requests: int = Field(
        500, ge=1, description="Candidate requests a step needs before it is judged (ramp, promote)."
    )
    rollout_error_budget: float = Field(
        0.01, ge=0, le=1, description="Candidate error rate above this ends a canary (automatic rollback)."
    )
    rollout_latency_budget_ms: float = Field(
        50.0, gt=0, description="Candidate p99 scoring latency above this ends a canary."
    )
    rollout_looks: int = Field(
        10, ge=1, description="Fixed looks at live accuracy per step (alpha is split between them)."
    )
    rollout_alpha: float = Field(0.05, gt=0, lt=1, description="Error rate of the online comparison.")
    rollout_guard_interval_s: float = Field(5.0, gt=0, description="Seconds between the guard's checks.")
    rollout_guard_lease_s: float = Field(
        15.0, gt=0, description="The guard's leadership lease: another worker takes over after it lapses."
    )
    shadow_queue_size: int = Field(
        10_000, ge=1, description="Requests waiting for shadow scoring; beyond it they are skipped, counted."
    )
    admin_api_key: SecretStr | None = None
    predict_api_key: SecretStr | None = None
    # ----- evidence and provenance -----
    git_commit: str = Field("", description="The code's commit where no .git exists (containers).")

    # The tamper-evident audit: the HMAC key of the audit chain's anchor. Unset in
    # development: a random key file under the state folder; unset elsewhere: audit writes are refused.
    audit_hmac_key: SecretStr | None = None

    # promotion: fail closed, the statistical decision, the sealed slice, approvers (docs/governance.md)
    promotion_scoring_timeout_s: float = Field(
        120.0, gt=0, description="Scoring the champion longer than this cannot be judged: refused."
    )
    bootstrap_resamples: int = Field(2000, ge=1000, description="Paired bootstrap resamples per decision.")
    noninferiority_margin: float = Field(
        0.01, gt=0.0, description="Re-validation passes when the interval's lower bound exceeds -margin."
    )
    sealed_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of rows in the sealed slice.")
    sealed_max_decisions: int = Field(50, ge=1, description="Decisions that may read one sealed slice.")
    train_fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="Stratified share of the training split used to fit."
    )
    approvers: str = Field("", description="Comma-separated allow-list of production approvers.")

    # Beyond one machine (docs/scaling.md): batch engines, retraining runners, hyperparameter search
    batch_engine: Literal["local", "spark"] = Field(
        "local", description="Batch scoring engine: one process (local) or Apache Spark."
    )
    spark_master: str = Field("local[*]", description="Spark master URL: local[N], spark://..., k8s://...")
    spark_java_home: str = Field("", description="Java 17 for Spark; empty: JAVA_HOME, else a Java 17 found.")
    runner: Literal["local", "external"] = Field(
        "local",
        description="Who runs retrain jobs: a local runner process the service starts, or `mlops worker`.",
    )
    runner_heartbeat_s: float = Field(5.0, gt=0, description="A running job's heartbeat period.")
    runner_lease_s: float = Field(
        30.0, gt=0, description="A job whose heartbeat is older than this is failed (its runner died)."
    )
    search_trials: int = Field(0, ge=0, description="Optuna trials per training run; 0: the spec's defaults.")
    search_timeout_s: float = Field(600.0, gt=0, description="Upper bound of one training run's search.")
    search_storage: str = Field(
        "", description="Optuna storage URL (RDB, server mode); empty: a journal file in the state folder."
    )

    # Operator experience (docs/operations.md): dashboards, the monitoring loop, logs, health data
    log_level: str = Field(
        "",
        description="Third-party log lines shown on the CLI from this level (e.g. INFO); empty: WARNING and "
        "above into <state>/logs/, --verbose: INFO, shown.",
    )
    zenml_dashboard_port: int = Field(8237, gt=0, lt=65536, description="`mlops ui`: ZenML's dashboard.")
    mlflow_ui_port: int = Field(5000, gt=0, lt=65536, description="`mlops ui`: MLflow's UI.")
    monitor_window: int = Field(
        1000, ge=1, description="Latest prediction-log rows one monitoring pass compares with the reference."
    )
    monitor_cooldown_s: float = Field(
        3600.0, ge=0, description="After a drift episode started a retrain, no other starts for this long."
    )
    retention_days: float = Field(
        90.0, gt=0, description="Prediction-log rows, scorings and feedback older than this are purged."
    )

    def rollout_step_list(self) -> list[float]:
        return sorted(float(p) for p in self.rollout_steps.split(",") if p.strip())

    def approver_list(self) -> list[str]:
        return [a.strip() for a in self.approvers.split(",") if a.strip()]

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        for name in ("admin_api_key", "predict_api_key"):
            keys = self.api_keys(name) if getattr(self, name) is not None else ["unset"]
            if not keys or any(key.lower() in PLACEHOLDER_SECRETS for key in keys):
                raise ValueError(
                    f"MLOPS_{name.upper()} is a placeholder; set a real secret in {self.environment}"
                )
        return self

    # ----- secrets: API keys are SecretStr; URLs keep their password, masked wherever shown -----
    def api_keys(self, name: str) -> list[str]:
        """The accepted keys, newest first: ``NEW,OLD`` during a rotation, so clients never lock out."""
        value: SecretStr | None = getattr(self, name)
        return [k.strip() for k in value.get_secret_value().split(",") if k.strip()] if value else []

    def secrets(self) -> set[str]:
        """Every secret value of this configuration: the API keys and the passwords in its URLs."""
        keys = {k for name in ("admin_api_key", "predict_api_key") for k in self.api_keys(name)}
        if self.audit_hmac_key is not None:
            keys.add(self.audit_hmac_key.get_secret_value())
        passwords = {urlsplit(getattr(self, name)).password or "" for name in URL_FIELDS}
        return {s for s in keys | passwords | {unquote(p) for p in passwords} if s}

    def redact(self, text: str) -> str:
        """``text`` (an error message, a log line) with every secret of this configuration masked:
        libraries put the URL they failed to reach, password included, in their exceptions."""
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name in URL_FIELDS else value

    # ----- settings as step parameters: the non-secret ones travel, secrets stay in the environment -----
    def step_parameters(self) -> dict[str, Any]:
        """These settings as JSON values for a pipeline run's parameters, without any secret: no API
        key, no webhook URL, no URL that carries a password (a step reads those from its own
        process environment, as ``from_step_parameters`` does)."""
        values = self.model_dump(mode="json", exclude=set(NOT_STEP_PARAMETERS))
        values["home"] = str(self.state_dir)  # absolute: a step may run in another working directory
        for name in URL_FIELDS:
            if name in values and urlsplit(values[name]).password:
                del values[name]
        return values

    @classmethod
    def from_step_parameters(cls, values: dict[str, Any]) -> Settings:
        """Settings inside a step: the run's parameters, and what they leave out (the secrets) from
        the step process's environment (``MLOPS_*``, ``.env``), as the orchestrator provides it."""
        return cls(**values)

    # ----- derived locations (pure: nothing is created here) -----
    @property
    def state_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def zenml_config_path(self) -> Path:
        return self.state_dir / "zenml"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def mlflow_registry_uri(self) -> str:
        return self.registry_uri or self.mlflow_tracking_uri

    @property
    def mlflow_artifact_location(self) -> str:
        return (self.state_dir / "mlartifacts").as_uri()

    @property
    def audit_url(self) -> str:
        return self.audit_db_url or f"sqlite:///{self.state_dir / 'audit.db'}"

    @property
    def prediction_log_db_url(self) -> str:
        return self.prediction_log_url or f"sqlite:///{self.state_dir / 'predictions.db'}"

    @property
    def model_cache_dir(self) -> Path:
        return self.state_dir / "model-cache"

    @property
    def prediction_spool_dir(self) -> Path:
        return self.state_dir / "prediction-spool"

    @property
    def databases(self) -> dict[str, str]:
        """Which database holds which tables (``mlops.stores.tables``), named here once:
        ``control`` (audit log; later jobs, rollouts, locks) and ``predictions`` (prediction log,
        feedback, drift results). Both may name the same database."""
        return {"control": self.audit_url, "predictions": self.prediction_log_db_url}

    @property
    def who(self) -> str:
        if self.actor:
            return self.actor
        import getpass

        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"

    def registered_model_name(self, project: str | None = None) -> str:
        return self.model_name or f"{project or self.project}-classifier"

    def experiment(self, project: str | None = None) -> str:
        return self.experiment_name or f"{project or self.project}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
