"""Server mode end to end: ZenML server on MariaDB, MLflow server on Postgres with S3 artifacts,
the training pipeline run through them, promotion, prediction and lineage from the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ServerStack

pytestmark = pytest.mark.integration
MLOPS = str(Path(sys.executable).parent / "mlops")
ROOT = Path(__file__).resolve().parents[2]


def mlops(
    stack: ServerStack, *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [MLOPS, *args], env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if check and out.returncode != 0:
        raise AssertionError(
            f"mlops {' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
        )
    return out


@pytest.fixture(scope="module")
def trained(server_stack: ServerStack) -> dict:
    stack_file = server_stack.root / "stacks" / "it.yaml"
    stack_file.parent.mkdir()
    stack_file.write_text(
        """
name: mlops-it
secrets:
  - name: mlops-it-s3
    values: {aws_access_key_id: AWS_ACCESS_KEY_ID, aws_secret_access_key: AWS_SECRET_ACCESS_KEY}
components:
  orchestrator:
    name: mlops-it-local
    flavor: local
  artifact_store:
    name: mlops-it-s3
    flavor: s3
    configuration:
      path: s3://${MLOPS_ARTIFACT_BUCKET}/zenml
      key: "{{mlops-it-s3.aws_access_key_id}}"
      secret: "{{mlops-it-s3.aws_secret_access_key}}"
      client_kwargs: {endpoint_url: "${MLOPS_S3_ENDPOINT_URL}", region_name: us-east-1}
