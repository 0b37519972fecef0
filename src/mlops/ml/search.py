"""Hyperparameter search: Optuna trials, each scored by cross-validation on the training split only.

Pure: the rows a trial reads are the ``frame`` given (the pipeline passes its training split; the
evaluation holdout and the sealed governance slice never reach this module), and nothing here
writes to MLflow: callers log trials through Optuna callbacks (``mlops.tracking.log_trial``).

The study lives in shared storage so several processes or pods can join it: Optuna's RDB storage
when ``settings.search_storage`` is a database URL (server mode: Postgres, its own tables beside
ours), else a journal file under the state folder (Optuna advises against SQLite for parallel
optimisation; the journal file is safe for several processes on one file system). Every worker
that joins with the same study name adds trials until the study holds the requested number of
complete ones: each stops when the complete and running trials reach the budget (two workers
checking at the same instant may still end a study one trial over).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from mlops.spec import ProjectSpec, SearchSpace

# Metrics where lower is better; every other primary metric is maximised.
MINIMISED = frozenset({"log_loss", "brier"})

# ``on_fold(trial_number, fit_rows, valid_rows)``: called before each fold is fitted (a probe:
# tests record which rows each trial reads).
FoldProbe = Callable[[int, "pd.DataFrame", "pd.DataFrame"], None]


@dataclass(frozen=True)
class SearchResult:
    """What a search decided: the study's best trial (over every worker's trials) and a summary."""

    study_name: str
    storage: str
    direction: str
    metric: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    complete_trials: int
    trials_here: int  # trials this call completed (0: the study already held them all)
    seconds: float
    folds: int
    trials: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def journal_path(state_dir: Path) -> Path:
    return state_dir / "optuna" / "journal.log"


def open_storage(url: str, state_dir: Path) -> optuna.storages.BaseStorage:
    """Optuna's RDB storage for a database URL, else the journal file under ``state_dir``."""
    import optuna

    if url:
        return _rdb_storage(url)
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


# pg_advisory_lock key serialising the creation of Optuna's tables (any constant apart from ours).
_PG_CREATE_LOCK = 0x6F7074756E61  # "optuna"


def _rdb_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna's RDB storage; on PostgreSQL its first-use table creation under an advisory lock:
    two workers starting together otherwise race on ``CREATE TYPE`` and one fails (measured)."""
    import optuna
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                return optuna.storages.RDBStorage(url)
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_CREATE_LOCK})")
            try:
                return optuna.storages.RDBStorage(url)
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_CREATE_LOCK})")
    finally:
        engine.dispose()


def describe_storage(url: str, state_dir: Path) -> str:
    """The storage, for tags and logs: the URL without its password, or the journal file."""
    from mlops.settings import mask_url

    return mask_url(url) if url else f"journal:{journal_path(state_dir)}"


def direction(spec: ProjectSpec) -> str:
    return "minimize" if spec.primary_metric in MINIMISED else "maximize"


def study_name(spec: ProjectSpec, frame: pd.DataFrame, seed: int) -> str:
    """The same training rows, space, folds and seed give the same study: a re-run (or another
    worker) joins it and adds only the trials still missing; other rows start another study."""
    from mlops.data.split import fingerprint

    space = json.dumps(
        {k: asdict(v) for k, v in sorted(spec.search.parameters.items())}, sort_keys=True, default=str
    )
    digest = hashlib.sha256(f"{space}|{spec.search.folds}".encode()).hexdigest()[:8]
    return f"{spec.name}-{fingerprint(frame)[:12]}-{digest}-seed{seed}"


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """One value per declared parameter, drawn by the study's sampler."""
    params: dict[str, Any] = {}
    for name, dist in space.parameters.items():
        if dist.kind == "int":
            params[name] = trial.suggest_int(name, int(dist.low), int(dist.high), log=dist.log)
        elif dist.kind == "float":
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        else:
            params[name] = trial.suggest_categorical(name, list(dist.choices))
    return params


def with_params(spec: ProjectSpec, params: dict[str, Any]) -> ProjectSpec:
    """``spec`` whose ``build_model(spec, seed)`` builds the model with ``params``: the training
    functions (``mlops.ml.model``) then train the chosen model unchanged."""
    if not params:
        return spec
    return replace(spec, build_model=functools.partial(spec.build_model, params=dict(params)))


