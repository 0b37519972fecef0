"""`mlops ui` on a state trained through the real ZenML pipeline, looked at by headless Chromium.

Chromium (Debian's ``chromium``) is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages on fds 3 and 4, standard library only), not with
``--dump-dom``: ZenML's run page lays its DAG out in a Web Worker, which ``--virtual-time-budget``
never lets finish, and draws only the nodes inside the viewport; the test waits for the page's own
text instead, and switches the run to its timeline view, which lists every step. Missing Chromium
skips locally and FAILS under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processes import MLOPS, free_port, service_env
from tests.support.training import TRAINING_STEPS as STEPS

pytestmark = pytest.mark.integration

TIMELINE = "(document.querySelector('[aria-label=\"Timeline view\"]') || {click() {}}).click()"


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is required in CI (CI=true) but is not installed")
    pytest.skip("chromium not installed (apt-get install chromium; CI fails without it)")


def page_text(url: str, until: re.Pattern[str], *, script: str = "", timeout: float = 120) -> str:
    """The rendered text (``document.body.innerText``) of ``url`` once it matches ``until`` (or the
    last text seen after ``timeout`` seconds); ``script`` runs on the page between looks."""
    commands_r, commands_w = os.pipe()
    replies_r, replies_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="chromium-")

    def pipes_on_3_and_4() -> None:  # where --remote-debugging-pipe reads and writes
        os.dup2(commands_r, 3)
        os.dup2(replies_w, 4)

    proc = subprocess.Popen(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-pipe",
            "--window-size=1600,2400",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        pass_fds=(3, 4),
        preexec_fn=pipes_on_3_and_4,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(commands_r)
    os.close(replies_w)
    buffer, last_id = b"", 0

    def call(method: str, params: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        nonlocal buffer, last_id
        last_id += 1
        message: dict[str, Any] = {"id": last_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(commands_w, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in buffer:
                if not select.select([replies_r], [], [], 60)[0]:
                    raise TimeoutError(f"chromium did not answer {method}")
                chunk = os.read(replies_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                buffer += chunk
            raw, _, buffer = buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    try:
        target = call("Target.createTarget", {"url": url})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        deadline, text = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            evaluated = call(
                "Runtime.evaluate",
                {"expression": "document.body ? document.body.innerText : ''", "returnByValue": True},
                session,
            )
            text = str(evaluated["result"].get("value", ""))
            if until.search(text):
                return text
            if script:
                call("Runtime.evaluate", {"expression": script}, session)
            time.sleep(0.5)
        return text
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        os.close(commands_w)
        os.close(replies_r)
        shutil.rmtree(profile, ignore_errors=True)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_naming(*needles: str) -> list[str]:
    """Command lines of live processes that contain every needle (the servers `mlops ui` started)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["status"] != psutil.STATUS_ZOMBIE and all(n in cmdline for n in needles):
            found.append(cmdline)
    return found


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project state with one finished training run of iris, made by `mlops train` itself."""
    home = tmp_path_factory.mktemp("ui") / "state"
    out = subprocess.run(
        [MLOPS, "train", "--project", "iris", "--json"],
        env=service_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert json.loads(out.stdout)["status"] == "completed"
    return home


@contextlib.contextmanager
def mlops_ui(home: Path, **env: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """`mlops ui --json` running, with the JSON document it printed; always stopped afterwards."""
    log = (home.parent / "ui.stderr").open("w")
    proc = subprocess.Popen(
        [MLOPS, "ui", "--project", "iris", "--json"],
        env=service_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True)
    reader.start()
    try:
        document, deadline = "", time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                document += lines.get(timeout=5)
            except queue.Empty:
                assert proc.poll() is None, (home.parent / "ui.stderr").read_text()[-4000:]
                continue
            with contextlib.suppress(json.JSONDecodeError):
                parsed = json.loads(document)
                break
        else:
            raise AssertionError(f"`mlops ui` printed no URLs in time:\n{document}")
        yield proc, parsed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_dashboards_show_the_run_steps_and_the_production_alias_and_stop_cleanly(trained_home: Path) -> None:
    chromium()
    config = trained_home / "zenml" / "config.yaml"
    before = config.read_bytes()
    ports = {"MLOPS_ZENML_DASHBOARD_PORT": str(free_port()), "MLOPS_MLFLOW_UI_PORT": str(free_port())}
    with mlops_ui(trained_home, **ports) as (proc, urls):
        assert urls["mode"] == "embedded"
        assert urls["zenml"] == f"http://127.0.0.1:{ports['MLOPS_ZENML_DASHBOARD_PORT']}"
        assert urls["mlflow"] == f"http://127.0.0.1:{ports['MLOPS_MLFLOW_UI_PORT']}"

        # ZenML: the run page itself (no onboarding survey), with every step of the finished run
        run_page = page_text(urls["zenml_run"], re.compile(r"promote_model"), script=TIMELINE)
        assert "Survey" not in run_page and "account details" not in run_page
        assert all(step in run_page for step in STEPS), run_page[:3000]
        assert re.search(r"Completed\s+9", run_page), run_page[:3000]

        # MLflow: the registered model's page, version 1 holding the production alias
        model_page = page_text(urls["mlflow_model"], re.compile(r"@\s*production"))
        assert re.search(r"@\s*production", model_page), model_page[:3000]
        assert "iris-classifier" in model_page and "Version 1" in model_page

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
    assert proc.returncode == 0
    for port in ports.values():
        assert not port_open(int(port)), f"port {port} still open after SIGTERM"
        assert not processes_naming("--port", port)
    assert config.read_bytes() == before  # the project's store configuration, byte for byte
    assert not (trained_home / "zenml-dashboard").exists()


def test_server_mode_prints_the_stack_urls_and_starts_nothing(tmp_path: Path) -> None:
    env = service_env(
        tmp_path / "state",
        MLOPS_TRACKING_URI="https://mlflow.example.org",
        ZENML_STORE_URL="https://zenml.example.org",
    )
    out = subprocess.run([MLOPS, "ui", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "mode": "server",
        "zenml": "https://zenml.example.org",
        "mlflow": "https://mlflow.example.org",
        "mlflow_model": "https://mlflow.example.org/#/models/iris-classifier",
        "logs": {},
    }


def test_no_store_yet_is_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [MLOPS, "ui"], env=service_env(tmp_path / "state"), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 4, out.stderr
    assert "no ZenML store yet" in out.stderr and "mlops train" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_busy_port_names_its_setting(trained_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = service_env(
            trained_home, MLOPS_MLFLOW_UI_PORT=str(port), MLOPS_ZENML_DASHBOARD_PORT=str(free_port())
        )
        out = subprocess.run([MLOPS, "ui"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert f"port {port}" in out.stderr and "MLOPS_MLFLOW_UI_PORT" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_store_configuration_is_put_back_byte_for_byte(tmp_path: Path) -> None:
    from mlops.dashboards import ProjectStore

    config = tmp_path / "config.yaml"
    original = b"store:\n  type: sql\n  url: sqlite:////state/zenml.db  # a comment, kept\n"
    config.write_bytes(original)
    store = ProjectStore.read(tmp_path)
    assert store.url() == "sqlite:////state/zenml.db" and not store.restore()
    config.write_bytes(b"store:\n  type: rest\n  url: http://127.0.0.1:8237\n")  # what a login writes
    assert store.restore() and config.read_bytes() == original

    absent = ProjectStore.read(tmp_path / "none")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "config.yaml").write_text("store: {}\n")
    assert absent.url() == "" and absent.restore() and not (tmp_path / "none" / "config.yaml").exists()
