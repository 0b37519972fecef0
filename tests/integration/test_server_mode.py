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
