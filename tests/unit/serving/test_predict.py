"""POST /predict and /predict/batch: the template's contract, and every class of bad input."""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import EXAMPLE, sample


def test_predict_answers_the_template_contract(client: TestClient) -> None:
    r = client.post("/predict", json=EXAMPLE)
    assert r.status_code == 200
    body = r.json()
    assert body["prediction"] == 0 and body["label"] == "setosa" and body["model_version"] == "1"
    assert set(body["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-5)
    assert r.headers["x-request-id"] == body["request_id"]


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    for response in (client.get("/health"), client.post("/predict", json={}), client.get("/nope")):
        assert len(response.headers["x-request-id"]) == 32


def test_batch_predict(client: TestClient) -> None:
    rows = [EXAMPLE, {**EXAMPLE, "petal_length": 5.5, "petal_width": 2.1}]
    r = client.post("/predict/batch", json={"rows": rows})
    assert r.status_code == 200
    body = r.json()
    assert [p["label"] for p in body["predictions"]] == ["setosa", "virginica"]
    assert len({p["request_id"] for p in body["predictions"]}) == 2 and body["model_version"] == "1"


BAD_INPUTS = [
    ("missing field", {k: v for k, v in EXAMPLE.items() if k != "petal_width"}, "petal_width"),
    ("extra field", {**EXAMPLE, "colour": 1.0}, "colour"),
    ("string", {**EXAMPLE, "sepal_length": "5.1"}, "sepal_length"),
    ("boolean", {**EXAMPLE, "sepal_width": True}, "sepal_width"),
    ("null", {**EXAMPLE, "sepal_width": None}, "sepal_width"),
    ("list", {**EXAMPLE, "sepal_width": [1.0]}, "sepal_width"),
    ("above range", {**EXAMPLE, "petal_length": 99.0}, "petal_length"),
    ("below range", {**EXAMPLE, "petal_length": -1.0}, "petal_length"),
    ("huge number", {**EXAMPLE, "petal_width": 1e308}, "petal_width"),
    ("not an object", [1, 2, 3], "body"),
    ("empty object", {}, "sepal_length"),
]


@pytest.mark.parametrize(("case", "payload", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_422_naming_the_field(client: TestClient, case: str, payload, field: str) -> None:
    r = client.post("/predict", json=payload)
    assert r.status_code == 422, case
    assert field in json.dumps(r.json()["detail"])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_422(client: TestClient, literal: str) -> None:
    raw = json.dumps(EXAMPLE).replace("5.1", literal)
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "sepal_length"]


@pytest.mark.parametrize(
    "raw", [b'{"sepal_length": 5.1,', b"", b"not json", b'{"sepal_length": 5.1}}', b"\xff\xfe"]
)
def test_malformed_json_is_422(client: TestClient, raw: bytes) -> None:
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text


def test_batch_limits(client: TestClient) -> None:
    r = client.post("/predict/batch", json={"rows": []})
    assert r.status_code == 422 and "rows" in json.dumps(r.json()["detail"])
    r = client.post("/predict/batch", json={"rows": [EXAMPLE] * 51})  # max_batch_rows=50
    assert r.status_code == 413 and "rows" in r.text
    assert client.post("/predict/batch", json={"rows": [EXAMPLE] * 50}).status_code == 200
    r = client.post("/predict/batch", json={"rows": [EXAMPLE, {**EXAMPLE, "petal_width": "x"}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "rows", 1, "petal_width"]
    assert client.post("/predict/batch", json=[EXAMPLE]).status_code == 422
    assert client.post("/predict/batch", json={"rows": [EXAMPLE], "extra": 1}).status_code == 422


def test_the_lean_path_keeps_metrics_and_hands_other_cases_to_the_route(client: TestClient) -> None:
    """POST /predict is answered before FastAPI (LeanPredict): same metrics, same answers."""
    ok = {"route": "/predict", "method": "POST", "status": "200"}
    before = sample("mlops_http_requests_total", **ok)
    lean = client.post("/predict", json=EXAMPLE).json()
    assert sample("mlops_http_requests_total", **ok) == before + 1

    def chunks():  # a body in several ASGI messages
        yield b'{"sepal_length": 5.1, "sepal_width": 3.5,'
        yield b' "petal_length": 1.4, "petal_width": 0.2}'

    chunked = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    # no content type: parsed as JSON, as FastAPI does; another one: the route answers (422)
    untyped = client.post("/predict", content=json.dumps(EXAMPLE))
    for r in (chunked, untyped):
        assert r.status_code == 200 and {**r.json(), "request_id": ""} == {**lean, "request_id": ""}
    r = client.post("/predict", content=json.dumps(EXAMPLE), headers={"content-type": "text/plain"})
    assert r.status_code == 422
