"""POST /feedback (mlops.serving.routes.feedback): ground truth -> live accuracy of the version
that answered; a second label replaces the first; bad labels are 422."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tests.support.serving import ADMIN, EXAMPLE, sample
from typer.testing import CliRunner

from mlops.cli import app as cli
from mlops.serving.app import create_app
from mlops.settings import get_settings


def test_feedback_updates_live_accuracy(shared_settings, tmp_path, monkeypatch) -> None:
    # The shared model, but its own prediction log: live accuracy starts empty (no model trained here).
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    own_log = shared_settings.model_copy(update={"prediction_log_url": log_url})
    with TestClient(create_app(own_log)) as c:
        _feedback_round(c)
    # `mlops models` shows it beside the offline metric: 1 of 2 labelled requests right
    monkeypatch.setenv("MLOPS_HOME", str(shared_settings.home))
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_URL", log_url)
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    try:
        table = CliRunner().invoke(cli, ["models", "--project", "iris"])
    finally:
        get_settings.cache_clear()
    assert table.exit_code == 0, table.output
    assert "live accuracy" in table.stdout and "0.50 (n=2)" in table.stdout


def _feedback_round(client: TestClient) -> None:
    feedback = sample("mlops_feedback_total")
    version = {"project": "iris", "version": "1"}
    labels = sample("mlops_feedback_labels_total", **version)
    request_id = client.post("/predict", json=EXAMPLE).json()["request_id"]
    r = client.post("/feedback", json={"request_id": request_id, "true_label": "setosa"}, headers=ADMIN)
    assert r.status_code == 200
    expected = {"request_id": request_id, "model_version": "1", "correct": True, "live_accuracy": 1.0}
    assert r.json() == expected | {"labelled": 1}
    # a second label for the same request REPLACES the first: still one labelled request
    r = client.post("/feedback", json={"request_id": request_id, "true_label": 2}, headers=ADMIN)
    assert r.status_code == 200
    assert r.json() | {"request_id": ""} == {
        "request_id": "",
        "model_version": "1",
        "correct": False,
        "live_accuracy": 0.0,
        "labelled": 1,
    }
    assert sample("mlops_live_accuracy", **version) == 0.0
    assert sample("mlops_live_labelled", **version) == 1
    assert sample("mlops_feedback_total") == feedback + 2  # labels received, replacements included
    # another request, labelled right: 1 of 2 for version 1
    other = client.post("/predict", json=EXAMPLE).json()["request_id"]
    r = client.post("/feedback", json={"request_id": other, "true_label": 0}, headers=ADMIN)
    assert (r.json()["live_accuracy"], r.json()["labelled"]) == (0.5, 2)
    assert sample("mlops_live_accuracy", **version) == 0.5 and sample("mlops_live_labelled", **version) == 2
    assert sample("mlops_feedback_labels_total", **version) == labels + 3


def test_feedback_errors(client: TestClient) -> None:
    request_id = client.post("/predict", json=EXAMPLE).json()["request_id"]
    unknown = client.post("/feedback", json={"request_id": "nope", "true_label": 0}, headers=ADMIN)
    assert unknown.status_code == 404
    for label in (7, -1, "daisy", "", "0", True, None):
        r = client.post("/feedback", json={"request_id": request_id, "true_label": label}, headers=ADMIN)
        assert r.status_code == 422, (label, r.text)
        error = r.json()["detail"][0]
        assert (error["loc"], error["input"]) == (["body", "true_label"], label)  # the shape of every 422
        assert error["msg"]
    r = client.post("/feedback", json={"request_id": request_id}, headers=ADMIN)
    assert r.status_code == 422 and "true_label" in r.text


def test_the_published_schema_lists_the_labels_the_service_accepts(client: TestClient) -> None:
    """The contract and the server agree: the enum holds every class id and name, and the issue's
    example (an empty label) is refused by the schema, before any lookup."""
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert schema["properties"]["true_label"]["enum"] == [0, 1, 2, "setosa", "versicolor", "virginica"]
    assert schema["additionalProperties"] is False and set(schema["required"]) == {"request_id", "true_label"}
    r = client.post("/feedback", json={"request_id": "0", "true_label": ""}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "literal_error"
    request_id = client.post("/predict", json=EXAMPLE).json()["request_id"]
    for label in schema["properties"]["true_label"]["enum"]:  # every listed label is accepted
        r = client.post("/feedback", json={"request_id": request_id, "true_label": label}, headers=ADMIN)
        assert r.status_code == 200, (label, r.text)
