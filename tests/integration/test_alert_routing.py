"""Alerts reach a receiver: the shipped rules and routing, run by real Prometheus and Alertmanager.

Prometheus (Debian ``prometheus``) scrapes a metrics target this test controls and evaluates the
SHIPPED deploy/prometheus/alerts.yml; Alertmanager (Debian ``prometheus-alertmanager``), started
through the shipped deploy/alertmanager/entrypoint.sh, routes with the SHIPPED alertmanager.yml to a
webhook receiver in this test. Only the waits are shortened, by :func:`shorten_rules` and
:func:`shorten_routing` (every rule's ``for:``, every route's group timings): the expressions,
labels, routes and receivers are the files as shipped. Then the project's own pipeline-failure
webhook (``MLOPS_ALERT_WEBHOOK_URL``, ``steps/hooks.py``) against the same kind of receiver.

Servers bind 127.0.0.1 on free ports, start in their own sessions and stop by process group. A
missing binary skips on a developer machine and FAILS under ``CI=true``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.processes import Proc, free_port
from tests.static import promql

pytestmark = pytest.mark.integration

ROOT = promql.ROOT
ALERTMANAGER_DIR = ROOT / "deploy" / "alertmanager"
RULES = promql.PROMETHEUS_DIR / "alerts.yml"
WAIT = 90.0  # seconds for one notification on a loaded machine (about 3-5 s when idle)


def require(binary: str) -> str:
    """The binary's path; missing: a failure under CI=true (.ci/run installs it), else a skip."""
    found = shutil.which(binary)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{binary} is required in CI (CI=true): .ci/run installs Debian's package")
    pytest.skip(f"{binary} is not installed (Debian: prometheus / prometheus-alertmanager)")


