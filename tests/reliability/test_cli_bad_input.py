"""The CLI fed wrong files, unknown versions and malformed JSON: one clear message, a non-zero exit
code (2 usage, 3 gate failed, 4 not found, 5 refused), never a traceback. Every case runs in-process
(Typer's CliRunner: an uncaught exception is a failure); one case of each exit code also runs as a
real `mlops` subprocess. All against a registry holding a trained iris model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops.cli import app
from mlops.settings import get_settings
from tests.integration.processes import MLOPS

GOOD_ROW = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder with iris v1 in production, trained in a subprocess (no shared singletons)."""
    home = tmp_path_factory.mktemp("cli") / "state"
    code = (
        "from tests.support.training import train_register_promote\n"
        "from mlops.configure import configure_libraries\nfrom mlops.settings import Settings\n"
        f"train_register_promote(configure_libraries(Settings(home={str(home)!r})), 'iris')\n"
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
    stacks = root / "stacks"
    stacks.mkdir()
    (stacks / "broken.yaml").write_text("name: [unclosed\n")
    (stacks / "scalar.yaml").write_text("just a string\n")
    (stacks / "nameless.yaml").write_text("components:\n  orchestrator: {flavor: local}\n")
    for name, content in made.items():
        (root / name).write_bytes(content)
    (root / "a-directory.csv").mkdir()
    (root / "a-directory.parquet").mkdir()
    pd.DataFrame({"colour": ["red", "blue"], "size": [1, 2]}).to_csv(root / "wrong-columns.csv", index=False)
    pd.DataFrame(
        {
            "sepal_length": ["a", "b"],
            "sepal_width": [1.0, 2.0],
            "petal_length": [1.0, 2.0],
            "petal_width": [0.1, 0.2],
        }
    ).to_csv(root / "wrong-types.csv", index=False)
    pd.DataFrame({"colour": ["red"], "size": [1]}).to_parquet(root / "wrong-columns.parquet")
    pd.DataFrame([json.loads(GOOD_ROW)]).to_csv(root / "good.csv", index=False)
    made_here = [
        "a-directory.csv",
        "a-directory.parquet",
        "wrong-columns.csv",
        "wrong-types.csv",
        "wrong-columns.parquet",
        "good.csv",
        "stacks",
    ]
    return {name: root / name for name in [*made, *made_here]}


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
    ("monitor every a bad duration", ["monitor", "--every", "5d"], 2, "is not a duration"),
    ("JSON null", ["predict", "null"], 2, "JSON object"),
    ("JSON unknown field", ["predict", GOOD_ROW.replace("}", ', "petal_colour": 1}')], 2, "petal_colour"),
    ("JSON value out of range", ["predict", GOOD_ROW.replace("5.1", "1e999")], 2, "sepal_length"),
    ("empty argument", ["predict", ""], 2, "not valid JSON"),
    ("unknown project (predict)", ["predict", GOOD_ROW, "--project", "nope"], 2, "unknown project"),
    ("unknown project (models)", ["models", "--project", "nope"], 2, "unknown project"),
    ("unknown project (status)", ["status", "--project", "nope"], 2, "unknown project"),
    ("version not a number", ["promote", "abc", "--reason", "x", "--approver", "a"], 4, "no version abc"),
    ("unknown target alias", ["promote", "1", "--to", "everywhere"], 2, "cannot promote to"),
    ("production without approver", ["promote", "1", "--reason", "x"], 5, "needs an approver"),
    ("unknown alias (rollback)", ["rollback", "--alias", "weird", "--reason", "x"], 5, "'weird'"),
    ("unknown version (lineage)", ["lineage", "999"], 4, "no version 999"),
    ("negative limit", ["audit", "--limit", "-5"], 2, "--limit"),
    ("generate for iris", ["generate", "--output", "x.csv"], 2, "no data generator"),
    ("generate another format", ["generate", "--project", "readmission", "--output", "x.txt"], 2, "x.txt"),
    (
        "generate into a directory",
        ["generate", "--project", "readmission", "--output", "{f:a-directory.csv}", "--rows", "5"],
        2,
        "is a directory",
    ),
    (
        "generate zero rows",
        ["generate", "--project", "readmission", "--output", "y.csv", "--rows", "0"],
        2,
        "--rows",
    ),
    ("Parquet, wrong columns", ["batch-predict", "{f:wrong-columns.parquet}"], 3, "sepal_length"),
    (
        "wrong columns for readmission",
        ["batch-predict", "{f:wrong-columns.csv}", "--project", "readmission"],
        3,
        "lacks the column",
    ),
    (
        "unknown alias (batch)",
        ["batch-predict", "{f:good.csv}", "--alias", "nowhere"],
        4,
        "holds alias 'nowhere'",
    ),
    ("unknown alias (drift)", ["drift", "--alias", "nowhere"], 4, "holds alias 'nowhere'"),
    ("wrong columns to drift", ["drift", "--input", "{f:wrong-columns.csv}"], 3, "missing column(s)"),
    (
        "batch output into a directory",
        ["batch-predict", "{f:good.csv}", "--output", "{f:a-directory.parquet}"],
        2,
        "is a directory",
    ),
    ("batch output not Parquet", ["batch-predict", "{f:good.csv}", "--output", "out.csv"], 2, "out.csv"),
    ("a directory to drift", ["drift", "--input", "{f:a-directory.csv}"], 2, "not a file"),
    ("text as Parquet (drift)", ["drift", "--input", "{f:not-parquet.parquet}"], 2, "cannot read"),
    ("malformed stack YAML", ["stack", "apply", "broken", "--config-dir", "{f:stacks}"], 2, "not a stack"),
    (
        "stack file of another shape",
        ["stack", "apply", "scalar", "--config-dir", "{f:stacks}"],
        2,
        "not a stack",
    ),
    (
        "stack without a name",
        ["stack", "apply", "nameless", "--config-dir", "{f:stacks}"],
        2,
        "'name'",
    ),
]
# One real subprocess for each kind of error: usage (ours and Typer's), gate, not found, refused.
SUBPROCESS = {
    "malformed JSON",
    "negative limit",
    "wrong columns",
    "unknown version (promote)",
    "unknown alias (drift)",
    "nothing to roll back to",
    "malformed stack YAML",
}


