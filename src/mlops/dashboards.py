"""The ZenML dashboard and the MLflow UI on the project's own state.

ZenML's dashboard is served by the ZenML server. `zenml login --local` starts one as a daemon, but
it rewrites the store configuration under ``ZENML_CONFIG_PATH`` (the project's store becomes a REST
client of that server) and the daemon outlives the command that started it. Here the server is a
process this command owns: uvicorn on ``zenml.zen_server.zen_server_api:app``, pointed at the
project's own store URL, with its own throw-away ``ZENML_CONFIG_PATH``. The project's store
configuration is never switched; it is still read before and compared after, and written back
byte for byte if anything changed it (``ProjectStore``).

The server runs as ZenML's local daemon runs: ``NO_AUTH`` (every request acts as the store's
``default`` user), bound to 127.0.0.1 only. That is also how the onboarding is completed
headlessly: ``PUT /api/v1/current-user`` with ``email_opted_in`` set and
``user_metadata.finished_onboarding_survey`` true, the two things the dashboard checks before it
shows anything but the survey. The MLflow UI is ``mlflow server`` on the tracking URI with its job
workers off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``: ~1.9 GB otherwise) and the runs'
artifacts read where training wrote them.

In server mode (an ``http(s)`` tracking URI, or a ZenML store that is a server) there is nothing
to start: the URLs of the stack's own servers are returned instead.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlops.errors import MlopsError, NotFound, UsageError
from mlops.processes import ChildFailed, Children, wait_http
from mlops.settings import Settings, mask_url

READY_TIMEOUT_S = 180.0  # ZenML's server takes 10-25 s here, much longer on a loaded machine
BIN = Path(sys.executable).parent
ZENML_APP = "zenml.zen_server.zen_server_api:app"
log = logging.getLogger(__name__)


@dataclass
class Dashboards:
    """What `mlops ui` shows: each UI's URL and the pages worth opening first."""

    mode: str  # "embedded": started here; "server": the stack's own servers
    zenml: str
    mlflow: str
    links: dict[str, str] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "zenml": self.zenml,
            "mlflow": self.mlflow,
            **self.links,
            "logs": self.logs,
        }


# ----- where the project's ZenML store is -----


def zenml_config_dir(settings: Settings) -> Path:
    """The ZenML config folder the CLI uses: ``ZENML_CONFIG_PATH`` when set (``configure_libraries``
    sets it to the state folder's unless the user chose one), else the state folder's."""
    return Path(os.environ.get("ZENML_CONFIG_PATH") or settings.zenml_config_path)


@dataclass
class ProjectStore:
    """The project's ZenML store configuration (``config.yaml``), as bytes, so it can be put back."""

    path: Path
    snapshot: bytes | None

    @classmethod
    def read(cls, config_dir: Path) -> ProjectStore:
        path = config_dir / "config.yaml"
        return cls(path, path.read_bytes() if path.exists() else None)

    def url(self) -> str:
        """The store URL clients of this project use: ``ZENML_STORE_URL`` wins, as in ZenML."""
        if os.environ.get("ZENML_STORE_URL"):
            return os.environ["ZENML_STORE_URL"]
        if self.snapshot is None:
            return ""
        import yaml

        store = (yaml.safe_load(self.snapshot) or {}).get("store") or {}
        return str(store.get("url") or "")

    def restore(self) -> bool:
        """Write the snapshot back if the file differs from it; True when it had to."""
        current = self.path.read_bytes() if self.path.exists() else None
        if current == self.snapshot:
            return False
        if self.snapshot is None:
            self.path.unlink()
        else:
            self.path.write_bytes(self.snapshot)
        return True


def is_server_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


# ----- starting -----


def ensure_port_free(host: str, port: int, setting: str) -> None:
    """Refuse a port something listens on. ``SO_REUSEADDR``, as the servers bind: connections of a
    server stopped a moment ago (TIME_WAIT) do not make the port busy, a listener does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise UsageError(
                f"port {port} on {host} is in use", hint=f"stop what listens there or set {setting}"
            ) from None


@contextmanager
def running(settings: Settings, project: str) -> Iterator[tuple[Dashboards, Children]]:
    """Both UIs while the block runs; leaving it (a signal, an error, a normal return) stops them and
    puts the project's store configuration back as it was."""
    store = ProjectStore.read(zenml_config_dir(settings))
    try:
        with Children() as children:
            yield start(settings, project, children, store), children
    finally:
        if store.restore():
            log.warning("the ZenML store configuration %s had changed: restored", store.path)
        shutil.rmtree(settings.state_dir / "zenml-dashboard", ignore_errors=True)


