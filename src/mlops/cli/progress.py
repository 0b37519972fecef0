"""What a long command shows while it runs: its pipeline's steps, and nothing the libraries print.

``pipeline_progress`` wraps one run (train, batch-predict, drift, reproduce, one pass of monitor):

- **Steps as they run.** ZenML's step launcher logs, in the process that runs the steps, "Step `x`
  has started.", "... has finished in ...", "Using cached version of step `x`.", "Skipping step
  `x`." and "Failed to run step `x`: ...". A handler on that one logger turns them into step states;
  durations are the records' own timestamps. Measured with ZenML 0.98 and its local orchestrator:
  every step of the training pipeline (8 of 8, cached ones included) arrives, in order, on the
  thread that runs it, before and after the step's body: nothing polls the store and nothing is
  added to the pipelines. (A remote orchestrator runs the steps elsewhere: the title line then
  runs until the run returns.) Batch scoring adds a row count: one DEBUG record per chunk from
  ``mlops.batch.local`` on ``ROWS_LOGGER``.
- **A terminal** gets a live table (state, step, duration; a bar with rows while scoring);
  anything else (CI, a pipe) plain lines without colour: "step load_data completed in 0.4 s".
  ``--json`` shows no progress: stdout carries only the document.
- **Library output** (ZenML, MLflow, tqdm bars, pip warnings: anything written to file descriptors
  1 and 2, subprocesses included) goes to a log file under the state folder, not the terminal,
  unless ``--verbose`` or ``MLOPS_LOG_LEVEL`` ask for it. The redirection is below Python's
  streams, so ZenML's own capture (a wrapper around ``sys.stdout``/``sys.stderr`` and a root
  logging handler) still stores every line in the run's step logs, as it did before. A failed run
  names the log file.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from mlops.errors import UsageError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from mlops.settings import Settings

STEP_LOGGER = "zenml.orchestrators.step_launcher"
ROWS_LOGGER = "mlops.batch.rows"  # records carry ``rows_scored``: rows scored so far in this run
# Loggers whose level follows --verbose / MLOPS_LOG_LEVEL (others keep the root's: ZenML's WARN).
LIBRARIES = ("zenml", "mlflow", "alembic", "urllib3", "optuna", "evidently", "py4j")
KEEP_LOGS = 20  # log files kept in the state folder's logs/ (the oldest go first)

_EVENTS = (
    (re.compile(r"Step `(?P<step>[^`]+)` has started\."), "running"),
    (re.compile(r"Step `(?P<step>[^`]+)` has finished in "), "completed"),
    (re.compile(r"Using cached version of step `(?P<step>[^`]+)`\."), "cached"),
    (re.compile(r"Skipping step `(?P<step>[^`]+)`\."), "skipped"),
    (re.compile(r"Failed to run step `(?P<step>[^`]+)`"), "failed"),
)
_MARKS = {
    "completed": ("✓", "green"),
    "cached": ("↺", "cyan"),
    "skipped": ("-", "dim"),
    "failed": ("✗", "red"),
}

verbose = False  # the app callback's --verbose, for this invocation


def library_level(settings: Settings) -> tuple[int, bool]:
    """The level of the libraries' loggers and whether their output reaches the terminal:
    ``MLOPS_LOG_LEVEL`` (shown), else ``--verbose`` (INFO, shown), else WARNING into the log file."""
    name = settings.log_level.strip().upper()
    if name:
        level = logging.getLevelNamesMapping().get(name)
        if level is None or name == "NOTSET":
            raise UsageError(
                f"MLOPS_LOG_LEVEL={settings.log_level!r} is not a log level",
                hint="use DEBUG, INFO, WARNING, ERROR or CRITICAL (or unset it and pass --verbose)",
            )
        return level, True
    if verbose:
        return logging.INFO, True
    return logging.WARNING, False


def apply_library_levels(level: int) -> None:
    """Set the libraries' loggers to ``level``. MLflow resets its logger when it is first imported
    (to ``MLFLOW_LOGGING_LEVEL``, INFO by default), so it is imported first: a level set before
    that import does not last."""
    import mlflow  # noqa: F401  (see above)

    for name in LIBRARIES:
        logging.getLogger(name).setLevel(level)


@dataclass
class StepState:
    name: str
    state: str
    started: float
    ended: float | None = None

    def seconds(self, now: float) -> float:
        return (self.ended or now) - self.started


class PipelineProgress:
    """The steps of one run, fed by ``_StepEvents``/``_RowEvents``; drawn live (a rich renderable,
    re-rendered by ``Live`` from its refresh thread) or as plain lines when ``plain`` is set."""

    def __init__(self, title: str, console: Console, *, plain: bool, total_rows: int | None = None) -> None:
        self.title, self.console, self.plain = title, console, plain
        self.total_rows = total_rows
        self.rows = 0
        self.steps: dict[str, StepState] = {}
        self.started = time.time()
        self.ended: float | None = None
        self.failed = False
        self._lock = threading.Lock()
        self._last_rows_line = 0.0

    def step(self, name: str, state: str, at: float) -> None:
        with self._lock:
            current = self.steps.get(name)
            if state == "running" or current is None:
                current = self.steps[name] = StepState(name, state, at)
            if state != "running":
                current.state, current.ended = state, at
            if state == "failed":
                self.failed = True
        if self.plain:
            self._line(current)

    def scored(self, rows: int) -> None:
        self.rows = rows
        now = time.time()
        if self.plain and now - self._last_rows_line >= 5:
            self._last_rows_line = now
            of = f" of {self.total_rows:,}" if self.total_rows else ""
            self.print_line(f"{rows:,}{of} rows scored")

    def finish(self, failed: bool) -> None:
        self.ended, self.failed = time.time(), self.failed or failed
        if self.plain:
            self.print_line(self._summary())

    def _line(self, step: StepState) -> None:
        if step.state == "running":
            self.print_line(f"step {step.name} running")
        elif step.state in ("completed", "failed"):
            self.print_line(f"step {step.name} {step.state} in {_duration(step.seconds(time.time()))}")
        else:
            self.print_line(f"step {step.name} {step.state}")

    def print_line(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, highlight=False, markup=False)

    def _summary(self) -> str:
        with self._lock:
            steps = list(self.steps.values())
        count = f"{len(steps)} step{'s' * (len(steps) != 1)}, " if steps else ""
        verdict = "failed" if self.failed else "done"
        return f"{self.title}: {verdict} ({count}{_duration((self.ended or time.time()) - self.started)})"

    def __rich__(self) -> RenderableType:
        now = time.time()
        with self._lock:
            steps = list(self.steps.values())
        if self.ended is None:
            head: RenderableType = Spinner("dots", Text(f"{self.title}  {_duration(now - self.started)}"))
        else:
            head = Text(self._summary(), style="bold red" if self.failed else "bold")
        table = Table.grid(padding=(0, 2))
        table.add_column(width=1)
        table.add_column()
        table.add_column()
        table.add_column(justify="right")
        for s in steps:
            if s.state == "running":
                mark: RenderableType = Spinner("dots", style="yellow")
            else:
                symbol, style = _MARKS.get(s.state, ("?", "white"))
                mark = Text(symbol, style=style)
            table.add_row(
                mark,
                s.name,
                Text(s.state, style=_MARKS.get(s.state, ("", "yellow"))[1]),
                _duration(s.seconds(now)),
            )
        parts: list[RenderableType] = [head, table]
        if self.rows or (self.total_rows and any(s.state == "running" for s in steps)):
            parts.append(self._rows_bar())
        return Group(*parts)

    def _rows_bar(self) -> RenderableType:
        grid = Table.grid(padding=(0, 2))
        grid.add_row(
            ProgressBar(
                total=self.total_rows, completed=min(self.rows, self.total_rows or self.rows), width=40
            ),
            f"{self.rows:,}" + (f" / {self.total_rows:,}" if self.total_rows else "") + " rows",
        )
        return grid


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class _StepEvents(logging.Handler):
    """ZenML's step-launcher records as step states. The logger is made not to propagate while this
    listens (its INFO records are needed here whatever the console shows); records at the libraries'
    level or above are passed on to its parent's handlers as before (ZenML's console and log store)."""

    def __init__(self, progress: PipelineProgress | None, forward_level: int) -> None:
        super().__init__(logging.DEBUG)
        self.progress, self.forward_level = progress, forward_level
        self.parent = logging.getLogger(STEP_LOGGER.rsplit(".", 1)[0])

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is not None:
            message = record.getMessage()
            for pattern, state in _EVENTS:
                if match := pattern.match(message):
                    self.progress.step(match["step"], state, record.created)
                    break
        if record.levelno >= self.forward_level:
            self.parent.handle(record)


class _RowEvents(logging.Handler):
    def __init__(self, progress: PipelineProgress) -> None:
        super().__init__(logging.DEBUG)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        rows = getattr(record, "rows_scored", None)
        if isinstance(rows, int):
            self.progress.scored(rows)


@contextmanager
def _listening(name: str, handler: logging.Handler, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    before = logger.level, logger.propagate
    logger.setLevel(level)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]


def _flush_streams() -> None:
    for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s}.values():
        with suppress(OSError, ValueError):
            stream.flush()


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@contextmanager
def library_output_to(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 write to ``path`` for the block, then back to where they pointed.
    Below ``sys.stdout``: logging handlers, ``print``, tqdm, C extensions and child processes all
    follow, and Python-level wrappers (ZenML's log capture) keep seeing every write."""
    fds = [fd for fd in (1, 2) if _fd_open(fd)]
    path.parent.mkdir(parents=True, exist_ok=True)
    _flush_streams()
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = {fd: os.dup(fd) for fd in fds}
    try:
        for fd in fds:
            os.dup2(target, fd)
        yield
    finally:
        _flush_streams()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(target)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 writes where 2 does for the block: with ``--json`` and library output
    shown, a library's child process cannot put a line into the document's stream."""
    if not (_fd_open(1) and _fd_open(2)):
        yield
        return
    _flush_streams()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        _flush_streams()
        os.dup2(saved, 1)
        os.close(saved)


def log_path(settings: Settings, command: str) -> Path:
    """A fresh log file for this command in the state folder's ``logs/``; the oldest beyond
    ``KEEP_LOGS`` are removed (``make clean`` removes the folder with the rest of the state)."""
    folder = settings.state_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    old = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(0, len(old) - KEEP_LOGS + 1)]:
        stale.unlink(missing_ok=True)
    return folder / f"{command}-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"


def count_rows(path: Path) -> int | None:
    """The rows of a batch input, for the bar's total: Parquet's footer, or the lines of a CSV
    after its header (a quoted field with a newline makes the bar end early: it is a display);
    None when unknown."""
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if path.suffix.lower() == ".csv":
            lines, last = 0, b"\n"
            with path.open("rb") as f:
                while block := f.read(8 << 20):
                    lines += block.count(b"\n")
                    last = block[-1:]
            return max(0, lines + (last != b"\n") - 1)
    except (OSError, ValueError, ImportError):
        return None
    return None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _terminal() -> tuple[IO[str], bool]:
    """A stream on what stdout is now, that stays there while fds 1 and 2 are redirected: a
    duplicate of its descriptor (closed after), or the stream itself when it has none (in-process
    test runners), which then needs no protection."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return sys.stdout, False
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace"), True


