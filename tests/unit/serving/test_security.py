"""API keys: admin routes never open by default; 401 without a key, 403 with a wrong one."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import SecretStr
from tests.unit.serving.conftest import ADMIN, EXAMPLE

from mlops.serving.app import create_app


def test_admin_routes_need_the_admin_key(client: TestClient) -> None:
    for method, path in (("POST", "/reload"), ("POST", "/retrain"), ("GET", "/retrain/abc")):
        assert client.request(method, path).status_code == 401
        assert client.request(method, path, headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.post("/feedback", json={"request_id": "x", "true_label": 0}).status_code == 401
    assert client.post("/reload", headers=ADMIN).status_code == 200
    assert client.post("/predict", json=EXAMPLE).status_code == 200  # no predict key configured


def test_admin_routes_refuse_when_no_key_is_configured(settings, registered_iris) -> None:
    """Closed by configuration, not down: a 403 naming the setting, never a 503 (nor open)."""
    with TestClient(create_app(settings)) as c:
        refusals = [
            c.post("/retrain"),
            c.get("/retrain/abc"),
            c.post("/reload", headers={"X-API-Key": "anything"}),
            c.post("/feedback", json={"request_id": "x", "true_label": 0}),
        ]
        for r in refusals:
            assert r.status_code == 403, r.text
            assert "no admin key configured" in r.json()["detail"] and "MLOPS_ADMIN_API_KEY" in r.text
        assert c.post("/predict", json=EXAMPLE).status_code == 200


def test_optional_predict_key(service_settings) -> None:
    s = service_settings.model_copy(update={"predict_api_key": SecretStr("p-key")})
    with TestClient(create_app(s)) as c:
        assert c.post("/predict", json=EXAMPLE).status_code == 401
        assert c.post("/predict", json=EXAMPLE, headers={"X-API-Key": "nope"}).status_code == 403
        assert c.post("/predict", json=EXAMPLE, headers={"X-API-Key": "p-key"}).status_code == 200
        assert c.post("/predict/batch", json={"rows": [EXAMPLE]}).status_code == 401
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200


def test_the_spec_documents_every_error_status(client: TestClient) -> None:
    """Clients (and the schemathesis suite) rely on the spec: key and body errors are documented."""
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (("/reload", "post"), ("/retrain", "post"), ("/retrain/{job_id}", "get")):
        responses = paths[path][method]["responses"]
        assert {"401", "403"} <= set(responses), path
        assert "MLOPS_ADMIN_API_KEY" in responses["403"]["description"]
        # a 503 only where a store can be down (the jobs' control database), never for a missing key
        unavailable = responses.get("503", {}).get("description", "")
        assert ("control database" in unavailable) == path.startswith("/retrain"), (path, unavailable)
    assert {"400", "401", "403", "404", "422", "503"} <= set(paths["/feedback"]["post"]["responses"])
    assert {"400", "413", "422", "503"} <= set(paths["/predict/batch"]["post"]["responses"])
    problem = paths["/reload"]["post"]["responses"]["401"]["content"]["application/json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}


def test_key_rotation_accepts_new_and_old_until_the_old_is_removed(service_settings) -> None:
    """``NEW,OLD`` in the setting: both work while clients move over, anything else is refused."""
    rotating = service_settings.model_copy(update={"admin_api_key": SecretStr("new-key, old-key")})
    with TestClient(create_app(rotating)) as c:
        for key in ("new-key", "old-key"):
            assert c.post("/reload", headers={"X-API-Key": key}).status_code == 200
        assert c.post("/reload", headers={"X-API-Key": "new-key, old-key"}).status_code == 403
        assert c.post("/reload", headers={"X-API-Key": "older-key"}).status_code == 403
    done = service_settings.model_copy(update={"admin_api_key": SecretStr("new-key")})
    with TestClient(create_app(done)) as c:
        assert c.post("/reload", headers={"X-API-Key": "old-key"}).status_code == 403
    assert rotating.api_keys("admin_api_key") == ["new-key", "old-key"]
    assert rotating.redact("tried old-key then new-key") == "tried *** then ***"