"""
    )
    applied = json.loads(
        mlops(
            server_stack,
            "stack",
            "apply",
            "it",
            "--config-dir",
            str(stack_file.parent),
            "--activate",
            "--json",
        ).stdout
    )
    assert applied["status"] == "created"
    again = json.loads(
        mlops(server_stack, "stack", "apply", "it", "--config-dir", str(stack_file.parent), "--json").stdout
    )
    assert again["status"] == "unchanged" and set(again["components"].values()) == {"unchanged"}
    return json.loads(mlops(server_stack, "train", "--json").stdout)


def test_pipeline_runs_through_the_servers(server_stack: ServerStack, trained: dict) -> None:
    assert trained["status"] == "completed"
    assert trained["promotion"]["outcome"] == "promoted" and trained["model"]["version"] == "1"
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=server_stack.urls["s3"],
        aws_access_key_id=server_stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=server_stack.env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=server_stack.env["MLOPS_ARTIFACT_BUCKET"])["Contents"]
    ]
    assert any(k.startswith("zenml/") for k in keys), "ZenML artifacts are in S3"
    assert any(k.startswith("mlflow/") and k.endswith("model.onnx") for k in keys), (
        "MLflow artifacts are in S3"
    )


def test_status_predict_and_lineage_against_the_servers(server_stack: ServerStack, trained: dict) -> None:
    status = json.loads(mlops(server_stack, "status", "--json").stdout)
    assert status["tracking_uri"] == server_stack.urls["mlflow"] and status["aliases"] == {"production": "1"}
    prediction = json.loads(
        mlops(
            server_stack,
            "predict",
            '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
            "--json",
        ).stdout
    )
    assert prediction["prediction"] == 0 and prediction["model_version"] == "1"
    chain = json.loads(mlops(server_stack, "lineage", "1", "--json").stdout)
    assert chain["mlflow_run"]["resolved"] and chain["zenml_run"]["resolved"]
    assert chain["zenml_run"]["stack"] == "mlops-it" and chain["dataset"]["uri"].startswith("s3://")
    audit = json.loads(mlops(server_stack, "audit", "--json").stdout)
    assert [e["decision"] for e in audit if e["action"] == "promote"] == ["promoted"]
    assert [e["decision"] for e in audit if e["action"] == "pipeline"] == ["succeeded"]


# ----- the service on the stack, scraped by a real Prometheus with the project's rules -----
EXAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def observed(server_stack: ServerStack, trained: dict):
    """The inference service (prediction log on Postgres) and Prometheus scraping it every second."""
    import secrets
    import shutil

    import httpx

    from tests.integration.processes import Proc, free_port
    from tests.static.promql import write_prometheus_config

    if shutil.which("prometheus") is None:
        if server_stack.env.get("CI") == "true":
            pytest.fail("prometheus is not installed (.ci/run installs Debian's package)")
        pytest.skip("prometheus is not installed")
    admin_key = secrets.token_urlsafe(16)
    port, prom_port = free_port(), free_port()
    env = {
        **server_stack.env,
        "MLOPS_ADMIN_API_KEY": admin_key,
        "MLOPS_POLL_INTERVAL_S": "1",
        # a small, slowly flushed queue so that a burst overflows it: the drop alert must fire
        "MLOPS_PREDICTION_LOG_QUEUE_SIZE": "20",
        "MLOPS_PREDICTION_LOG_FLUSH_S": "1.5",
    }
    root = server_stack.root
    service = Proc("service", [MLOPS, "serve", "--port", str(port)], env, root, cwd=ROOT)
    procs = [service]
    try:
        service.wait_http(f"http://127.0.0.1:{port}/ready", timeout=90)
        config = write_prometheus_config(root / "prometheus", f"127.0.0.1:{port}", scrape_interval="1s")
        prometheus = Proc(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            dict(server_stack.env),
            root,
        )
        procs.append(prometheus)
        prometheus.wait_http(f"http://127.0.0.1:{prom_port}/-/ready", timeout=60)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "prometheus": f"http://127.0.0.1:{prom_port}",
            "admin": {"X-API-Key": admin_key},
            "env": env,
            "http": httpx.Client(timeout=30),
        }
    finally:
        for proc in reversed(procs):
            proc.stop()


def wait_until(check, timeout: float, interval: float = 0.5):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_prediction_is_logged_to_postgres_and_traceable(server_stack: ServerStack, observed: dict) -> None:
    from mlops.stores.predictions import get_prediction

    http = observed["http"]
    body = http.post(f"{observed['url']}/predict", json=EXAMPLE).json()
    assert body["prediction"] == 0 and body["model_version"] == "1"
    db = server_stack.env["MLOPS_PREDICTION_LOG_URL"]
    row = wait_until(lambda: get_prediction(db, body["request_id"]), timeout=30)
    assert row and row["inputs"] == EXAMPLE and row["model_version"] == "1"
    chain = json.loads(mlops(server_stack, "lineage", body["request_id"], "--json").stdout)
    assert chain["prediction"]["request_id"] == body["request_id"]
    for link in ("mlflow_run", "zenml_run", "dataset", "holdout"):
        assert chain[link]["resolved"], link
    assert chain["model_version"]["version"] == "1" and chain["code"]["git_commit"]


def test_every_dashboard_panel_has_data_and_an_alert_fires(
    server_stack: ServerStack, observed: dict, tmp_path
) -> None:
    from mlops.projects import get_project
    from tests.static.promql import panel_queries

    http, url, admin = observed["http"], observed["url"], observed["admin"]
    # traffic: predictions, a rejected request, ground truth, a burst that overflows the log queue
    ids = [http.post(f"{url}/predict", json=EXAMPLE).json()["request_id"] for _ in range(5)]
    assert http.post(f"{url}/predict", json={**EXAMPLE, "petal_width": "wide"}).status_code == 422
    for request_id in ids:
        assert http.post(
            f"{url}/feedback", json={"request_id": request_id, "true_label": 0}, headers=admin
        ).is_success
    rows = [EXAMPLE] * 40
    for _ in range(3):
        assert http.post(f"{url}/predict/batch", json={"rows": rows}).is_success
    # drift: a shifted batch file checked by the monitoring pipeline, exported by the service's poll
    frame = get_project("iris").load(server_stack_settings(server_stack)).drop(columns=["species"])
    shifted = frame.assign(petal_length=frame["petal_length"] + 3.0, sepal_width=frame["sepal_width"] * 1.8)
    source = tmp_path / "shifted.csv"
    shifted.clip(upper=14.9).to_csv(source, index=False)
    drift = json.loads(
        mlops(server_stack, "drift", "--input", str(source), "--window", "150", "--json").stdout
    )
    assert drift["detected"]
    # a retrain job through the servers (the real pipeline, as a subprocess of the service)
    job = http.post(f"{url}/retrain", headers=admin).json()

    def finished() -> dict | None:
        state = http.get(f"{url}/retrain/{job['job_id']}", headers=admin).json()
        return state if state["state"] != "running" else None

    final = wait_until(finished, timeout=400, interval=2)
    assert final and final["state"] == "succeeded", final
    assert final["model_version"] == "2" and final["promotion"]["outcome"] == "kept"

    prom = observed["prometheus"]

    def query(expr: str) -> list:
        r = http.get(f"{prom}/api/v1/query", params={"query": expr}).json()
        assert r["status"] == "success", (expr, r)
        return r["data"]["result"]

    def without_data() -> list[str]:
        return [q for q in panel_queries() if not query(q)]

    wait_until(lambda: not without_data(), timeout=90, interval=2)
    empty = without_data()
    assert empty == [], f"panels without data: {empty}"

    def firing() -> list[str]:
        alerts = http.get(f"{prom}/api/v1/alerts").json()["data"]["alerts"]
        return [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]

    fired = wait_until(lambda: "PredictionLogDropping" in firing() and firing(), timeout=60)
    assert fired and "PredictionLogDropping" in fired, firing()


def server_stack_settings(stack: ServerStack):
    from mlops.settings import Settings

    return Settings(home=Path(stack.env["MLOPS_HOME"]))
