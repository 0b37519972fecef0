"""`mlops demo --smoke` against the service under real uvicorn in a subprocess (hot swap under load,
registry outage, concurrent retrains and more faults live in tests/reliability/)."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.processes import MLOPS, free_port, service_env

pytestmark = pytest.mark.integration


def test_demo_smoke(tmp_path) -> None:
    """`mlops demo --smoke` end to end (a real retrain over HTTP lives in tests/reliability/)."""
    out = subprocess.run(
        [MLOPS, "demo", "--smoke", "--port", str(free_port())],
        env=service_env(tmp_path / "state"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert '"model_version": "1"' in out.stdout and "/metrics" in out.stdout and "/docs" in out.stdout
