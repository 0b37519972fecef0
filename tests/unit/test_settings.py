"""Settings can be shown and their errors reported without revealing a secret."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from mlops.settings import Settings, mask_url

LOG_URL = "postgresql://mlops:s3cr%40t-pw@db.internal:5432/predictions"


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url(LOG_URL) == "postgresql://mlops:***@db.internal:5432/predictions"
    assert mask_url("http://token-only@mlflow:5000") == "http://token-only@mlflow:5000"  # no password
    for plain in ("", "sqlite:////tmp/x.db", "http://mlflow:5000/path?x=1"):
        assert mask_url(plain) == plain


def test_repr_masks_keys_and_url_passwords() -> None:
    s = Settings(
        prediction_log_url=LOG_URL, admin_api_key=SecretStr("adm-key"), tracking_uri="http://u:tpw@m"
    )
    for shown in (repr(s), str(s)):
        assert "s3cr" not in shown and "adm-key" not in shown and "tpw" not in shown
        assert "postgresql://mlops:***@db.internal:5432/predictions" in shown
    assert s.prediction_log_db_url == LOG_URL  # the service still connects with the real one


def test_redact_masks_every_secret_in_a_message() -> None:
    s = Settings(
        prediction_log_url=LOG_URL, predict_api_key=SecretStr("p-key"), tracking_uri="http://u:tpw@m"
    )
    message = "API request to http://u:tpw@m failed; password s3cr@t-pw (s3cr%40t-pw); key p-key"
    assert s.redact(message) == "API request to http://u:***@m failed; password *** (***); key ***"
    assert Settings().redact("nothing to hide") == "nothing to hide"


def test_outside_development_every_key_of_a_rotation_must_be_real() -> None:
    Settings(environment="production", admin_api_key=SecretStr("k-7f3a,k-91bc"))
    for value in ("k-7f3a,changeme", "", " , "):
        with pytest.raises(ValueError, match="MLOPS_ADMIN_API_KEY is a placeholder"):
            Settings(environment="production", admin_api_key=SecretStr(value))


def test_step_parameters_carry_no_secret_and_steps_read_secrets_from_their_environment(
    tmp_path, monkeypatch
) -> None:
    """ZenML stores step parameters in its database and shows them in the dashboard."""
    s = Settings(
        home=tmp_path / "state",
        seed=7,
        tracking_uri="http://mlflow:5000",
        audit_db_url="postgresql://mlops:audit-pw@db/audit",
        prediction_log_url=LOG_URL,
        alert_webhook_url="https://hooks.example/T0/B0/tok3n",
        admin_api_key=SecretStr("adm-key"),
        predict_api_key=SecretStr("p-key"),
    )
    params = s.step_parameters()
    shown = json.dumps(params)  # plain JSON values, as ZenML stores them
    for secret in ("audit-pw", "s3cr", "tok3n", "adm-key", "p-key"):
        assert secret not in shown
    assert {"audit_db_url", "prediction_log_url", "alert_webhook_url", "admin_api_key"}.isdisjoint(params)
    assert params["tracking_uri"] == "http://mlflow:5000" and params["seed"] == 7
    assert params["home"] == str(tmp_path / "state")  # absolute: the step may run elsewhere

    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", "postgresql://mlops:audit-pw@db/audit")
    monkeypatch.setenv("MLOPS_ADMIN_API_KEY", "adm-key")
    monkeypatch.setenv("MLOPS_SEED", "99")  # a parameter wins over the step's environment
    inside = Settings.from_step_parameters(params)
    assert inside.audit_url == "postgresql://mlops:audit-pw@db/audit"
    assert inside.api_keys("admin_api_key") == ["adm-key"]
    assert inside.seed == 7 and inside.state_dir == s.state_dir
    assert inside.prediction_log_url == ""  # not in the parameters nor in this environment
