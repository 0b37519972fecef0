"""Bad input over HTTP: schemathesis generates valid and invalid requests for every operation of the
service's OpenAPI spec, with the right key and without one, and judges every response by every check
schemathesis has (``CHECKS.get_all()``: server errors, status codes, content types, headers, the
response schema, negative data rejected, positive data accepted, missing required headers, methods,
auth) plus ours. No request may get a 5xx, a status, header or body the spec does not document, a
valid request refused or an invalid one accepted, or a 4xx that does not say what is wrong. The
service runs once with its keys (admin and predict) and once with none configured (admin routes
closed: 403, predictions open).

The bulk runs in-process (schemathesis' ASGI loader, the app's real lifespan, model and prediction
log); a shorter run goes through a real ``mlops serve`` process (uvicorn's own HTTP parsing).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTERED
from schemathesis.checks import load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import shutdown_lifespans

from mlops.serving.app import create_app
from mlops.serving.jobs import RetrainJobs
from tests.integration.processes import ADMIN_KEY, start_service

PREDICT_KEY = "fuzz-predict-key"
MIN_CASES = 1000


def names_the_problem(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx carries a non-empty ``detail``; a 422 names the path of each offending field."""
    if not 400 <= response.status_code < 500:
        return
    detail = response.json().get("detail")
    assert detail, f"{response.status_code} without a detail: {response.text[:300]}"
    if response.status_code == 422:
        assert isinstance(detail, list), detail
        for error in detail:
            assert error.get("loc") and error.get("msg"), f"422 error without a field path: {error}"


load_all_checks()  # the OpenAPI checks register themselves on import
CHECKS = [*REGISTERED.get_all(), names_the_problem]


