"""The dashboard's PromQL and the Prometheus config, as data for tests.

``panel_queries()`` lists every panel query of the provisioned Grafana dashboard (the static tests
check their metric names; the integration test runs them against a real Prometheus); the Rollout
row's queries only when asked (``rollout=True``: they have data only while a rollout runs).
``write_prometheus_config()`` turns deploy/prometheus/prometheus.yml into a config that scrapes a
given ``host:port`` with the project's alert rules, for a Prometheus started as a process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "mlops.json"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
SCRAPE_JOB = "mlops-inference"

# Sample names each metric type exposes (``_created`` series aside: no panel or rule uses them).
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported_metrics() -> frozenset[str]:
    """The service's metric contract as Prometheus exposes it, read from the collectors that
    ``mlops.serving.instruments`` defines (the one place the service's metrics are declared)."""
    from prometheus_client.metrics import MetricWrapperBase

    from mlops.serving import instruments

    names: set[str] = set()
    for metric in vars(instruments).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return frozenset(names)


EXPORTED_METRICS = exported_metrics()
ALLOWED_METRICS = EXPORTED_METRICS | {"up"}

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
}  # fmt: skip


def panels(dashboard: Path = DASHBOARD) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; row headers themselves excluded."""
    found: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == "row":
                walk(item.get("panels") or [])
            else:
                found.append(item)

    walk(json.loads(dashboard.read_text())["panels"])
    return found


ROLLOUT_ROW = "Rollout"


def rollout_panels(dashboard: Path = DASHBOARD) -> list[dict[str, Any]]:
    """The panels of the Rollout row (those after its header, up to the next row): their series
    exist only while a shadow or canary rollout runs."""
    found: list[dict[str, Any]] = []
    inside = False
    for item in json.loads(dashboard.read_text())["panels"]:
        if item.get("type") == "row":
            inside = item.get("title") == ROLLOUT_ROW
            found.extend(item.get("panels") or [] if inside else [])
        elif inside:
            found.append(item)
    return found


def panel_queries(dashboard: Path = DASHBOARD, *, rollout: bool = False) -> list[str]:
    """The PromQL of every panel target, in dashboard order; the Rollout row's only with ``rollout``
    (a service with no rollout has no data for them: the server-mode test runs none)."""
    skipped = set() if rollout else {p["id"] for p in rollout_panels(dashboard)}
    return [
        t["expr"]
        for p in panels(dashboard)
        if p["id"] not in skipped
        for t in p.get("targets") or []
        if t.get("expr")
    ]


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and literals removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def prometheus_config(
    target: str, *, scrape_interval: str = "1s", rules: Path | None = None
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with ``target`` (host:port) as the only mlops-inference target."""
    import yaml

    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = scrape_interval
    config["rule_files"] = [str((rules or PROMETHEUS_DIR / "alerts.yml").resolve())]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == SCRAPE_JOB]
    for job in jobs:
        job["scrape_interval"] = scrape_interval
        job["static_configs"] = [{"targets": [target], "labels": {"service": "inference"}}]
    config["scrape_configs"] = jobs
    config.pop("alerting", None)  # no Alertmanager beside it: a test that wants one adds its own
    return config


def write_prometheus_config(directory: Path, target: str, **kwargs: Any) -> Path:
    """Write :func:`prometheus_config` to ``directory/prometheus.yml`` and return its path."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(prometheus_config(target, **kwargs), sort_keys=False))
    return path
