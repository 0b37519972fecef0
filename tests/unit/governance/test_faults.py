"""Fault classes: what may judge a champion absent (proven unservable) and what must refuse (unavailable)."""

from __future__ import annotations

import errno
import pickle

import pytest
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

from mlops.errors import NotFound, Unavailable, error_data, error_from_data
from mlops.governance.faults import classify, describe


def _mlflow_transport_error() -> MlflowException:
    """What MLflow's REST client raises when the tracking server does not answer."""
    try:
        try:
            raise requests.exceptions.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=1): refused")
        except Exception as exc:
            raise MlflowException(f"API request to http://127.0.0.1:1/api failed with exception {exc}")  # noqa: B904
    except MlflowException as wrapped:
        return wrapped


def _not_found_after_outage() -> NotFound:
    """Registry.version turns any MlflowException into NotFound ``from None``: the outage stays in
    the chain (``__context__``)."""
    try:
        try:
            raise _mlflow_transport_error()
        except MlflowException:
            raise NotFound("model 'x' has no version 1") from None
    except NotFound as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        _mlflow_transport_error(),
        MlflowException("boom", error_code=INTERNAL_ERROR),
        MlflowException("unavailable", error_code=TEMPORARILY_UNAVAILABLE),
        requests.exceptions.ReadTimeout("read timed out"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("could not connect to server")),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        OSError(errno.ETIMEDOUT, "timed out"),
        TimeoutError("scoring exceeded 120s"),
        _not_found_after_outage(),
        ValueError("something nobody classified"),  # unknown: fail closed
        RuntimeError("x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_cannot_be_judged_now(exc: BaseException) -> None:
    assert classify(exc) == "unavailable"


@pytest.mark.parametrize(
    "exc",
    [
        MlflowException("no such artifact", error_code=RESOURCE_DOES_NOT_EXIST),
        FileNotFoundError(errno.ENOENT, "No such file", "/x/model.pkl"),
        pickle.UnpicklingError("invalid load key"),
        EOFError("Ran out of input"),
        NotFound("model 'x' has no version 9"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_proven_unservable(exc: BaseException) -> None:
    assert classify(exc) == "unservable"


def test_describe_names_the_root_cause() -> None:
    text = describe(_not_found_after_outage())
    assert text.startswith("NotFound: model 'x' has no version 1") and "ConnectionError" in text


def test_unavailable_travels_as_data_with_its_exit_code() -> None:
    exc = Unavailable("registry down", hint="retry")
    data = error_data(exc)
    assert data["exit_code"] == 75 and data["type"] == "Unavailable"
    back = error_from_data(data, context="step promote_model: ")
    assert isinstance(back, Unavailable) and back.exit_code == 75 and back.retryable
