"""The draining shutdown (serving/server.py) on a real uvicorn server, with a tiny ASGI app in place
of the service (no model): an idle keep-alive connection at shutdown still gets its next request
answered (with ``Connection: close``), where uvicorn's own protocol closes it under the request.
Also: the tested uvicorn range, and the supervisor refusing new connections once signalled."""

from __future__ import annotations

import asyncio
import logging
import pickle
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import multiprocess
from uvicorn.supervisors.multiprocess import Multiprocess

from mlops.serving import server
from mlops.settings import Settings

RELEASE = threading.Event()  # the slow route answers when the test sets it


async def tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/slow":
        await asyncio.get_running_loop().run_in_executor(None, RELEASE.wait, 5)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def running(protocol: type[HttpToolsProtocol], keep_alive_s: int = 5) -> Iterator[tuple[uvicorn.Server, int]]:
    """A real uvicorn server on 127.0.0.1 (a free port) in a thread, stopped at the end."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        tiny_app, http=protocol, lifespan="off", log_level="warning", timeout_keep_alive=keep_alive_s
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield srv, sock.getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive()


def request(conn: socket.socket, path: str = "/") -> None:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n".encode())


def response(conn: socket.socket) -> bytes:
    """One whole response (head and 2-byte body), or what came before the connection ended."""
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
        try:
            chunk = conn.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def shut_down(srv: uvicorn.Server, port: int) -> None:
    """Start the graceful shutdown and wait until uvicorn has stopped listening (it has then told
    every open connection to shut down)."""
    srv.should_exit = True
    deadline = time.monotonic() + 5
    while not refuses_connections(port):
        assert time.monotonic() < deadline, "uvicorn kept listening"
        time.sleep(0.02)


@pytest.mark.parametrize("protocol", [server.DrainingHttpProtocol, HttpToolsProtocol])
def test_an_idle_keep_alive_connection_at_shutdown_answers_its_next_request(protocol) -> None:
    with running(protocol) as (srv, port), socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        request(conn)
        first = response(conn)
        assert first.startswith(b"HTTP/1.1 200") and b"connection: close" not in first.lower()
        shut_down(srv, port)
        request(conn)  # a request the client sent just as the server began to drain
        second = response(conn)
        if protocol is server.DrainingHttpProtocol:
            assert second.startswith(b"HTTP/1.1 200"), second
            assert b"connection: close" in second.lower()
            assert conn.recv(1) == b""  # then closed by the server
        else:  # uvicorn's own protocol: closed at once, the request lost (what the subclass fixes)
            assert second == b""


def test_a_request_in_flight_at_shutdown_is_answered_then_the_connection_closes() -> None:
    RELEASE.clear()
    with (
        running(server.DrainingHttpProtocol) as (srv, port),
        socket.create_connection(("127.0.0.1", port), timeout=5) as conn,
    ):
        request(conn, "/slow")
        time.sleep(0.1)
        shut_down(srv, port)
        RELEASE.set()
        answer = response(conn)
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer.lower()


def test_the_supervisor_stops_listening_as_soon_as_it_is_signalled() -> None:
    previous = {sig: signal.getsignal(sig) for sig in multiprocess.SIGNALS}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        supervisor = server.Supervisor(uvicorn.Config(tiny_app, workers=2), sockets=[sock])
        assert signal.getsignal(signal.SIGTERM) == supervisor._stop_listening
        assert not refuses_connections(port)
        supervisor._stop_listening(signal.SIGTERM, None)
        assert refuses_connections(port)
        assert supervisor.signal_queue == [signal.SIGTERM]  # uvicorn's loop then stops the workers
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_the_subclasses_run_only_with_the_tested_uvicorn(caplog: pytest.LogCaptureFixture) -> None:
    assert server.drain_supported()  # the lockfile's uvicorn: a bump outside the range fails here
    assert server.drain_supported("0.54.0") and server.drain_supported("0.54.7")
    assert server.server_classes("0.54.1") == (server.DrainingHttpProtocol, server.Supervisor)
    for outside in ("0.53.9", "0.55.0", "1.0.0"):
        assert not server.drain_supported(outside)
        with caplog.at_level(logging.WARNING, logger=server.__name__):
            caplog.clear()
            assert server.server_classes(outside) == (HttpToolsProtocol, Multiprocess)
        assert f"uvicorn {outside} is outside the range" in caplog.text


def test_workers_get_their_settings_with_the_app_factory_not_the_environment() -> None:
    settings = Settings(project="readmission", predict_api_key=SecretStr("k"))
    config = server.config(settings, "127.0.0.1", 8123, workers=2, http=server.DrainingHttpProtocol)
    spawned = pickle.loads(pickle.dumps(config))  # what a spawned worker receives
    assert spawned.factory and spawned.workers == 2 and spawned.http is server.DrainingHttpProtocol
    assert not spawned.access_log  # at "warning" it would print nothing, yet format every request's line
    assert spawned.app.func.__module__ == "mlops.serving.app" and spawned.app.func.__name__ == "create_app"
    (received,) = spawned.app.args
    assert received.project == "readmission" and received.api_keys("predict_api_key") == ["k"]


@pytest.mark.parametrize("keep_alive_s", [1, 3])
def test_a_connection_idle_for_less_than_the_keep_alive_answers_its_next_request(keep_alive_s) -> None:
    """The race a too-short keep-alive loses: a client sends on a connection the server has just
    closed (1 s here stands for uvicorn's 5 s default, 1.5 s of idling for a pool that still hands
    the connection out). The service's keep-alive outlasts the clients' own idle timeout."""
    with (
        running(server.DrainingHttpProtocol, keep_alive_s) as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=5) as conn,
    ):
        request(conn)
        assert response(conn).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)
        request(conn)
        second = response(conn)
    if keep_alive_s == 1:
        assert second == b""  # closed under the request: httpx says "Server disconnected"
    else:
        assert second.startswith(b"HTTP/1.1 200"), second
    configured = server.config(Settings(), "127.0.0.1", 8123).timeout_keep_alive
    assert configured == Settings().keep_alive_s > httpx.Limits().keepalive_expiry  # httpx's pool: 5 s