def _argv(args: list[str], files: dict[str, Path]) -> list[str]:
    return [str(files[a[3:-1]]) if a.startswith("{f:") else a for a in args]


@pytest.mark.parametrize(("case", "args", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_in_process(
    case: str,
    args: list[str],
    code: int,
    words: str,
    home: Path,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    figures,
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.chdir(files["stacks"].parent)  # relative outputs land in the test's folder
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, _argv(args, files))
    finally:
        get_settings.cache_clear()
    figures(
        command=args[0], exit_code=result.exit_code, cases=len(CASES), commands=len({c[1][0] for c in CASES})
    )
    assert not result.exception or isinstance(result.exception, SystemExit), (
        f"{case}: uncaught {result.exception!r}"
    )
    said = result.stdout + result.stderr
    assert "Traceback" not in said, said[-3000:]
    assert result.exit_code == code, f"{case}: exit {result.exit_code}\n{said[-2000:]}"
    assert words in said, f"{case}: {said[-2000:]}"


@pytest.mark.parametrize(
    ("case", "args", "code", "words"),
    [c for c in CASES if c[0] in SUBPROCESS],
    ids=sorted(SUBPROCESS, key=[c[0] for c in CASES].index),
)
def test_bad_input_as_a_subprocess(
    case: str, args: list[str], code: int, words: str, home: Path, files: dict[str, Path], figures
) -> None:
    out = subprocess.run(
        [MLOPS, *_argv(args, files)], env=_env(home), capture_output=True, text=True, timeout=300
    )
    said = out.stdout + out.stderr
    figures(command=args[0], exit_code=out.returncode)
    assert "Traceback" not in said, said[-3000:]
    assert out.returncode == code, f"{case}: exit {out.returncode}\n{said[-2000:]}"
    assert words in out.stderr, f"{case}: {out.stderr[-2000:]}"