# ----------------------------------------------------------------------------- the shipped files, faster
def shorten_rules(source: Path, target: Path, *, for_: str = "1s") -> Path:
    """``source`` (a Prometheus rule file) with every alert's ``for:`` set to ``for_``."""
    rules = yaml.safe_load(source.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def shorten_routing(
    source: Path, target: Path, *, wait: str = "1s", interval: str = "1s", repeat: str = "1h"
) -> Path:
    """``source`` (an Alertmanager config) with each route's group timings shortened where it sets
    them (the root always does, children inherit): ``repeat`` long, so each notification is news."""
    config = yaml.safe_load(source.read_text())
    timings = {"group_wait": wait, "group_interval": interval, "repeat_interval": repeat}

    def walk(route: dict[str, Any]) -> None:
        for key in timings.keys() & route.keys():
            route[key] = timings[key]
        for child in route.get("routes") or []:
            walk(child)

    walk(config["route"])
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


# ----------------------------------------------------------------------------- test-side HTTP servers
class _Server(ThreadingHTTPServer):
    daemon_threads = True


@dataclass
class Receiver:
    """A webhook receiver: records every JSON POST (path, body); answers ``status``."""

    status: int = 200
    posts: list[tuple[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.posts.append((self.path, json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self.posts)

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = WAIT) -> dict[str, Any]:
        """The first recorded body that satisfies ``predicate``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, body in self.snapshot():
                if predicate(body):
                    return dict(body)
            time.sleep(0.2)
        raise AssertionError(f"no matching notification in {timeout}s; received: {self.snapshot()}")


@dataclass
class Target:
    """What Prometheus scrapes as the inference service: exposition text of ``values``; while
    ``down`` it answers 503, so the scrape fails and ``up`` is 0."""

    values: dict[str, float]
    down: bool = False

    def __post_init__(self) -> None:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                text = "".join(f"{name} {value}\n" for name, value in target.values.items()).encode()
                self.send_response(503 if target.down else 200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


HEALTHY = {
    "mlops_model_loaded": 1,
    "mlops_registry_reachable": 1,
    "mlops_dataset_drift_share": 0.05,
    "mlops_dataset_drift_detected": 0,
}


@dataclass
class Alerting:
    target: Target
    receiver: Receiver
    prometheus: str
    alertmanager: str


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    prometheus_bin, alertmanager_bin = require("prometheus"), require("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("alerting")
    target, receiver = Target(dict(HEALTHY)), Receiver()
    procs: list[Proc] = []
    try:
        am_port, prom_port = free_port(), free_port()
        config = shorten_routing(ALERTMANAGER_DIR / "alertmanager.yml", root / "alertmanager.yml")
        env = {
            "PATH": os.environ["PATH"],
            "ALERTMANAGER_CONFIG": str(config),
            "ALERTMANAGER_RENDERED": str(root / "alertmanager.rendered.yml"),
            "ALERTMANAGER_WEBHOOK_URL": f"{receiver.url}/alertmanager",
            "ALERTMANAGER_BIN": alertmanager_bin,
        }
        am = Proc(
            "alertmanager",
            [
                "sh",
                str(ALERTMANAGER_DIR / "entrypoint.sh"),
                f"--storage.path={root / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            env,
            root,
        )
        procs.append(am)
        am.wait_http(f"http://127.0.0.1:{am_port}/-/ready", timeout=60)

        rules = shorten_rules(RULES, root / "alerts.yml")
        prom_config = promql.prometheus_config(target.address, scrape_interval="1s", rules=rules)
        prom_config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(prom_config, sort_keys=False))
        prometheus = Proc(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            {"PATH": os.environ["PATH"]},
            root,
        )
        procs.append(prometheus)
        prometheus.wait_http(f"http://127.0.0.1:{prom_port}/-/ready", timeout=60)
        yield Alerting(target, receiver, f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}")
    finally:
        for proc in reversed(procs):
            proc.stop()
        target.close()
        receiver.close()


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _wait_until(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout}s: {check}")


def _notification(alertname: str, receiver: str, status: str) -> Callable[[Any], bool]:
    def matches(body: Any) -> bool:
        return (
            body.get("receiver") == receiver
            and body.get("status") == status
            and any(a["labels"].get("alertname") == alertname for a in body.get("alerts", []))
        )

    return matches


def _alert(body: dict[str, Any], alertname: str) -> dict[str, Any]:
    (alert,) = [a for a in body["alerts"] if a["labels"]["alertname"] == alertname]
    return dict(alert)


def test_a_shipped_warning_rule_reaches_its_team_then_resolves(alerting: Alerting) -> None:
    target, receiver = alerting.target, alerting.receiver
    # the healthy target is scraped and nothing fires
    _wait_until(lambda: any(r["value"][1] == "1" for r in _query(alerting.prometheus, "up")))
    time.sleep(3)
    assert receiver.snapshot() == [], "a healthy service raised an alert"

    target.values["mlops_dataset_drift_share"] = 0.6  # 60% of the features drifted (threshold 30%)
    firing = receiver.wait_for(_notification("DataDriftDetected", "ml-team", "firing"))
    alert = _alert(firing, "DataDriftDetected")
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "DataDriftDetected",
        "severity": "warning",
        "team": "ml",
        "stack": "mlops",  # prometheus.yml's external label: which stack sent it
    }
    assert alert["annotations"]["runbook"] == "docs/operations.md#datadriftdetected"
    assert alert["annotations"]["summary"] == "Input data drift above threshold"
    assert firing["groupLabels"] == {"alertname": "DataDriftDetected"}
    # a warning never pages
    assert not [b for _, b in receiver.snapshot() if b["receiver"] == "oncall"]

    target.values["mlops_dataset_drift_share"] = 0.05
    resolved = receiver.wait_for(_notification("DataDriftDetected", "ml-team", "resolved"))
    assert _alert(resolved, "DataDriftDetected")["labels"] == alert["labels"]
    assert {path for path, _ in receiver.snapshot()} == {"/alertmanager"}


def test_a_critical_rule_pages_oncall_and_the_owning_team_then_resolves(alerting: Alerting) -> None:
    target, receiver = alerting.target, alerting.receiver
    target.down = True  # scrapes fail: up == 0
    try:
        pages = receiver.wait_for(_notification("InferenceServiceDown", "oncall", "firing"))
        team = receiver.wait_for(_notification("InferenceServiceDown", "platform-team", "firing"))
    finally:
        target.down = False
    alert = _alert(pages, "InferenceServiceDown")
    assert alert["labels"] == {
        "alertname": "InferenceServiceDown",
        "severity": "critical",
        "team": "platform",
        "job": "mlops-inference",
        "instance": target.address,
        "service": "inference",
        "stack": "mlops",
    }
    assert _alert(team, "InferenceServiceDown")["labels"] == alert["labels"]
    assert alert["annotations"]["summary"] == f"Inference service {target.address} is down"
    assert alert["annotations"]["runbook"] == "docs/operations.md#inferenceservicedown"

    for route in ("oncall", "platform-team"):  # the service is scraped again
        resolved = receiver.wait_for(_notification("InferenceServiceDown", route, "resolved"))
        assert _alert(resolved, "InferenceServiceDown")["endsAt"] > alert["startsAt"]


def _alertmanager_alerts(alerting: Alerting, alertname: str) -> list[dict[str, Any]]:
    url = f"{alerting.alertmanager}/api/v2/alerts"
    return list(httpx.get(url, params={"filter": f'alertname="{alertname}"'}, timeout=10).json())


def test_a_full_spool_inhibits_the_lesser_prediction_log_alerts(alerting: Alerting) -> None:
    """The shipped inhibition: PredictionLogRefusing (critical) silences PredictionLogDropping of the
    same instance, which Alertmanager then holds as suppressed and notifies no one of. (Last here:
    its increase() windows are not shortened, so these alerts stay active until the module ends.)"""
    target, receiver = alerting.target, alerting.receiver
    target.values.update({"mlops_prediction_log_refused_total": 0, "mlops_prediction_log_dropped_total": 0})
    _wait_until(lambda: bool(_query(alerting.prometheus, "mlops_prediction_log_dropped_total")))
    time.sleep(2)  # a few samples at 0 for increase() to start from
    target.values["mlops_prediction_log_refused_total"] = 5
    receiver.wait_for(_notification("PredictionLogRefusing", "oncall", "firing"))
    receiver.wait_for(_notification("PredictionLogRefusing", "platform-team", "firing"))
    target.values["mlops_prediction_log_dropped_total"] = 40

    def suppressed() -> bool:
        alerts = _alertmanager_alerts(alerting, "PredictionLogDropping")
        return bool(alerts) and all(a["status"]["state"] == "suppressed" for a in alerts)

    _wait_until(suppressed)
    (dropping,) = _alertmanager_alerts(alerting, "PredictionLogDropping")
    (refusing,) = _alertmanager_alerts(alerting, "PredictionLogRefusing")
    assert dropping["status"]["inhibitedBy"] == [refusing["fingerprint"]]
    assert dropping["labels"]["instance"] == refusing["labels"]["instance"] == target.address
    time.sleep(3)  # several group intervals (1 s): a notification would have gone by now
    notified = {a["labels"]["alertname"] for _, body in receiver.snapshot() for a in body["alerts"]}
    assert "PredictionLogRefusing" in notified and "PredictionLogDropping" not in notified


# ----------------------------------------------------------------------------- the project's own webhook
FACTS = {"zenml_run_id", "zenml_run_name", "pipeline", "step", "stack", "zenml_user", "project"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def bad_training_data(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Iris with 10 impossible petal lengths: the training pipeline's data gate fails the run."""
    from mlops.projects import get_project

    frame = get_project("iris").load(settings)
    frame.loc[:9, "petal_length"] = 99.0
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setenv("MLOPS_DATA_PATH", str(path))
    return path


def _failed_training(monkeypatch: pytest.MonkeyPatch, webhook_url: str) -> Any:
    """Run the real training pipeline on the bad data with the webhook set; its GateFailed."""
    from mlops.errors import GateFailed
    from mlops.runner import run_training
    from mlops.settings import get_settings

    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", webhook_url)
    get_settings.cache_clear()
    with pytest.raises(GateFailed, match="data gate failed") as info:
        run_training(get_settings(), "iris")
    return info.value


def _failures(settings: Any) -> list[Any]:
    from mlops.stores.audit import AuditLog

    history = AuditLog(settings.audit_url).history(model_name=settings.registered_model_name("iris"))
    return [e for e in history if e.action == "pipeline" and e.decision == "failed"]


@pytest.mark.pipeline
def test_a_failed_pipeline_run_posts_its_facts_to_the_alert_webhook(
    settings: Any, bad_training_data: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = _failed_training(monkeypatch, f"{receiver.url}/services/T0/B0/token")
    ((path, body),) = receiver.snapshot()  # one run, one failing step, one alert
    assert path == "/services/T0/B0/token"
    assert set(body) == {"text", *FACTS}
    assert body["pipeline"] == "training_pipeline" and body["step"] == "validate_data"
    assert body["project"] == "iris" and body["stack"] == "default"
    assert body["text"].startswith("training_pipeline failed in step 'validate_data' on stack 'default': ")
    assert "petal_length" in body["text"] and error.reasons[0] in body["text"]
    (failure,) = _failures(settings)  # the audit record and the alert tell the same run
    assert failure.details["zenml_run_id"] == body["zenml_run_id"] and failure.reason == body["text"]


@pytest.mark.pipeline
@pytest.mark.parametrize("broken", ["answers 500", "refuses connections", "malformed URL"])
def test_a_failing_webhook_leaves_the_runs_outcome_and_audit_as_they_are(
    broken: str,
    settings: Any,
    bad_training_data: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = {
        "answers 500": f"{receiver.url}/hook",
        "refuses connections": f"http://127.0.0.1:{free_port()}/hook",
        "malformed URL": "http://[::1/hook",  # httpx.InvalidURL
    }[broken]
    receiver.status = 500
    error = _failed_training(monkeypatch, url)  # the step's own error, not the webhook's
    assert error.reasons == [
        "column 'petal_length' fails less_than_or_equal_to(15.0) in 10 row(s), e.g. 99.0, 99.0, 99.0"
    ]
    assert len(_failures(settings)) == 1  # audited before the alert is attempted
    assert len(receiver.snapshot()) == (1 if broken == "answers 500" else 0)


def test_the_webhook_is_logged_by_host_only_and_never_raises(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A chat webhook's token lives in its path: a failure log names the host, not the URL."""
    from mlops.settings import Settings
    from mlops.steps.hooks import alert

    receiver.status = 503
    facts = {"pipeline": "training_pipeline", "step": "validate_data", "project": "iris"}
    with caplog.at_level(logging.WARNING, logger="mlops.steps.hooks"):
        alert(Settings(alert_webhook_url=f"{receiver.url}/services/T0/B0/s3cr3t-path"), "it failed", facts)
        alert(Settings(alert_webhook_url="http://[::1/s3cr3t-path"), "it failed", facts)
    ((_, body),) = receiver.snapshot()
    assert body == {"text": "it failed", **facts}
    assert "HTTP 503" in caplog.text and receiver.url in caplog.text
    assert "s3cr3t-path" not in caplog.text
    assert len(caplog.records) == 2
