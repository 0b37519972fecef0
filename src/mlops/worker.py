"""The retrain runner: ``python -m mlops.worker`` with one of three verbs.

- ``loop`` (``mlops worker``, its own compose service and Kubernetes Deployment): claim the oldest
  queued job of the control database by compare-and-set, run it, repeat; every pass also fails the
  jobs whose runner stopped heartbeating (``stores/jobs.py``).
- ``run --job ID``: the local runner of the embedded default, started detached by the service that
  recorded job ID; it claims that one job, runs it and exits.
- ``train --project P --result FILE``: the training itself, in a child of the runner: it runs the
  training pipeline on the active ZenML stack (``mlops.runner.run_training``) and writes a structured
  result (``errors.JobResult`` as JSON) to FILE: the run's outputs, or the error as data. Exit code:
  0, the error's own exit code, or 1 for an unexpected failure.

A runner heartbeats every ``runner_heartbeat_s`` while its child trains, with the child's output as
the job's log tail; when its heartbeat is refused (the job was reaped: the runner was presumed dead)
it kills the child and writes nothing. The child dies with its runner (``PR_SET_PDEATHSIG``), so a
killed runner leaves no training behind; SIGTERM fails the running job at once ("runner stopped").
Settings come from the environment (``MLOPS_*``), as for every entry point.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import JobResult, MlopsError, error_data

if TYPE_CHECKING:
    from mlops.settings import Settings
    from mlops.stores.jobs import Job, JobStore

# The training child's argv; ``{project}`` and ``{result}`` are filled in per job.
TRAIN_COMMAND = [
    sys.executable,
    "-m",
    "mlops.worker",
    "train",
    "--project",
    "{project}",
    "--result",
    "{result}",
]
POLL_S = 2.0  # how often an idle ``loop`` looks for a queued job


def train(project: str) -> dict[str, Any]:
    """The training pipeline's outputs for ``project`` (the settings come from the environment)."""
    from mlops.configure import configure_libraries
    from mlops.runner import run_training
    from mlops.settings import Settings

    settings = configure_libraries(Settings())
    return run_training(settings, project)


JOBS = {"train": train}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the training child gets SIGKILL when its runner dies, however the runner died."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _fill(part: str, project: str, result: Path) -> str:
    """One argument of the training command with its placeholders filled (no ``str.format``: an
    inline script's own braces stay as they are)."""
    return part.replace("{project}", project).replace("{result}", str(result))


