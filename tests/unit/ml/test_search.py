"""The hyperparameter search (mlops.ml.search): the rows its trials read, studies shared by processes,
and Optuna's tables beside ours on one PostgreSQL database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from mlops.data.split import split
from mlops.governance.sealed import carve
from mlops.ml import search
from mlops.projects import get_project
from mlops.spec import Distribution

ROOT = Path(__file__).resolve().parents[3]
PG = "postgresql://postgres@127.0.0.1:5432"


def _splits(settings, spec) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, holdout, sealed) as the pipeline makes them, each row carrying its load position."""
    frame = spec.load(settings)
    frame["row_id"] = range(len(frame))  # not a feature: the model never sees it, the probe does
    rest, sealed = carve(settings, spec, frame)
    train, holdout = split(rest, spec.target, settings.test_size, settings.seed)
    return train, holdout, sealed.frame


def test_no_trial_reads_the_holdout_or_the_sealed_slice(settings, tmp_path) -> None:
    spec = get_project("iris")
    train, holdout, sealed = _splits(settings, spec)
    seen: dict[int, set[int]] = {}

    def probe(trial: int, fit_rows: pd.DataFrame, valid_rows: pd.DataFrame) -> None:
        assert not set(fit_rows["row_id"]) & set(valid_rows["row_id"])  # a fold never scores its fit rows
        seen.setdefault(trial, set()).update(fit_rows["row_id"], valid_rows["row_id"])

    storage = search.open_storage("", tmp_path)
    result = search.run_search(spec, train, seed=0, storage=storage, n_trials=3, on_fold=probe)

    assert result.complete_trials == 3 and sorted(seen) == [0, 1, 2]
    ids = {"train": set(train["row_id"]), "holdout": set(holdout["row_id"]), "sealed": set(sealed["row_id"])}
    assert ids["train"] and ids["holdout"] and ids["sealed"]
    for rows in seen.values():
        assert rows == ids["train"]  # every training row, through the folds
        assert not rows & ids["holdout"] and not rows & ids["sealed"]
    assert set(result.best_params) == set(spec.search.parameters)


def test_the_best_parameters_build_the_model(tmp_path) -> None:
    spec = get_project("readmission")
    chosen = search.with_params(spec, {"max_leaf_nodes": 9, "learning_rate": 0.05})
    estimator = chosen.build_model(chosen, 0)[-1]
    assert (estimator.max_leaf_nodes, estimator.learning_rate, estimator.max_iter) == (9, 0.05, 100)
    assert search.with_params(spec, {}) is spec
    assert spec.build_model(spec, 0)[-1].max_leaf_nodes == 15  # the spec itself keeps its defaults


def test_a_study_is_named_by_its_rows_space_and_seed(settings) -> None:
    spec = get_project("iris")
    frame = spec.load(settings)
    name = search.study_name(spec, frame, 1)
    assert name == search.study_name(spec, frame.copy(), 1) and name.startswith("iris-")
    assert name != search.study_name(spec, frame.iloc[1:], 1)
    assert name != search.study_name(spec, frame, 2)


def test_bad_search_requests_are_refused(settings, tmp_path) -> None:
    with pytest.raises(ValueError, match="bad range"):
        Distribution("float", 1.0, 0.5)
    with pytest.raises(ValueError, match="log"):
        Distribution("float", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="choices"):
        Distribution("categorical")
    spec = get_project("iris")
    with pytest.raises(ValueError, match="at least 1"):
        search.run_search(
            spec, spec.load(settings), seed=0, storage=search.open_storage("", tmp_path), n_trials=0
        )