def start(settings: Settings, project: str, children: Children, store: ProjectStore) -> Dashboards:
    """Start what the project's mode needs (nothing in server mode) as ``children``; their URLs."""
    store_url = store.url()
    tracking = settings.mlflow_tracking_uri
    model_page = f"#/models/{quote(settings.registered_model_name(project))}"
    if is_server_url(tracking) or is_server_url(store_url):
        zenml_server = store_url.rstrip("/") if is_server_url(store_url) else ""
        mlflow_server = tracking.rstrip("/") if is_server_url(tracking) else ""
        links = {"mlflow_model": f"{mlflow_server}/{model_page}"} if mlflow_server else {}
        return Dashboards("server", mask_url(zenml_server), mask_url(mlflow_server), links)
    if not store_url:
        raise NotFound(
            f"no ZenML store yet under {store.path.parent}",
            hint="run `mlops train` (or `make demo`) first: the dashboard shows its runs",
        )
    host = "127.0.0.1"
    ensure_port_free(host, settings.zenml_dashboard_port, "MLOPS_ZENML_DASHBOARD_PORT")
    ensure_port_free(host, settings.mlflow_ui_port, "MLOPS_MLFLOW_UI_PORT")
    logs_dir = settings.state_dir / "logs"
    server_config = settings.state_dir / "zenml-dashboard"
    shutil.rmtree(server_config, ignore_errors=True)
    server_config.mkdir(parents=True)

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_STORE_", "ZENML_SERVER"))}
    zenml_env = {
        **base_env,
        "ZENML_SERVER": "true",
        "ZENML_CONFIG_PATH": str(server_config),
        "ZENML_STORE_URL": store_url,
        "ZENML_SERVER_AUTH_SCHEME": "NO_AUTH",
        "ZENML_SERVER_DEPLOYMENT_TYPE": "local",
        "ZENML_SERVER_AUTO_ACTIVATE": "true",
        "ZENML_SERVER_ALLOW_LOCAL_FILE_ACCESS": "true",  # artifact previews from the local store
        "ZENML_LOCAL_STORES_PATH": str(store.path.parent / "local_stores"),
        "ZENML_ANALYTICS_OPT_IN": "false",
    }
    zenml_url = f"http://{host}:{settings.zenml_dashboard_port}"
    zenml_cmd = [
        str(BIN / "uvicorn"),
        ZENML_APP,
        "--host",
        host,
        "--port",
        str(settings.zenml_dashboard_port),
    ]
    zenml = children.start(
        "zenml-dashboard", [*zenml_cmd, "--workers", "1"], env=zenml_env, log=logs_dir / "zenml-dashboard.log"
    )

    mlflow_env = {
        **base_env,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    mlflow_url = f"http://{host}:{settings.mlflow_ui_port}"
    mlflow_cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", tracking]
    mlflow_cmd += ["--default-artifact-root", settings.mlflow_artifact_location, "--no-serve-artifacts"]
    mlflow_cmd += ["--host", host, "--port", str(settings.mlflow_ui_port), "--workers", "1"]
    mlflow = children.start("mlflow-ui", mlflow_cmd, env=mlflow_env, log=logs_dir / "mlflow-ui.log")

    try:
        wait_http(f"{mlflow_url}/health", mlflow, READY_TIMEOUT_S)
        wait_http(f"{zenml_url}/health", zenml, READY_TIMEOUT_S)
        finish_onboarding(zenml_url)
        links = {"mlflow_model": f"{mlflow_url}/{model_page}"}
        run = latest_run(zenml_url)
        if run:
            links["zenml_run"] = f"{zenml_url}/projects/{quote(run['project'])}/runs/{run['id']}"
    except ChildFailed as exc:
        raise MlopsError(str(exc), hint="the log names the cause; `mlops ui` stopped both") from None
    logs = {"zenml": str(zenml.log), "mlflow": str(mlflow.log)}
    return Dashboards("embedded", zenml_url, mlflow_url, links, logs)


# ----- the ZenML server's REST API (NO_AUTH: the store's default user) -----


def _api(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (base: the server started here, http://127.0.0.1)
        f"{base}/api/v1{path}",
        data=data,
        method="PUT" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (http://127.0.0.1 only)
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MlopsError(f"ZenML's server at {base} refused {path}: {exc}") from None


def finish_onboarding(base: str) -> None:
    """Mark the onboarding survey done for the default user, as the dashboard's own form does; the
    dashboard shows the survey while ``email_opted_in`` is null or the survey flag is unset."""
    user = _api(base, "/current-user")
    metadata = dict((user.get("metadata") or {}).get("user_metadata") or {})
    if (
        metadata.get("finished_onboarding_survey")
        and (user.get("body") or {}).get("email_opted_in") is not None
    ):
        return
    metadata["finished_onboarding_survey"] = True
    _api(base, "/current-user", {"email_opted_in": False, "user_metadata": metadata})


def latest_run(base: str) -> dict[str, str] | None:
    """The newest pipeline run's id and project name (for a link straight to its page)."""
    runs = _api(base, "/runs?sort_by=desc:created&size=1&hydrate=false").get("items") or []
    if not runs:
        return None
    project_id = (runs[0].get("body") or {}).get("project_id") or ""
    project = _api(base, f"/projects/{project_id}") if project_id else {}
    return {"id": runs[0]["id"], "project": project.get("name") or project_id}
