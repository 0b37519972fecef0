"""The server-mode stack as real processes on loopback (no Docker).

MariaDB (ZenML server store) and PostgreSQL (MLflow, prediction log, audit log) are the machine's
running servers; each session gets its own databases and drops them at the end. moto's S3 server
stands in for MinIO. Everything started here is stopped by process group, even on failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.processes import Proc, free_port

BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432"


@dataclass
class ServerStack:
    root: Path
    env: dict[str, str]  # what a client process (mlops CLI, service) needs
    urls: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    pg_databases: dict[str, str] = field(default_factory=dict)


MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"
POSTGRES_ADMIN = f"{PG}/postgres"


def _admin_sql(url: str, statements: list[str]) -> None:
    """DDL as the machine's admin user (CREATE/DROP DATABASE needs autocommit)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def server_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerStack]:
    root = tmp_path_factory.mktemp("server-stack")
    suffix = secrets.token_hex(4)
    db_password = secrets.token_urlsafe(16)
    admin_password = secrets.token_urlsafe(16)
    s3_key, s3_secret = "it-" + secrets.token_hex(6), secrets.token_urlsafe(24)
    bucket = f"mlops-it-{suffix}"
    zenml_db = f"zenml_it_{suffix}"
    pg_dbs = {
        "mlflow": f"mlflow_it_{suffix}",
        "predictions": f"predlog_it_{suffix}",
        "audit": f"audit_it_{suffix}",
    }
    ports = {name: free_port() for name in ("s3", "zenml", "mlflow")}
    stack = ServerStack(root=root, env={}, urls={}, pg_databases=pg_dbs)
    base_env = {
        **os.environ,
        "ZENML_ANALYTICS_OPT_IN": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    s3_env = {
        "AWS_ACCESS_KEY_ID": s3_key,
        "AWS_SECRET_ACCESS_KEY": s3_secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3_url = f"http://127.0.0.1:{ports['s3']}"
    try:
        _admin_sql(
            MARIADB_ADMIN,
            [
                f"CREATE DATABASE {zenml_db}",
                f"CREATE USER 'zenml_{suffix}'@'127.0.0.1' IDENTIFIED BY '{db_password}'",
                f"GRANT ALL ON {zenml_db}.* TO 'zenml_{suffix}'@'127.0.0.1'",
            ],
        )
        _admin_sql(POSTGRES_ADMIN, [f"CREATE DATABASE {name}" for name in pg_dbs.values()])

        stack.procs["s3"] = Proc(
            "s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(ports["s3"])], {**base_env}, root
        )
        stack.procs["s3"].wait_http(f"{s3_url}/moto-api/", timeout=60)
        import boto3

        boto3.client("s3", endpoint_url=s3_url, **_boto(s3_env)).create_bucket(Bucket=bucket)

        zenml_env = {
            **base_env,
            "ZENML_SERVER": "true",
            "ZENML_STORE_URL": f"mysql://zenml_{suffix}:{db_password}@127.0.0.1:3306/{zenml_db}",
            "ZENML_SERVER_JWT_SECRET_KEY": secrets.token_hex(32),
            "ZENML_SERVER_AUTH_SCHEME": "OAUTH2_PASSWORD_BEARER",
            "ZENML_SERVER_DEPLOYMENT_TYPE": "other",
            "ZENML_SERVER_AUTO_ACTIVATE": "true",
            "ZENML_DEFAULT_USER_NAME": "admin",
            "ZENML_DEFAULT_USER_PASSWORD": admin_password,
            "ZENML_CONFIG_PATH": str(root / "zenml-server"),
        }
        stack.procs["zenml"] = Proc(
            "zenml",
            [
                str(BIN / "uvicorn"),
                "zenml.zen_server.zen_server_api:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["zenml"]),
                "--workers",
                "1",
            ],
            zenml_env,
            root,
        )
        mlflow_env = {
            **base_env,
            **s3_env,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        stack.procs["mlflow"] = Proc(
            "mlflow",
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"{PG}/{pg_dbs['mlflow']}",
                "--artifacts-destination",
                f"s3://{bucket}/mlflow",
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["mlflow"]),
                "--workers",
                "1",
            ],
            mlflow_env,
            root,
        )
        zenml_url = f"http://127.0.0.1:{ports['zenml']}"
        mlflow_url = f"http://127.0.0.1:{ports['mlflow']}"
        stack.procs["zenml"].wait_http(f"{zenml_url}/health", timeout=90)
        stack.procs["mlflow"].wait_http(f"{mlflow_url}/health", timeout=90)

        # Headless bootstrap: the admin creates one service account; clients use its API key.
        admin_env = {
            **base_env,
            "ZENML_STORE_URL": zenml_url,
            "ZENML_STORE_USERNAME": "admin",
            "ZENML_STORE_PASSWORD": admin_password,
            "ZENML_CONFIG_PATH": str(root / "zenml-admin"),
        }
        key_file = root / "zenml-api-key"
        _run(
            [str(BIN / "zenml"), "service-account", "create", "mlops-ci", "--output-file", str(key_file)],
            admin_env,
        )

        stack.env = {
            **base_env,
            **s3_env,
            "MLOPS_HOME": str(root / "client-state"),
            "MLOPS_TRACKING_URI": mlflow_url,
            "MLOPS_AUDIT_DB_URL": f"{PG}/{pg_dbs['audit']}",
            "MLOPS_PREDICTION_LOG_URL": f"{PG}/{pg_dbs['predictions']}",
            "MLOPS_ACTOR": "integration-test",
            "ZENML_STORE_URL": zenml_url,
            "ZENML_STORE_API_KEY": key_file.read_text().strip(),
            "ZENML_CONFIG_PATH": str(root / "zenml-client"),
            "MLOPS_S3_ENDPOINT_URL": s3_url,
            "MLOPS_ARTIFACT_BUCKET": bucket,
        }
        _run([str(BIN / "mlops"), "db", "upgrade"], stack.env)  # the init step of compose and k8s
        stack.urls = {"zenml": zenml_url, "mlflow": mlflow_url, "s3": s3_url}
        yield stack
    finally:
        for proc in reversed(list(stack.procs.values())):
            proc.stop()
        _admin_sql(
            MARIADB_ADMIN,
            [f"DROP DATABASE IF EXISTS {zenml_db}", f"DROP USER IF EXISTS 'zenml_{suffix}'@'127.0.0.1'"],
        )
        _admin_sql(
            POSTGRES_ADMIN, [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in pg_dbs.values()]
        )
        shutil.rmtree(root, ignore_errors=True)


def _boto(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def _run(cmd: list[str], env: dict[str, str], timeout: float = 300) -> str:
    import subprocess

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
        )
    return out.stdout
