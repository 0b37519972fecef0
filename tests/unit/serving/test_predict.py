"""POST /predict and /predict/batch: the template's contract, and every class of bad input."""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from tests.unit.serving.conftest import EXAMPLE, sample

from mlops.serving.app import create_app


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


def test_one_route_answers_every_json_body_alike_and_counts_it(client: TestClient) -> None:
    """POST /predict is one FastAPI route over the raw request: however the JSON body arrives, the
    same answer, and the request counted under the route's path."""
    ok = {"route": "/predict", "method": "POST", "status": "200"}
    before = sample("mlops_http_requests_total", **ok)
    timed = sample("mlops_http_request_duration_seconds_count", route="/predict", method="POST")
    predicted = sample("mlops_predictions_total", model_version="1", label="setosa")
    first = client.post("/predict", json=EXAMPLE)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert sample("mlops_http_requests_total", **ok) == before + 1
    assert sample("mlops_http_request_duration_seconds_count", route="/predict", method="POST") == timed + 1
    assert sample("mlops_predictions_total", model_version="1", label="setosa") == predicted + 1

    def chunks():  # a body in several ASGI messages
        yield b'{"sepal_length": 5.1, "sepal_width": 3.5,'
        yield b' "petal_length": 1.4, "petal_width": 0.2}'

    raw = json.dumps(EXAMPLE)
    answers = [
        client.post("/predict", content=chunks(), headers={"content-type": "application/json"}),
        client.post("/predict", content=raw),  # no content type: read as JSON, as always
        client.post("/predict", content=raw, headers={"content-type": "application/json; charset=utf-8"}),
        client.post("/predict", content=raw, headers={"content-type": "application/vnd.api+json"}),
    ]
    for r in answers:
        assert r.status_code == 200 and {**r.json(), "request_id": ""} == {**first.json(), "request_id": ""}
        assert r.headers["x-request-id"] == r.json()["request_id"] != first.json()["request_id"]
    assert client.post("/predict/batch", content=json.dumps({"rows": [EXAMPLE]})).status_code == 200


def test_body_errors_are_those_of_a_fastapi_body_parameter(client: TestClient) -> None:
    """The route reads its body itself; what a client gets for a bad one has not changed."""
    json_type = {"content-type": "application/json"}
    r = client.post("/predict", content=b'{"sepal_length": 5.1,', headers=json_type)
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "type": "json_invalid",
            "loc": ["body", 21],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "Expecting property name enclosed in double quotes"},
        }
    ]
    r = client.post("/predict", content='{"sepal_length": "\u00e9"}'.encode("latin-1"), headers=json_type)
    assert r.status_code == 400 and r.json() == {"detail": "There was an error parsing the body"}
    r = client.post("/predict", content=b"", headers=json_type)
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
    ]
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        r = client.post("/predict", content=json.dumps(EXAMPLE), headers={"content-type": content_type})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"], content_type
    r = client.post("/predict", content=b"[" * 100_000, headers=json_type)  # too deep for any parser
    assert r.status_code in {400, 422} and r.json()["detail"]
    assert client.get("/predict").status_code == 405


def test_the_key_is_checked_once_in_fastapis_order(shared_settings) -> None:
    """With a predict key: malformed JSON is refused before the key is looked at (as a FastAPI body
    parameter is read before dependencies run), every other request needs the key first."""
    keyed = shared_settings.model_copy(update={"predict_api_key": SecretStr("p-key")})
    key = {"X-API-Key": "p-key"}
    with TestClient(create_app(keyed)) as c:
        malformed = c.post("/predict", content=b"{", headers={"content-type": "application/json"})
        assert malformed.status_code == 422 and malformed.json()["detail"][0]["type"] == "json_invalid"
        r = c.post("/predict", json={**EXAMPLE, "sepal_length": "x"})
        assert r.status_code == 401 and r.json() == {"detail": "missing X-API-Key (predict)"}
        r = c.post("/predict", json=EXAMPLE, headers={"X-API-Key": "p-key2"})
        assert r.status_code == 403 and r.json() == {"detail": "wrong API key (predict)"}
        assert c.post("/predict", json={**EXAMPLE, "sepal_length": "x"}, headers=key).status_code == 422
        assert c.post("/predict", json=EXAMPLE, headers=key).status_code == 200
        assert c.post("/predict/batch", json={"rows": [EXAMPLE]}).status_code == 401
        assert c.post("/predict/batch", json={"rows": [EXAMPLE]}, headers=key).status_code == 200
        spec = c.get("/openapi.json").json()
    for path in ("/predict", "/predict/batch"):
        operation = spec["paths"][path]["post"]
        assert operation["security"] == [{"APIKeyHeader": []}]
        assert {"200", "400", "401", "403", "422", "503"} <= set(operation["responses"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "description": "API key",
        "in": "header",
        "name": "X-API-Key",
    }


def test_the_spec_documents_the_body_the_answer_and_every_error(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, body, answer in (
        ("/predict", "IrisFeatures", "Prediction"),
        ("/predict/batch", "IrisBatch", "BatchPrediction"),
    ):
        operation = spec["paths"][path]["post"]
        assert operation["requestBody"] == {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
            "required": True,
        }
        responses = operation["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(f"/{answer}")
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/HTTPValidationError"
        )
        assert {"400", "503"} <= set(responses) and "security" not in operation  # no predict key here
        assert body in schemas and answer in schemas
    assert set(schemas["IrisFeatures"]["required"]) == set(EXAMPLE)
    assert schemas["IrisBatch"]["properties"]["rows"]["items"] == {
        "$ref": "#/components/schemas/IrisFeatures"
    }