@contextmanager
def pipeline_progress(
    settings: Settings,
    title: str,
    *,
    command: str,
    as_json: bool = False,
    total_rows: int | None = None,
) -> Iterator[PipelineProgress | None]:
    """Show the run inside the block (see the module's docstring); yields the progress (None with
    ``as_json``). Library loggers are set to the chosen level first and stay there."""
    level, shown = library_level(settings)
    apply_library_levels(level)
    path = None if shown else log_path(settings, command)
    with ExitStack() as stack:
        progress: PipelineProgress | None = None
        live: Any = None
        if not as_json:
            stream, owned = _terminal()
            if owned:
                stack.callback(stream.close)
            probe = Console(file=stream)
            console = Console(file=stream, width=probe.width, highlight=False)
            # a live table only on a real terminal (FORCE_COLOR makes rich call a pipe one)
            plain = shown or not (_isatty(stream) and console.is_interactive)
            progress = PipelineProgress(title, console, plain=plain, total_rows=total_rows)
            if plain:
                progress.print_line(title)
            else:
                from rich.live import Live

                # not redirect_stdout/stderr: a Python-level write would then reach the terminal
                live = Live(
                    progress,
                    console=console,
                    refresh_per_second=8,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
        stack.enter_context(_listening(STEP_LOGGER, _StepEvents(progress, level), logging.DEBUG))
        if progress is not None:
            stack.enter_context(_listening(ROWS_LOGGER, _RowEvents(progress), logging.DEBUG))
        failed = True
        try:
            with ExitStack() as inner:
                if path is not None:
                    inner.enter_context(library_output_to(path))
                elif as_json:
                    inner.enter_context(stdout_to_stderr())
                if live is not None:
                    inner.enter_context(live)
                try:
                    yield progress
                    failed = False
                finally:
                    if progress is not None:
                        progress.finish(failed)
        finally:
            if path is not None and path.exists() and not path.stat().st_size:
                path.unlink()  # nothing was written: no file to look for
            elif failed and path is not None and path.exists():
                Console(stderr=True, highlight=False).print(
                    f"library output of this run: {path}", soft_wrap=True
                )
