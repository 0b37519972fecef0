"""What the long commands print: plain step lines off a terminal, a live table on one, no library
output unless asked (``--verbose``, ``MLOPS_LOG_LEVEL``), and ``--json`` that stays a document.

Step events are fed as ZenML's step launcher writes them (its logger, its messages); the commands
run as real ``mlops`` processes. ``tests/pipeline/test_cli_progress.py`` drives a real training run
in a pseudo-terminal."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from mlops.cli import progress
from mlops.cli.progress import ROWS_LOGGER, STEP_LOGGER, PipelineProgress, pipeline_progress

ANSI = re.compile(r"\x1b\[")
DURATION = r"(\d+\.\d s|\d+ min \d\d s)"
LIBRARY_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d [A-Z]+ ", re.M)  # MLflow's and alembic's format
MLFLOW_DB_LINE = "Creating initial MLflow database tables"  # MLflow's INFO line on a fresh database


def _launcher() -> logging.Logger:
    return logging.getLogger(STEP_LOGGER)


def test_plain_lines_name_each_step_with_its_state_and_duration(settings, capfd) -> None:
    with pipeline_progress(settings, "training iris", command="test") as shown:
        assert shown is not None and shown.plain  # stdout is not a terminal here
        _launcher().info("Step `load_data` has started.")
        time.sleep(0.05)
        _launcher().info("Step `load_data` has finished in `0.050s`.")
        _launcher().info("Using cached version of step `split_data`.")
        _launcher().info("Skipping step `export_onnx`.")
        _launcher().info("Step `train_model` has started.")
        _launcher().error("Failed to run step `train_model`: %s", "boom")
    out = capfd.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "training iris"
    assert lines[1] == "step load_data running"
    assert re.fullmatch(r"step load_data completed in 0\.\d s", lines[2]), lines[2]
    assert lines[3:6] == ["step split_data cached", "step export_onnx skipped", "step train_model running"]
    assert re.fullmatch(rf"step train_model failed in {DURATION}", lines[6]), lines[6]
    assert re.fullmatch(rf"training iris: failed \(4 steps, {DURATION}\)", lines[7]), lines[7]
    assert not ANSI.search(out)
    assert "Step `" not in out  # ZenML's own lines stay below the WARNING shown by default


def test_the_live_table_shows_steps_durations_and_the_row_bar() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    shown = PipelineProgress("scoring big.csv", console, plain=False, total_rows=1000)
    handler = progress._StepEvents(shown, logging.WARNING)
    rows = progress._RowEvents(shown)
    for message in ("Step `resolve_model` has started.", "Step `resolve_model` has finished in `1s`."):
        handler.emit(_launcher().makeRecord(STEP_LOGGER, logging.INFO, "", 0, message, (), None))
    handler.emit(
        _launcher().makeRecord(STEP_LOGGER, logging.INFO, "", 0, "Step `score_batch` has started.", (), None)
    )
    rows.emit(
        logging.getLogger(ROWS_LOGGER).makeRecord(
            ROWS_LOGGER, 10, "", 0, "", (), None, extra={"rows_scored": 250}
        )
    )
    console.print(shown)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert re.search(r"✓\s+resolve_model\s+completed\s+\d+\.\d s", text), text
    assert re.search(r"score_batch\s+running\s+\d+\.\d s", text), text
    assert "250 / 1,000 rows" in text
    assert "scoring big.csv" in text


def test_library_output_goes_to_the_log_file_not_the_terminal(tmp_path) -> None:
    """Every way a library writes: Python's streams, logging, the raw descriptors, a child process
    (in a process of its own: pytest's capture replaces the streams)."""
    log = tmp_path / "run.log"
    code = f"""
import logging, os, subprocess, sys
from pathlib import Path
from mlops.cli.progress import library_output_to
logging.basicConfig()
with library_output_to(Path({str(log)!r})):
    print("print to stdout")
    print("print to stderr", file=sys.stderr)
    os.write(1, b"raw fd 1\\n")
    os.write(2, b"raw fd 2\\n")
    subprocess.run(["echo", "child process"], check=True)
    logging.getLogger("mlflow.test").warning("a library warning")
print("after the block")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    written = (
        "print to stdout",
        "print to stderr",
        "raw fd 1",
        "raw fd 2",
        "child process",
        "a library warning",
    )
    for line in written:
        assert line in log.read_text()
        assert line not in out.stdout + out.stderr
    assert out.stdout == "after the block\n"  # the descriptors are back


def test_with_json_and_library_output_shown_stdout_keeps_only_the_document() -> None:
    code = """
import os, subprocess
from mlops.cli.progress import stdout_to_stderr
with stdout_to_stderr():
    print("a library line", flush=True)
    os.write(1, b"raw fd 1\\n")
    subprocess.run(["echo", "child process"], check=True)
print('{"document": true}')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"document": True}
    assert out.stderr.splitlines() == ["a library line", "raw fd 1", "child process"]