@dataclass
class Fuzz:
    """Runs generated cases and keeps count: a failure is recorded, never allowed to stop the run."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)  # one example per (operation, problem)

    def run(self, operation: Any, mode: GenerationMode, key: str | None, examples: int) -> None:
        headers = {"X-API-Key": key} if key else None

        @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def one(case: Any) -> None:
            self.cases[operation.label] += 1
            response = case.call()
            self.statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, FailureGroup) as exc:
                problem = str(exc).strip().splitlines()[0][:120]
                self.failures.setdefault(
                    f"{operation.label} [{mode.value}] {problem}",
                    f"{case.as_curl_command()}\n-> {response.status_code} {response.text[:500]}\n{exc}",
                )

        try:
            one()
        except Unsatisfiable:  # nothing in this operation's inputs can be made invalid
            assert mode is GenerationMode.NEGATIVE

    def report(self) -> str:
        return "\n\n".join(f"{k}\n{v}" for k, v in self.failures.items())


def _has_inputs(operation: Any) -> bool:
    """Negative data needs something to break: a parameter or a body."""
    return bool(list(operation.iter_parameters()) or operation.body)


def operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def fuzz_all(schema: Any, fuzz: Fuzz, *, scale: float, train: bool = True, keys: bool = True) -> None:
    """Every operation with its key (``keys=False``: a service with none configured, called without
    any; ``train=False``: POST /retrain without one, so that no real training pipeline starts),
    negative data where there is an input, and some calls with a key schemathesis generates from the
    security scheme (a wrong one) or none."""
    for operation in operations(schema):
        key: str | None = PREDICT_KEY if operation.path.startswith("/predict") else ADMIN_KEY
        if not keys or (not train and operation.label == "POST /retrain"):
            key = None
        many = int(150 * scale) if _has_inputs(operation) else 5
        fuzz.run(operation, GenerationMode.POSITIVE, key, many)
        if _has_inputs(operation):
            fuzz.run(operation, GenerationMode.NEGATIVE, key, many)
        fuzz.run(operation, GenerationMode.POSITIVE, None, max(5, many // 10))


def _sleeping_job(project: str, result: object) -> list[str]:
    """A stand-in for the training pipeline: /retrain is exercised without training for minutes."""
    return [sys.executable, "-c", "import time; time.sleep(600)"]


def test_every_schemathesis_check_is_applied() -> None:
    """The claim above, kept true across schemathesis upgrades: all of its checks, not a selection."""
    names = {check.__name__ for check in CHECKS}
    assert names >= {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "missing_required_header",
        "unsupported_method",
        "ignored_auth",
        "use_after_free",
        "ensure_resource_availability",
    }
    assert len(CHECKS) == len(REGISTERED.get_all()) + 1


@pytest.fixture(params=["keys", "no-keys"])
def fuzz_settings(request, settings, registered_iris):
    """The service with its admin and predict keys, or with none configured (admin routes closed)."""
    keys = {"admin_api_key": SecretStr(ADMIN_KEY), "predict_api_key": SecretStr(PREDICT_KEY)}
    return settings.model_copy(
        update={
            **(keys if request.param == "keys" else {"admin_api_key": None, "predict_api_key": None}),
            # the batch limit stays the default (1000): past it /predict/batch answers 413, which
            # schemathesis's positive-data check would count against a schema without maxItems
            "poll_interval_s": 3600.0,
        }
    )


@pytest.fixture
def asgi_schema(fuzz_settings) -> Iterator[Any]:
    jobs = RetrainJobs(
        fuzz_settings.project, command=_sleeping_job, settings=fuzz_settings, stop_runners=True
    )
    app = create_app(fuzz_settings, jobs=jobs)
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        shutdown_lifespans()  # the loader started the app's lifespan: stop it (kills the stand-in job)


def test_generated_requests_in_process(asgi_schema, fuzz_settings, figures: Callable[..., None]) -> None:
    fuzz = Fuzz()
    started = time.monotonic()
    keys = fuzz_settings.admin_api_key is not None
    fuzz_all(asgi_schema, fuzz, scale=1.0, keys=keys)
    total = sum(fuzz.cases.values())
    figures(
        keys=keys,
        cases=total,
        operations=len(fuzz.cases),
        failures=len(fuzz.failures),
        statuses=dict(sorted(fuzz.statuses.items())),
        seconds=round(time.monotonic() - started, 1),
    )
    assert not fuzz.failures, fuzz.report()
    assert total >= MIN_CASES, fuzz.cases
    assert len(fuzz.cases) == len(operations(asgi_schema)), "every operation was exercised"
    if not keys:  # closed by configuration: refused with a 4xx, never opened, never a 503
        assert 503 not in fuzz.statuses and 403 in fuzz.statuses, fuzz.statuses


def test_stateful_workflows_in_process(asgi_schema, fuzz_settings, figures: Callable[..., None]) -> None:
    """Sequences of calls along the links schemathesis infers (``POST /retrain`` -> 202 with a
    ``Location`` -> ``GET /retrain/{job_id}``), so that the stateful checks (a created resource is
    available, nothing is used after it is gone) run beside every other check."""
    keys = fuzz_settings.admin_api_key is not None
    steps: Counter[str] = Counter()

    class Workflow(asgi_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            if not keys:
                return {}
            return {"headers": {"X-API-Key": PREDICT_KEY if case.path.startswith("/predict") else ADMIN_KEY}}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            steps[f"{case.method} {case.path} -> {response.status_code}"] += 1
            case.validate_response(
                response, checks=CHECKS, transport_kwargs=kwargs or None, recorder=self.recorder
            )

    Workflow.run(
        settings=settings(
            max_examples=40,
            stateful_step_count=5,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    figures(keys=keys, steps=sum(steps.values()), transitions=dict(sorted(steps.items())))
    if keys:  # the link was followed: a job created, then read back
        assert any(step.startswith("GET /retrain/{job_id} -> 200") for step in steps), steps
    else:  # nothing to follow: closed by configuration, never a 503
        assert {step.rsplit(" -> ", 1)[1] for step in steps} == {"403"}, steps


@pytest.mark.parametrize("keys", [True, False], ids=["keys", "no-keys"])
def test_generated_requests_against_mlops_serve(
    registered_iris, settings, tmp_path: Path, figures: Callable[..., None], keys: bool
) -> None:
    env = {"MLOPS_PREDICT_API_KEY": PREDICT_KEY} if keys else {"MLOPS_ADMIN_API_KEY": ""}
    proc, base = start_service(settings.state_dir, tmp_path, **env)
    try:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        fuzz = Fuzz()
        fuzz_all(schema, fuzz, scale=0.2, train=False, keys=keys)
    finally:
        proc.stop()
    total = sum(fuzz.cases.values())
    figures(keys=keys, cases=total, operations=len(fuzz.cases), failures=len(fuzz.failures))
    assert not fuzz.failures, fuzz.report()
    assert len(fuzz.cases) == len(operations(schema))
    assert "Traceback" not in proc.log.read_text(), proc.tail()
    if not keys:
        assert 503 not in fuzz.statuses and 403 in fuzz.statuses, fuzz.statuses
