"""Docs that cannot drift from what was measured or from the code they describe.

Every table with figures in docs/benchmarks.md and docs/reliability.md (and any doc a table of
benchmarks/tables.py names) is generated from benchmarks/results/*.json: a committed table that
differs from its JSON fails here, through the same code that ``make bench`` / ``make reliability``
run to rewrite them. A hand-written table with numbers, a results file that is gone, and a test or
script a doc names that no longer exists fail too.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from benchmarks import tables

ROOT = tables.ROOT
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
# a path under one of the repository's code roots, optionally ::a_function (parameters stripped)
PATH = re.compile(r"(?<![\w/.])((?:tests|benchmarks|src)/[\w./-]*\w)(?:::(\w+))?")
BARE_TEST_FILE = re.compile(r"`(test_\w+\.py)`")


def _function_exists(path: Path, name: str) -> bool:
    return re.search(rf"^(?:async )?def {name}\(", path.read_text(), re.MULTILINE) is not None


def test_committed_tables_match_their_json() -> None:
    diffs = tables.differences()
    assert not diffs, "".join(diffs.values()) + "\nrun: python benchmarks/tables.py"


def test_a_figure_changed_in_its_json_fails_the_check(tmp_path: Path) -> None:
    """The check above can fail: one figure changed in a copy of the results, the diff names it."""
    results = tmp_path / "results"
    shutil.copytree(tables.RESULTS, results)
    serving = json.loads((results / "serving-iris.json").read_text())
    serving["median"]["ours"]["p99_ms"] = 123.4
    (results / "serving-iris.json").write_text(json.dumps(serving))
    diffs = tables.differences(results)
    assert list(diffs) == ["docs/benchmarks.md"]
    assert "123.4" in diffs["docs/benchmarks.md"]
    assert "**not met**" in diffs["docs/benchmarks.md"]  # the goals' verdict follows the figure


@pytest.mark.parametrize("doc", tables.docs())
def test_every_figure_table_is_generated(doc: str) -> None:
    """Outside the generated blocks (and code examples) no table line carries a digit."""
    text = FENCE.sub("", tables.BLOCK.sub("", (ROOT / doc).read_text()))
    typed = [line for line in text.splitlines() if line.lstrip().startswith("|") and re.search(r"\d", line)]
    assert not typed, f"{doc}: hand-written figures, generate them in benchmarks/tables.py: {typed}"


@pytest.mark.parametrize("doc", tables.docs())
def test_every_table_of_the_generator_has_its_block_and_names_existing_results(doc: str) -> None:
    text = (ROOT / doc).read_text()
    blocks = {m["name"]: m["body"] for m in tables.BLOCK.finditer(text)}
    assert sorted(blocks) == sorted(t.name for t in tables.TABLES if t.doc == doc)
    for name, body in blocks.items():
        named = re.findall(r"benchmarks/results/([\w.-]+\.json)", body)
        assert named, f"{doc}: block {name} names no results file"
        assert not [f for f in named if not (tables.RESULTS / f).is_file()], (doc, name, named)


def test_an_unknown_or_missing_block_is_an_error() -> None:
    doc = "docs/benchmarks.md"
    text = (ROOT / doc).read_text()
    unknown = text + "\n" + tables.START.format(name="nowhere") + "\n" + tables.END + "\n"
    with pytest.raises(SystemExit, match="nowhere"):
        tables.rewrite(doc, unknown, tables.RESULTS)
    without = tables.BLOCK.sub("", text, count=1)
    with pytest.raises(SystemExit, match="no generated block for goals"):
        tables.rewrite(doc, without, tables.RESULTS)


def test_every_test_the_reliability_table_reads_exists() -> None:
    for attack in tables.ATTACKS:
        path, function = attack.test.split("::")
        assert (ROOT / path).is_file(), attack.test
        assert _function_exists(ROOT / path, function), f"{attack.test} no longer exists"


def test_every_figure_the_reliability_table_needs_is_recorded_by_its_test() -> None:
    """A row needs keys its test passes to ``figures(...)``: renamed keys would leave the row empty
    after the next ``make reliability``, so they fail here first."""
    for attack in tables.ATTACKS:
        path, function = attack.test.split("::")
        source = (ROOT / path).read_text()
        body = source[source.index(f"def {function}(") :]
        body = (
            body[: m.start() + 4] if (m := re.search(r"^(?:async )?def ", body[4:], re.MULTILINE)) else body
        )
        missing = [key for key in attack.needs if not re.search(rf"\b{key}=", body)]
        assert not missing, f"{attack.test} records no {missing} (benchmarks/tables.py ATTACKS)"


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_test_and_script_a_doc_names_exists(doc: Path) -> None:
    text = doc.read_text()
    missing = []
    for match in PATH.finditer(text):
        path, function = ROOT / match[1], match[2]
        if not path.exists():
            missing.append(match[1])
        elif function and not _function_exists(path, function):
            missing.append(f"{match[1]}::{function}")
    for name in BARE_TEST_FILE.findall(text):
        if not list((ROOT / "tests").rglob(name)):
            missing.append(name)
    assert not missing, f"{doc.name} names what does not exist: {missing}"
