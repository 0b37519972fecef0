"""Run the service under uvicorn (app factory), one or several workers, with a shutdown that loses nothing.

uvicorn's graceful shutdown closes an idle keep-alive connection at once, racing the client's next
request on it, and in multi-worker mode the supervisor keeps the listening socket open until it exits,
so connections made during the drain wait in the kernel's queue and are reset at the end (measured:
23 of ~1000 requests under load got a reset or an empty reply). Here a request that reaches a
draining connection is answered with ``Connection: close``, and the supervisor shuts the listening
socket as soon as it is signalled, so late clients are refused at once instead
(tests/reliability/test_service_faults.py: 0 lost; tests/unit/serving/test_server.py: the drain).

uvicorn internals the three subclasses touch (none is public API), tested with uvicorn
``TESTED_UVICORN`` (>=0.54,<0.55, the range the lockfile pins):

- ``DrainingHttpProtocol(uvicorn.protocols.http.httptools_impl.HttpToolsProtocol)`` overrides
  ``shutdown()`` (called by ``Server.shutdown`` on every open connection) and the parser callback
  ``on_headers_complete()``; it reads ``self.cycle`` (the current ``RequestResponseCycle``: its
  ``response_complete``, and writes its ``keep_alive``), ``self.loop`` and ``self.transport``.
- ``Supervisor(uvicorn.supervisors.multiprocess.Multiprocess)`` calls ``__init__(config, sockets)``,
  then replaces the SIGTERM/SIGINT/SIGHUP handlers it installs; its handler shuts ``self.sockets`` and
  appends to ``self.signal_queue`` (what ``Multiprocess.run`` polls), as uvicorn's own handler does,
  and overrides ``handle_hup()`` (dispatched from that queue) to stop instead of restarting workers.
- ``WorkerConfig(uvicorn.Config)`` overrides ``configure_logging()``, which uvicorn calls first in
  a spawned worker: there it ignores SIGHUP (the supervisor stops workers with SIGTERM).

With an installed uvicorn outside that range, ``serve`` logs a warning and runs uvicorn's own
protocol and supervisor: the service works, with uvicorn's stock shutdown (a few connections reset
during a drain). Refusing to start instead would turn a dependency bump into an outage, and an
untested override inside a parser callback could break every request, not just the drain.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import socket
from importlib.metadata import version as installed_version
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from mlops.configure import configure_libraries
from mlops.settings import Settings

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
IDLE_GRACE_S = 1.0  # how long a draining idle connection waits for a request already on its way
TESTED_UVICORN = SpecifierSet(">=0.54,<0.55")
log = logging.getLogger(__name__)


class DrainingHttpProtocol(HttpToolsProtocol):
    """On shutdown, an idle keep-alive connection answers one more request (then closes) instead of
    being closed under a request the client may already have sent."""

    draining = False

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.draining = True
            self.loop.call_later(IDLE_GRACE_S, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


class Supervisor(Multiprocess):
    """On SIGTERM, SIGINT or SIGHUP, shut the shared listening socket first: a client connecting
    while the workers drain is refused at once, instead of waiting in the kernel's queue to be reset.

    SIGHUP stops, as for every command that starts servers (a closed terminal, `mlops demo`'s
    supervisor): uvicorn's own supervisor restarts its workers on it and keeps running."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._stop_listening)

    def handle_hup(self) -> None:
        self.handle_term()

    def _stop_listening(self, sig: int, frame: object) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.signal_queue.append(sig)


class WorkerConfig(Config):
    """uvicorn's configuration; in a spawned worker it also ignores SIGHUP.

    A closed terminal sends SIGHUP to the whole foreground group, workers included, and a worker
    has no handler for it (uvicorn's cover SIGTERM and SIGINT): it would die at once, its requests
    cut and its prediction-log queue unwritten. Ignored there, the supervisor's SIGHUP stops the
    workers with the SIGTERM they drain on. ``configure_logging`` is the first thing uvicorn calls
    in a spawned worker (``uvicorn._subprocess.subprocess_started``), before the server starts.
    """

    def configure_logging(self) -> None:
        import multiprocessing

        if multiprocessing.parent_process() is not None:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        super().configure_logging()


def drain_supported(uvicorn_version: str | None = None) -> bool:
    """Whether the draining subclasses were tested with this uvicorn (default: the installed one)."""
    return Version(uvicorn_version or installed_version("uvicorn")) in TESTED_UVICORN


def server_classes(uvicorn_version: str | None = None) -> tuple[type[HttpToolsProtocol], type[Multiprocess]]:
    """The HTTP protocol and the multi-worker supervisor to run: ours within the tested range,
    uvicorn's own (with a warning) outside it."""
    if drain_supported(uvicorn_version):
        return DrainingHttpProtocol, Supervisor
    log.warning(
        "uvicorn %s is outside the range the draining shutdown was tested with (%s): running "
        "uvicorn's own protocol and supervisor (idle keep-alive connections may be reset on "
        "shutdown). Install uvicorn from the lockfile to get the drain back.",
        uvicorn_version or installed_version("uvicorn"),
        TESTED_UVICORN,
    )
    return HttpToolsProtocol, Multiprocess


def config(settings: Settings, host: str, port: int, workers: int = 1, **options: Any) -> Config:
    """uvicorn's configuration. Workers build their app from ``settings`` itself (pickled into each
    spawned worker with the factory), not from the environment.

    uvicorn closes an idle connection after 5 s by default, the very moment httpx's pool (5 s) still
    hands it out: a client whose next request left just then gets "Server disconnected without
    sending a response" (found under load in tests/reliability/test_service_load.py, 1 request in
    ~140k). ``keep_alive_s`` outlasts the clients' idle timeouts, so they close first."""
    from mlops.serving.app import create_app

    return WorkerConfig(
        functools.partial(create_app, settings),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_keep_alive=settings.keep_alive_s,
        # uvicorn's access log formats every request's line (client address, quoted path) before
        # the logger drops it below "warning": off, as it would print nothing anyway
        **{"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 20, **options},
    )


def serve(settings: Settings, project: str, host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    protocol, supervisor = server_classes()
    cfg = config(settings.model_copy(update={"project": project}), host, port, workers, http=protocol)
    if workers == 1:
        # uvicorn drains on SIGTERM and SIGINT only; SIGHUP would end the process at once, with the
        # prediction log's queue unwritten: turn it into the SIGTERM uvicorn handles.
        signal.signal(signal.SIGHUP, lambda sig, frame: signal.raise_signal(signal.SIGTERM))
        uvicorn.Server(cfg).run()
        return
    configure_libraries(settings, shared_metrics_dir=settings.state_dir / "prometheus-multiproc")
    supervisor(cfg, sockets=[cfg.bind_socket()]).run()