def test_count_rows_of_csv_and_parquet(tmp_path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": range(1234), "b": ["x"] * 1234})
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_parquet(tmp_path / "f.parquet")
    (tmp_path / "no-newline.csv").write_text("a,b\n1,2\n3,4")
    assert progress.count_rows(tmp_path / "f.csv") == 1234
    assert progress.count_rows(tmp_path / "f.parquet") == 1234
    assert progress.count_rows(tmp_path / "no-newline.csv") == 2
    assert progress.count_rows(tmp_path / "missing.csv") is None


def test_a_bad_log_level_is_a_usage_error(settings) -> None:
    from mlops.errors import UsageError

    with pytest.raises(UsageError, match="MLOPS_LOG_LEVEL='loud'") as caught:
        progress.library_level(settings.model_copy(update={"log_level": "loud"}))
    assert caught.value.hint and "DEBUG, INFO" in caught.value.hint
    assert progress.library_level(settings.model_copy(update={"log_level": "info"})) == (logging.INFO, True)
    assert progress.library_level(settings) == (logging.WARNING, False)


# ----- the real command line -----


def _mlops(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`mlops reproduce 1` on a fresh state folder: MLflow creates its database (an INFO line of
    its own) inside the progress block, then the command fails with our NotFound."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return subprocess.run(
        [sys.executable, "-m", "mlops", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={
            **base,
            "MLOPS_HOME": str(home),
            "ZENML_CONFIG_PATH": str(home / "zenml"),
            "COLUMNS": "300",
            **env,
        },
    )


def test_quiet_by_default(tmp_path) -> None:
    out = _mlops(tmp_path / "state", "reproduce", "1")
    assert out.returncode == 4, out.stderr
    assert MLFLOW_DB_LINE not in out.stdout + out.stderr
    assert not LIBRARY_LINE.search(out.stdout + out.stderr)
    assert out.stdout.splitlines()[0] == "re-training iris version 1"
    assert re.search(rf"re-training iris version 1: failed \({DURATION}\)", out.stdout)
    assert "error: model 'iris-classifier' has no version 1" in out.stderr
    assert not ANSI.search(out.stdout + out.stderr)


@pytest.mark.parametrize("args", [("--verbose", "reproduce", "1"), ("reproduce", "1", "--verbose")])
def test_verbose_lets_library_lines_through(tmp_path, args) -> None:
    out = _mlops(tmp_path / "state", *args)
    assert out.returncode == 4, out.stderr
    assert MLFLOW_DB_LINE in out.stderr
    assert "error: model 'iris-classifier' has no version 1" in out.stderr


def test_mlops_log_level_is_honoured(tmp_path) -> None:
    shown = _mlops(tmp_path / "info", "reproduce", "1", MLOPS_LOG_LEVEL="INFO")
    assert MLFLOW_DB_LINE in shown.stderr
    above = _mlops(tmp_path / "error", "reproduce", "1", MLOPS_LOG_LEVEL="ERROR")
    assert above.returncode == 4
    assert MLFLOW_DB_LINE not in above.stdout + above.stderr
    bad = _mlops(tmp_path / "bad", "reproduce", "1", MLOPS_LOG_LEVEL="LOUD")
    assert bad.returncode == 2
    assert "MLOPS_LOG_LEVEL='LOUD' is not a log level" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_json_stays_a_document_on_stdout(tmp_path) -> None:
    out = _mlops(tmp_path / "state", "status", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["project"] == "iris"
    failed = _mlops(tmp_path / "state", "reproduce", "1", "--json")
    assert failed.returncode == 4
    assert failed.stdout == ""  # no progress, no library line: nothing but a document, and none here
    assert MLFLOW_DB_LINE not in failed.stderr
