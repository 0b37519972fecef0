"""In-process CPU per ``POST /predict`` request: a baseline commit's service against this tree's.

The baseline's ``src/`` (and its ``tests/support`` fixture builders, when it has them) is exported
with ``git archive`` into a temporary folder (nothing is written to the repository). Each version
trains its iris model (the same seed and data) into its own temporary state folder with its own
code, since a state folder written by one version's stores is not always readable by another's;
each version is then imported in its own subprocess (``PYTHONPATH`` puts its ``src/`` first) that:

1. builds the app with ``create_app(settings)`` and runs its real lifespan (model loaded from the
   registry, prediction log writing to SQLite);
2. answers the same list of requests (good, malformed, wrongly typed, wrong key, ...), whose
   status, body and headers the parent compares between the two versions (request ids aside);
3. drives single-row predictions through the ASGI app with a minimal ASGI client (no HTTP, no
   httpx: its own cost would dominate), ``--warmup`` of them first, then ``--requests`` in
   ``SEGMENTS`` segments, and reports ``time.process_time()`` per request in microseconds (every
   thread of the process: the log writer's thread included).

Each run starts a fresh process per version; their segments alternate (before, after, before,
...), so the machine's other load hits both alike; a run's figure is the median of its segments.
``--runs`` runs, figures are medians over runs.
Acceptance (issue 10): after <= 1.10 x before.

    .venv/bin/python benchmarks/predict_cpu.py [--baseline 343c736] [--runs 5] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import PIPE
from typing import Any

from baseline import export_tree

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "343c736"  # main when the one-route /predict work started (LeanPredict still there)
EXAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
PREDICT_KEY = "bench-predict-key"
JSON = [(b"content-type", b"application/json")]
KEY = [(b"x-api-key", PREDICT_KEY.encode())]
SEGMENTS = 10

Headers = list[tuple[bytes, bytes]]


def row(**changes: Any) -> bytes:
    return json.dumps({k: v for k, v in {**EXAMPLE, **changes}.items() if v != "<drop>"}).encode()


def typed(content_type: bytes) -> Headers:
    return [(b"content-type", content_type), *KEY]


OK = row()
ROWS = {"rows": [EXAMPLE, {**EXAMPLE, "petal_width": "x"}]}
# (name, path, body, headers): what both versions must answer alike (the service has a predict key)
CASES: list[tuple[str, str, bytes, Headers]] = [
    ("ok", "/predict", OK, JSON + KEY),
    ("ok, no content type", "/predict", OK, KEY),
    ("ok, charset", "/predict", OK, typed(b"application/json; charset=utf-8")),
    ("ok, +json", "/predict", OK, typed(b"application/vnd.api+json")),
    ("text/plain", "/predict", OK, typed(b"text/plain")),
    ("form", "/predict", b"a=1", typed(b"application/x-www-form-urlencoded")),
    ("no key", "/predict", OK, JSON),
    ("wrong key", "/predict", OK, [*JSON, (b"x-api-key", b"nope")]),
    ("no key, malformed", "/predict", b'{"sepal_length": 5.1,', JSON),
    ("no key, invalid field", "/predict", row(sepal_length="x"), JSON),
    ("malformed", "/predict", b'{"sepal_length": 5.1,', JSON + KEY),
    ("empty", "/predict", b"", JSON + KEY),
    ("not json", "/predict", b"not json", JSON + KEY),
    ("trailing", "/predict", b'{"sepal_length": 5.1}}', JSON + KEY),
    ("not utf-8", "/predict", b"\xff\xfe", JSON + KEY),
    ("latin-1", "/predict", '{"sepal_length": "\u00e9"}'.encode("latin-1"), JSON + KEY),
    ("NaN", "/predict", OK.replace(b"5.1", b"NaN"), JSON + KEY),
    ("-Infinity", "/predict", OK.replace(b"5.1", b"-Infinity"), JSON + KEY),
    ("1e400", "/predict", OK.replace(b"5.1", b"1e400"), JSON + KEY),
    ("integer", "/predict", row(sepal_length=5), JSON + KEY),
    ("duplicate key", "/predict", b'{"sepal_length": "x", ' + OK[1:], JSON + KEY),
    ("missing", "/predict", row(petal_width="<drop>"), JSON + KEY),
    ("extra", "/predict", row(colour=1.0), JSON + KEY),
    ("string", "/predict", row(sepal_length="5.1"), JSON + KEY),
    ("boolean", "/predict", row(sepal_width=True), JSON + KEY),
    ("null", "/predict", row(sepal_width=None), JSON + KEY),
    ("above range", "/predict", row(petal_length=99.0), JSON + KEY),
    ("list", "/predict", b"[1, 2, 3]", JSON + KEY),
    ("json null", "/predict", b"null", JSON + KEY),
    ("batch", "/predict/batch", json.dumps({"rows": [EXAMPLE, EXAMPLE]}).encode(), JSON + KEY),
    ("batch, empty", "/predict/batch", b'{"rows": []}', JSON + KEY),
    ("batch, bad row", "/predict/batch", json.dumps(ROWS).encode(), JSON + KEY),
    ("batch, too many", "/predict/batch", json.dumps({"rows": [EXAMPLE] * 51}).encode(), JSON + KEY),
    ("batch, malformed", "/predict/batch", b'{"rows": [', JSON + KEY),
    ("batch, no key", "/predict/batch", json.dumps({"rows": [EXAMPLE]}).encode(), JSON),
    ("batch, text/plain", "/predict/batch", json.dumps({"rows": [EXAMPLE]}).encode(), typed(b"text/plain")),
]


# ----- a minimal ASGI client -----
async def call(
    app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode()), *headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    sent = False
    status, out_headers, chunks = 0, dict[str, str](), list[bytes]()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.update((k.decode(), v.decode()) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, out_headers, b"".join(chunks)


async def lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set_result(None)
        elif message["type"] == "lifespan.startup.failed":
            started.set_exception(RuntimeError(message.get("message")))

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)
    )
    await started
    return task, inbox


def comparable(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What must match between versions: ids differ per request, so they are only checked for shape."""
    rid = headers.get("x-request-id", "")
    text = body.decode("utf-8", "replace").replace(rid, "<id>") if rid else body.decode("utf-8", "replace")
    kept = {k: v for k, v in headers.items() if k not in {"x-request-id"}}
    return {"status": status, "headers": kept, "body": text, "request_id_ok": len(rid) == 32}


