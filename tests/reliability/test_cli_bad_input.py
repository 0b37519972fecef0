"""The CLI fed wrong files, unknown versions and malformed JSON: one clear line on stderr, a non-zero
exit code (2 usage, 3 gate failed, 4 not found, 5 refused), never a traceback. Real subprocesses
against a registry holding a trained iris model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.processes import MLOPS

GOOD_ROW = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder with iris v1 in production, trained in a subprocess (no shared singletons)."""
    home = tmp_path_factory.mktemp("cli") / "state"
    code = (
        "from mlops.lifecycle import train_register_promote\n"
        "from mlops.settings import Settings, apply_environment\n"
        f"train_register_promote(apply_environment(Settings(home={str(home)!r})), 'iris')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=_env(home), check=True, timeout=300)
    return home


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    # COLUMNS: rich wraps messages at the terminal width; one line per message keeps them greppable
    return {**env, "MLOPS_HOME": str(home), "ZENML_CONFIG_PATH": str(home / "zenml"), "COLUMNS": "400"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("files")
    made = {
        "empty.csv": b"",
        "binary.csv": bytes(range(256)) * 4,
        "not-parquet.parquet": b"this is not parquet",
        "notes.txt": b"hello",
    }
    for name, content in made.items():
        (root / name).write_bytes(content)
    (root / "a-directory.csv").mkdir()
    pd.DataFrame({"colour": ["red", "blue"], "size": [1, 2]}).to_csv(root / "wrong-columns.csv", index=False)
    pd.DataFrame(
        {
            "sepal_length": ["a", "b"],
            "sepal_width": [1.0, 2.0],
            "petal_length": [1.0, 2.0],
            "petal_width": [0.1, 0.2],
        }
    ).to_csv(root / "wrong-types.csv", index=False)
    return {name: root / name for name in [*made, "a-directory.csv", "wrong-columns.csv", "wrong-types.csv"]}


CASES: list[tuple[str, list[str], int, str]] = [
    # (case, arguments ({f:name} is a file from `files`), exit code, words the message must contain)
    ("malformed JSON", ["predict", "{not json"], 2, "not valid JSON"),
    ("JSON list, not an object", ["predict", "[1, 2, 3]"], 2, "JSON object"),
    ("JSON missing a field", ["predict", '{"sepal_length": 1}'], 2, "missing field 'sepal_width'"),
    ("JSON wrong type", ["predict", GOOD_ROW.replace("5.1", '"five"')], 2, "sepal_length"),
    ("unknown project", ["train", "--project", "nope"], 2, "unknown project 'nope'"),
    ("unknown alias", ["predict", GOOD_ROW, "--alias", "nowhere"], 4, "nowhere"),
    (
        "unknown version (promote)",
        ["promote", "999", "--reason", "x", "--approver", "a"],
        4,
        "no version 999",
    ),
    ("unknown version (reproduce)", ["reproduce", "999"], 4, "no version 999"),
    ("unknown request id", ["lineage", "no-such-request"], 4, "no-such-request"),
    ("nothing to roll back to", ["rollback", "--reason", "x"], 5, "no earlier 'production' version"),
    ("unknown stack", ["stack", "apply", "nowhere"], 4, "no stack file"),
    ("missing input file", ["batch-predict", "/nonexistent/input.csv"], 2, "does not exist"),
    ("a directory as input", ["batch-predict", "{f:a-directory.csv}"], 2, "not a file"),
    ("an empty file", ["batch-predict", "{f:empty.csv}"], 2, "empty"),
    ("binary junk as CSV", ["batch-predict", "{f:binary.csv}"], 2, "cannot read"),
    ("text as Parquet", ["batch-predict", "{f:not-parquet.parquet}"], 2, "cannot read"),
    ("unsupported format", ["batch-predict", "{f:notes.txt}"], 2, "unsupported format"),
    ("wrong columns", ["batch-predict", "{f:wrong-columns.csv}"], 3, "sepal_length"),
    ("wrong types", ["batch-predict", "{f:wrong-types.csv}"], 3, "sepal_length"),
    ("drift on a missing file", ["drift", "--input", "/nonexistent/batch.csv"], 2, "does not exist"),
]


@pytest.mark.parametrize(("case", "args", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_message_and_an_exit_code(
    case: str, args: list[str], code: int, words: str, home: Path, files: dict[str, Path], figures
) -> None:
    argv = [str(files[a[3:-1]]) if a.startswith("{f:") else a for a in args]
    out = subprocess.run([MLOPS, *argv], env=_env(home), capture_output=True, text=True, timeout=300)
    said = out.stdout + out.stderr
    figures(command=args[0], exit_code=out.returncode)
    assert "Traceback" not in said, said[-3000:]
    assert out.returncode == code, f"{case}: exit {out.returncode}\n{said[-2000:]}"
    assert words in out.stderr, f"{case}: {out.stderr[-2000:]}"