def cross_validate(
    spec: ProjectSpec,
    frame: pd.DataFrame,
    params: dict[str, Any],
    seed: int,
    folds: int,
    on_fold: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None,
) -> list[float]:
    """The primary metric of ``folds`` stratified folds of ``frame``: fit on the rest, score the fold."""
    from sklearn.model_selection import StratifiedKFold

    from mlops.ml import evaluate as ev
    from mlops.ml.model import to_frame, train

    built = with_params(spec, params)
    y = frame[spec.target].to_numpy()
    scores = []
    for fit_idx, valid_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(frame, y):
        fit_rows, valid_rows = frame.iloc[fit_idx], frame.iloc[valid_idx]
        if on_fold is not None:
            on_fold(fit_rows, valid_rows)
        proba = train(built, fit_rows, seed).predict_proba(to_frame(spec, valid_rows))
        scores.append(ev.metrics(spec, valid_rows[spec.target].to_numpy(), proba)[spec.primary_metric])
    return scores


def objective(
    spec: ProjectSpec, frame: pd.DataFrame, seed: int, on_fold: FoldProbe | None = None
) -> Callable[[optuna.Trial], float]:
    """The trial's mean cross-validated primary metric on ``frame`` (the training split). Each trial
    records its fold scores, the fingerprint and count of the rows it read, and the process that ran it."""
    from mlops.data.split import fingerprint

    rows_fingerprint = fingerprint(frame)

    def run(trial: optuna.Trial) -> float:
        params = suggest(trial, spec.search)
        probe = None if on_fold is None else functools.partial(on_fold, trial.number)
        scores = cross_validate(spec, frame, params, seed, spec.search.folds, probe)
        trial.set_user_attr("fold_scores", scores)
        trial.set_user_attr("rows_fingerprint", rows_fingerprint)
        trial.set_user_attr("rows", len(frame))
        trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
        return float(sum(scores) / len(scores))

    return run


def run_search(
    spec: ProjectSpec,
    frame: pd.DataFrame,
    *,
    seed: int,
    storage: optuna.storages.BaseStorage | str,
    n_trials: int,
    timeout_s: float | None = None,
    name: str | None = None,
    worker: int = 0,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    on_fold: FoldProbe | None = None,
    storage_label: str = "",
) -> SearchResult:
    """Join (or create) the study and add trials until it holds ``n_trials`` complete ones or
    ``timeout_s`` passes; the best over the whole study. ``worker`` offsets the sampler's seed so
    workers joining one study do not draw the same first trials; worker 0 is reproducible alone."""
    import optuna
    from optuna.trial import TrialState

    if not spec.search.parameters:
        raise ValueError(f"{spec.name!r} declares no search space")
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=name or study_name(spec, frame, seed),
        direction=direction(spec),  # type: ignore[arg-type]
        sampler=optuna.samplers.TPESampler(seed=seed + worker),
        load_if_exists=True,
    )
    start = time.perf_counter()
    done_before = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    missing = n_trials - done_before
    ran: list[int] = []

    def count(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE:
            ran.append(trial.number)

    if missing > 0:
        study.optimize(
            objective(spec, frame, seed, on_fold),
            n_trials=missing,
            timeout=timeout_s,
            callbacks=[count, _stop_when_budget_taken(n_trials, timeout_s), *callbacks],
            gc_after_trial=False,
        )
    seconds = time.perf_counter() - start
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise TimeoutError(f"no trial of study {study.study_name!r} completed within {timeout_s} s")
    best = study.best_trial
    return SearchResult(
        study_name=study.study_name,
        storage=storage_label or type(storage).__name__,
        direction=direction(spec),
        metric=spec.primary_metric,
        best_params=dict(best.params),
        best_value=float(best.value if best.value is not None else float("nan")),
        best_trial=best.number,
        complete_trials=len(complete),
        trials_here=len(ran),
        seconds=seconds,
        folds=spec.search.folds,
        trials=[trial_summary(t) for t in complete],
    )


def _stop_when_budget_taken(
    n_trials: int, timeout_s: float | None
) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Optuna's ``MaxTrialsCallback``, also counting the trials other workers are running: a worker
    stops when complete + running trials reach ``n_trials``, instead of starting one more that the
    others will not need. A trial running longer than the search may (``timeout_s``, else an hour)
    is a dead worker's: it no longer counts."""
    from optuna.trial import TrialState

    stale_after = timedelta(seconds=timeout_s or 3600.0)

    def stop(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        now = datetime.now()
        taken = 0
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            alive = t.datetime_start is not None and now - t.datetime_start < stale_after
            taken += t.state == TrialState.COMPLETE or alive
        if taken >= n_trials:
            study.stop()

    return stop


def trial_summary(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {
        "number": trial.number,
        "value": trial.value,
        "params": dict(trial.params),
        "fold_scores": trial.user_attrs.get("fold_scores", []),
        "worker": trial.user_attrs.get("worker", ""),
        "seconds": trial.duration.total_seconds() if trial.duration else None,
    }