async def child(requests: int, warmup: int, check: bool) -> dict[str, Any]:
    from pydantic import SecretStr

    from mlops.serving.app import create_app
    from mlops.settings import get_settings

    update: dict[str, Any] = {"poll_interval_s": 3600.0, "max_batch_rows": 50}
    if check:
        update["predict_api_key"] = SecretStr(PREDICT_KEY)
    app = create_app(get_settings().model_copy(update=update))
    task, inbox = await lifespan(app)
    out: dict[str, Any] = {}
    if check:
        out["answers"] = {name: comparable(*await call(app, p, b, h)) for name, p, b, h in CASES}
    else:
        body = json.dumps(EXAMPLE).encode()
        for _ in range(warmup):
            await call(app, "/predict", body, JSON)
            await asyncio.sleep(0)  # lets the prediction log's writer run, as under a server
        print("ready", flush=True)
        # one segment per line on stdin (its size), answered on stdout: the parent alternates the
        # two versions segment by segment, so a burst of the machine's other load hits both alike
        while (line := sys.stdin.readline().strip()) != "quit":
            n = int(line)
            cpu = time.process_time()
            for _ in range(n):
                status, _, _ = await call(app, "/predict", body, JSON)
                assert status == 200, status
                await asyncio.sleep(0)
            print((time.process_time() - cpu) / n * 1e6, flush=True)
    await inbox.put({"type": "lifespan.shutdown"})
    await task
    return out


# ----- the parent -----
def _describe(src: Path) -> str:
    """``src`` as a reader can find it again: this checkout's commit (``+changes`` when dirty), or the
    folder's name for another tree."""
    if src.resolve() != (ROOT / "src").resolve():
        return src.name
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def environment(src: Path, state: Path) -> dict[str, str]:
    """``src`` first on the path, then the tree holding it (its ``tests.support``, if any), then this
    checkout (``tests.support`` of today for a baseline that has none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "PROMETHEUS_"))}
    path = os.pathsep.join(dict.fromkeys([str(src), str(src.parent), str(ROOT)]))
    env.update(
        PYTHONPATH=path,
        MLOPS_HOME=str(state),
        ZENML_CONFIG_PATH=str(state / "zenml"),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    return env


# Trains with whichever API the version has: configure_libraries + tests.support.training (today), or
# apply_environment + mlops.lifecycle (before 7f988d1 and 9e6b0aa).
TRAIN = """
try:
    from mlops.configure import configure_libraries