class Runner:
    """Runs claimed jobs, one at a time, each in a training child process."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        *,
        train_command: list[str] | None = None,
        alive_file: Path | None = None,
    ) -> None:
        from mlops.stores.jobs import LOG_LINES

        self.settings = settings
        self.store = store
        self.train_command = train_command or TRAIN_COMMAND
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self._lines = LOG_LINES
        self.alive_file = alive_file

    def _alive(self) -> None:
        """Touch the liveness file (a container healthcheck reads its age): the loop is not hung."""
        if self.alive_file is not None:
            self.alive_file.touch()

    def stop(self, *_: object) -> None:
        """SIGTERM/SIGINT: finish nothing new; the running job is failed and its child killed."""
        self.stopping.set()

    # ----- the job -----
    def run(self, job: Job) -> Job | None:
        """Train ``job`` (already claimed by this runner) and write its outcome; None when the job was
        taken from this runner meanwhile (reaped), so there was nothing to write."""
        log: deque[str] = deque(maxlen=self._lines)
        with tempfile.TemporaryDirectory(prefix="mlops-job-") as tmp:
            result_file = Path(tmp) / "result.json"
            argv = [_fill(part, job.project, result_file) for part in self.train_command]
            try:
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,  # the child dies with this runner
                )
            except OSError as exc:
                return self.store.fail(job.id, f"could not start the training: {exc}", runner=self.name)
            reader = threading.Thread(target=self._follow, args=(child, log), daemon=True)
            reader.start()
            code = self._supervise(job, child, log)
            reader.join(timeout=5)
            if code is None:  # refused heartbeat or stop: the child is gone
                if self.stopping.is_set():
                    return self.store.fail(
                        job.id,
                        "runner stopped (SIGTERM) while training",
                        runner=self.name,
                        log_tail=list(log),
                    )
                return None
            try:
                result = JobResult.read(result_file)
            except (OSError, ValueError, KeyError, TypeError):
                message = f"training exited with {code} without writing a result"
                result = JobResult(ok=False, error={"type": "MlopsError", "message": message})
        return self.store.finish(job.id, self.name, result, list(log))

    def _supervise(self, job: Job, child: subprocess.Popen[bytes], log: deque[str]) -> int | None:
        """Wait for the child, heartbeating; its exit code, or None when it had to be killed."""
        while True:
            try:
                return child.wait(timeout=self.settings.runner_heartbeat_s)
            except subprocess.TimeoutExpired:
                self._alive()
            if self.stopping.is_set() or not self.store.heartbeat(job.id, self.name, list(log)):
                child.kill()
                child.wait()
                return None

    @staticmethod
    def _follow(child: subprocess.Popen[bytes], log: deque[str]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            log.append(line.decode(errors="replace").rstrip())

    # ----- the verbs -----
    def run_one(self, job_id: str) -> Job | None:
        """The local runner: claim ``job_id`` (the service recorded it for us) and run it."""
        job = self.store.claim(self.name, pid=os.getpid(), job_id=job_id)
        if job is None:
            raise MlopsError(f"job {job_id!r} is not waiting for a runner (finished, or claimed by another)")
        return self.run(job)

    def loop(self, *, poll_s: float = POLL_S, once: bool = False) -> int:
        """Claim and run queued jobs until stopped (``once``: until none is left); the jobs run."""
        done = 0
        while not self.stopping.is_set():
            self._alive()
            self.store.reap(self.settings.runner_lease_s)
            job = self.store.claim(self.name, pid=os.getpid())
            if job is None:
                if once:
                    break
                self.stopping.wait(poll_s)
                continue
            print(f"job {job.id} ({job.project}): running", flush=True)
            ended = self.run(job)
            done += 1
            state = ended.state if ended else "taken from this runner (lease lapsed)"
            print(f"job {job.id} ({job.project}): {state}", flush=True)
        return done


def _train_main(args: argparse.Namespace) -> int:
    try:
        result = JobResult(ok=True, outputs=JOBS["train"](args.project))
        code = 0
    except MlopsError as exc:
        result, code = JobResult(ok=False, error=error_data(exc)), exc.exit_code
    except Exception as exc:  # still a result: the job shows what went wrong
        result, code = JobResult(ok=False, error=error_data(exc)), 1
    result.write(args.result)
    if result.error is not None:
        print(f"error: {result.error['message']}", file=sys.stderr)
    return code


def _runner(args: argparse.Namespace) -> Runner:
    from mlops.settings import Settings
    from mlops.stores.jobs import JobStore

    settings = Settings()
    command = json.loads(args.train_command) if args.train_command else None
    if command is not None and not (isinstance(command, list) and all(isinstance(p, str) for p in command)):
        raise MlopsError("--train-command must be a JSON list of strings", hint='e.g. ["python", "train.py"]')
    alive = getattr(args, "alive_file", None)
    runner = Runner(settings, JobStore.for_settings(settings), train_command=command, alive_file=alive)
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    return runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.worker", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    train_p = verbs.add_parser("train", help="run the training pipeline once, write the result to FILE")
    train_p.add_argument("--project", required=True)
    train_p.add_argument("--result", type=Path, required=True, help="JSON file to write the result to")
    command_help = 'the training child\'s argv as JSON, with "{project}" and "{result}" (tests)'
    run_p = verbs.add_parser("run", help="claim job ID (recorded by the service) and run it")
    run_p.add_argument("--job", required=True)
    run_p.add_argument("--train-command", default="", help=command_help)
    loop_p = verbs.add_parser("loop", help="claim and run queued jobs until stopped")
    loop_p.add_argument("--poll", type=float, default=POLL_S, help="seconds between looks when idle")
    loop_p.add_argument("--once", action="store_true", help="stop when no job is queued")
    loop_p.add_argument("--train-command", default="", help=command_help)
    loop_p.add_argument("--alive-file", type=Path, help="touched every pass and heartbeat (healthchecks)")
    args = parser.parse_args(argv)
    if args.verb == "train":
        return _train_main(args)
    try:
        runner = _runner(args)
        if args.verb == "run":
            ended = runner.run_one(args.job)
            return 0 if ended is not None and ended.state == "succeeded" else 1
        runner.loop(poll_s=args.poll, once=args.once)
        return 0
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