def test_a_rerun_joins_its_study_and_adds_only_missing_trials(settings, tmp_path) -> None:
    spec = get_project("iris")
    frame = spec.load(settings)
    first = search.run_search(spec, frame, seed=0, storage=search.open_storage("", tmp_path), n_trials=2)
    again = search.run_search(spec, frame, seed=0, storage=search.open_storage("", tmp_path), n_trials=2)
    more = search.run_search(spec, frame, seed=0, storage=search.open_storage("", tmp_path), n_trials=3)
    assert (first.complete_trials, again.complete_trials, more.complete_trials) == (2, 2, 3)
    assert again.best_params == first.best_params and again.study_name == first.study_name
    assert search.journal_path(tmp_path).stat().st_size > 0


WORKER = """
import json, sys, time
from pathlib import Path
from mlops.ml import search
from mlops.projects import get_project
from mlops.settings import Settings

url, state, out = sys.argv[1], Path(sys.argv[2]), sys.argv[5]
index, trials = int(sys.argv[3]), int(sys.argv[4])
spec = get_project("iris")
frame = spec.load(Settings())
storage = search.open_storage(url, state)
(state / f"ready{index}").touch()
while not (state / "go").exists():
    time.sleep(0.01)
result = search.run_search(spec, frame, seed=0, storage=storage, n_trials=trials, name="shared", worker=index)
Path(out).write_text(json.dumps(result.as_dict()))
"""


def _two_workers(url: str, state: Path, trials: int) -> list[dict]:
    """Two real processes join study "shared" at ``url`` (journal file when empty), started together."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(state), str(i), str(trials), str(state / f"out{i}.json")],
            cwd=ROOT,
        )
        for i in range(2)
    ]
    while not all((state / f"ready{i}").exists() for i in range(2)):
        assert all(p.poll() is None for p in procs), "a worker died before the start"
        time.sleep(0.05)
    (state / "go").touch()
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    return [json.loads((state / f"out{i}.json").read_text()) for i in range(2)]


def _check_shared(outs: list[dict], storage, trials: int) -> None:
    import optuna
    from optuna.trial import TrialState

    complete = optuna.load_study(study_name="shared", storage=storage).get_trials(
        states=(TrialState.COMPLETE,)
    )
    # every requested trial completed; each worker stops when complete + running trials reach the
    # budget, so at most one more than asked (both checking at the same instant)
    assert trials <= len(complete) <= trials + 1
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) == 2  # both processes ran trials of the one study
    assert sum(o["trials_here"] for o in outs) == len(complete)
    assert all(o["best_value"] == max(t.value for t in complete) for o in outs)  # one best, seen by both


def test_two_processes_complete_one_study_in_a_journal_file(tmp_path) -> None:
    outs = _two_workers("", tmp_path, trials=8)
    _check_shared(outs, search.open_storage("", tmp_path), trials=8)


@pytest.fixture
def postgres_db():
    """A new database on the machine's PostgreSQL; the test FAILS (never skips) when it is missing."""
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    name = f"mlops_search_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL needed on 127.0.0.1:5432 (user postgres, trust): {exc.orig}")
    try:
        yield f"{PG}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def test_two_processes_share_a_postgres_study_beside_our_tables(postgres_db, tmp_path) -> None:
    """Server mode: Optuna's RDB tables and its ``alembic_version`` live beside our control tables
    and our ``mlops_alembic_version`` in one database; neither migration disturbs the other."""
    from mlops.stores import migrate

    migrate.upgrade(postgres_db, ["control"])
    outs = _two_workers(postgres_db, tmp_path, trials=6)
    _check_shared(outs, search.open_storage(postgres_db, tmp_path), trials=6)

    engine = sa.create_engine(postgres_db)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            optuna_version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
            ours = migrate.current_heads(conn)
    finally:
        engine.dispose()
    assert migrate.VERSION_TABLE != "alembic_version"
    assert {"studies", "trials", "alembic_version", migrate.VERSION_TABLE, "audit_log"} <= tables
    assert len(optuna_version) == 1 and optuna_version[0] not in ours
    assert ours == migrate.script_heads(["control"])
    assert not migrate.upgrade(postgres_db, ["control"]).changed  # our head, untouched by Optuna's tables
    migrate.check(postgres_db, ["control"])  # and our models still match our migrations