except ImportError:
    from mlops.settings import apply_environment as configure_libraries
try:
    from tests.support.training import train_register_promote
except ImportError:
    from mlops.lifecycle import train_register_promote
from mlops.settings import get_settings
train_register_promote(configure_libraries(get_settings()), "iris")
"""


def train(src: Path, state: Path, log: Path) -> None:
    """One promoted iris model in ``state``, trained by the version in ``src`` (output to ``log``)."""
    with log.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "-c", TRAIN],
            env=environment(src, state),
            cwd=state.parent,
            stdout=out,
            stderr=out,
        )
    if done.returncode:
        raise SystemExit(f"training with {src} failed:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def one_run(
    versions: dict[str, Path], states: dict[str, Path], requests: int, warmup: int
) -> dict[str, dict[str, Any]]:
    """A fresh process per version, warmed up; then ``SEGMENTS`` segments of each, alternating."""
    cmd = [sys.executable, __file__, "--child", "--warmup", str(warmup)]
    logs = {name: states[name].parent / f"child-{name}.log" for name in versions}
    procs = {}
    for name, src in versions.items():
        with logs[name].open("ab") as log:
            procs[name] = subprocess.Popen(
                cmd, env=environment(src, states[name]), cwd=states[name].parent,
                stdin=PIPE, stdout=PIPE, stderr=log, text=True,
            )  # fmt: skip
    segments: dict[str, list[float]] = {name: [] for name in versions}

    def answer(name: str) -> str:
        proc = procs[name]
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line:  # the child died: its own words say why
            raise SystemExit(f"{name} stopped answering:\n{_tail(logs[name])}")
        return line

    try:
        for name in procs:
            assert answer(name) == "ready", name
        for _ in range(SEGMENTS):
            for name, proc in procs.items():
                assert proc.stdin is not None
                proc.stdin.write(f"{requests // SEGMENTS}\n")
                proc.stdin.flush()
                segments[name].append(float(answer(name)))
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(60)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return {name: {"cpu_us": statistics.median(s), "segments_us": s} for name, s in segments.items()}


def run_child(src: Path, state: Path, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", *args]
    out = subprocess.run(cmd, env=environment(src, state), cwd=state.parent, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{src}: {out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help="commit of the 'before' version")
    parser.add_argument("--after", type=Path, default=ROOT / "src", help="src/ of the 'after' version")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict_cpu.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.requests, args.warmup, args.check))))
        return

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-predict-cpu-"))
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", args.baseline], capture_output=True, text=True, check=True
        ).stdout.strip()
        versions = {"before": export_tree(commit, work / "before") / "src", "after": args.after.resolve()}
        states = {name: work / name / "state" for name in versions}
        for name, src in versions.items():
            states[name].parent.mkdir(parents=True, exist_ok=True)
            train(src, states[name], states[name].parent / "train.log")
        answers = {name: run_child(src, states[name], "--check")["answers"] for name, src in versions.items()}
        differences = {
            case: {"before": answers["before"][case], "after": answers["after"][case]}
            for case in answers["before"]
            if answers["before"][case] != answers["after"][case]
        }
        print(f"answers: {len(answers['before'])} cases, {len(differences)} different", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in versions}
        for i in range(args.runs):
            for name, result in one_run(versions, states, args.requests, args.warmup).items():
                runs[name].append(result)
                print(f"run {i + 1} {name:6s} {result['cpu_us']:.1f} us CPU / request", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    median = {name: statistics.median(r["cpu_us"] for r in results) for name, results in runs.items()}
    report = {
        "baseline": commit,
        "after": _describe(args.after),
        "settings": {"runs": args.runs, "requests": args.requests, "warmup": args.warmup},
        "runs": runs,
        "median_cpu_us": median,
        "ratio_after_to_before": median["after"] / median["before"],
        "acceptance": "ratio <= 1.10",
        "same_answers": not differences,
        "differences": differences,
        "statuses": {case: answer["status"] for case, answer in answers["after"].items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {k: report[k] for k in ("median_cpu_us", "ratio_after_to_before", "same_answers")}, indent=2
        )
    )


if __name__ == "__main__":
    main()
