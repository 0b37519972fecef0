"""The prediction-log database stops while the service is loaded, then comes back.

The shared PostgreSQL server is never stopped: the service reaches its own database through a TCP
proxy owned by this test. Killing the proxy closes every open connection and refuses new ones, as a
stopped server would; starting it again on the same port is the database coming back.

Acceptance (issue 12): stopped for 30 s under load, every prediction served in that window is in the
database after it returns (the spool replayed), none dropped; in the lossless setting with the
spool's limit reached, requests get 503 with ``Retry-After``, never an unlogged 200.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops.configure import configure_libraries
from mlops.settings import Settings
from mlops.stores import migrate
from tests.integration.processes import EXAMPLE, LoadGenerator, Proc, free_port, start_service
from tests.support.training import train_register_promote

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
OUTAGE_S = 30.0


class TcpProxy:
    """Forwards a local port to PostgreSQL until killed; ``start`` again to bring it back."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def kill(self) -> None:
        """Stop listening (new connections refused) and cut every open connection."""
        assert self._listener is not None
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone does not
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # killed
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _admin(sql: str) -> None:
    conn = psycopg2.connect(**PG, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def log_database() -> Iterator[str]:
    name = f"mlops_outage_{uuid.uuid4().hex[:12]}"
    try:
        _admin(f"CREATE DATABASE {name}")
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")  # never skipped
    # A server database is migrated by `mlops db upgrade` (compose/k8s init step), not by the service.
    migrate.upgrade(f"postgresql://postgres@127.0.0.1:5432/{name}", ["predictions"])
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _logged(database: str, request_ids: list[str]) -> int:
    """How many of ``request_ids`` have a row in the log (read directly, not through the proxy)."""
    conn = psycopg2.connect(**PG, dbname=database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM predictions WHERE request_id = ANY(%s)", (request_ids,))
            return int(cursor.fetchone()[0])
    except psycopg2.errors.UndefinedTable:
        return 0
    finally:
        conn.close()


def _ids(load: LoadGenerator, after: float) -> list[str]:
    return [r.request_id for r in load.snapshot() if r.sent > after and r.request_id]


def _metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]
    return float(sum(s.value for s in samples))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _service(tmp_path: Path, proxy: TcpProxy, database: str, **env: str) -> tuple[Proc, str]:
    home = tmp_path / "state"
    settings = configure_libraries(Settings(home=home, actor="pytest"))
    train_register_promote(settings, "iris")
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
    return start_service(
        home, tmp_path, MLOPS_PREDICTION_LOG_URL=url, MLOPS_PREDICTION_LOG_FLUSH_S="0.1", **env
    )


def test_log_database_outage_under_load(tmp_path: Path, log_database: str, figures) -> None:
    """30 s without the database under load: the service answers every request, the rows wait in the
    local spool (not in memory), and once the database is back every one of them is written."""
    proxy = TcpProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    service, base = _service(tmp_path, proxy, log_database)
    try:
        with LoadGenerator(base, threads=4, max_seconds=150, interval=0.01) as load:
            assert load.wait_for(lambda rs: len(rs) >= 200, timeout=20)
            before = [r.request_id for r in load.snapshot() if r.request_id]
            assert _wait(lambda: _logged(log_database, before[:100]) == 100, timeout=15), "no logging at all"
            dropped_before = _metric(base, "mlops_prediction_log_dropped_total")
            rss_before = _rss_mb(service.popen.pid)

            proxy.kill()  # the database "stops"
            down_at = time.monotonic()
            time.sleep(OUTAGE_S)
            spool_bytes = _metric(base, "mlops_prediction_log_spool_bytes")
            depth = _metric(base, "mlops_prediction_log_queue_depth")
            rss_outage = _rss_mb(service.popen.pid)
            during = _ids(load, after=down_at)

            proxy.start()  # the database is back: the shipper reconnects on its own (backoff <= 2 s)
            up_at = time.monotonic()
            replayed = _wait(lambda: _logged(log_database, during) == len(during), timeout=60)
            replayed_after_s = round(time.monotonic() - up_at, 1)
            assert load.wait_for(lambda rs: sum(r.sent > up_at for r in rs) >= 200, 20)
            dropped = _metric(base, "mlops_prediction_log_dropped_total") - dropped_before
        service.stop()  # graceful: the last batch is spooled and shipped
        results = load.snapshot()
    finally:
        service.stop()
        proxy.kill()

    errors = [r for r in results if r.status != 200]
    answered = [r.request_id for r in results if r.request_id]
    logged = _logged(log_database, answered)
    figures(
        requests=len(results),
        errors=len(errors),
        requests_during_outage=len(during),
        spool_bytes_in_outage=spool_bytes,
        queue_depth_in_outage=depth,
        rss_growth_mb=round(rss_outage - rss_before, 1),
        replayed_after_s=replayed_after_s,
        dropped=dropped,
        answered=len(answered),
        logged=logged,
    )
    assert not errors, errors[:3]
    assert service.popen.returncode in (0, -15), service.tail()  # stopped by us, not crashed
    assert len(during) > 1000 and spool_bytes > 0 and depth >= len(during) * 0.5  # waiting in the spool
    assert rss_outage - rss_before < 50  # on disk, not in memory
    assert replayed, "the spool was not replayed after the database came back"
    assert dropped == 0
    assert logged == len(answered)  # every prediction served, during the outage too, is in the database


def test_lossless_full_spool_refuses_never_serves_unlogged(
    tmp_path: Path, log_database: str, figures
) -> None:
    """Lossless, a tiny spool, the database down: requests get 503 with ``Retry-After`` once the spool
    is full; every request answered 200 is in the database after it returns; nothing is dropped."""
    proxy = TcpProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    service, base = _service(
        tmp_path,
        proxy,
        log_database,
        MLOPS_PREDICTION_LOG_LOSSLESS="true",
        MLOPS_PREDICTION_LOG_SPOOL_MAX_MB="0.01",
    )
    try:
        proxy.kill()  # the database "stops" before the first request
        with LoadGenerator(base, threads=2, max_seconds=120, interval=0.005) as load:
            assert load.wait_for(lambda rs: sum(r.status == 503 for r in rs) >= 50, timeout=30), "no 503"
            refused = httpx.post(f"{base}/predict", json=EXAMPLE, timeout=5)
            dropped = _metric(base, "mlops_prediction_log_dropped_total")
            refused_count = _metric(base, "mlops_prediction_log_refused_total")
            proxy.start()  # the database is back: the spool drains, requests are admitted again
            up_at = time.monotonic()
            recovered = load.wait_for(
                lambda rs: sum(r.status == 200 and r.sent > up_at + 5 for r in rs) >= 100, timeout=60
            )
        service.stop()
        results = load.snapshot()
    finally:
        service.stop()
        proxy.kill()

    codes = {r.status for r in results}
    answered = [r.request_id for r in results if r.status == 200 and r.request_id]
    logged = _logged(log_database, answered)
    figures(
        requests=len(results),
        refused=sum(r.status == 503 for r in results),
        answered=len(answered),
        logged=logged,
        refused_metric=refused_count,
    )
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
    assert codes <= {200, 503}, codes
    assert dropped == 0 and refused_count >= 50
    assert recovered, "requests were not admitted again after the database came back"
    assert logged == len(answered)  # never an unlogged 200
