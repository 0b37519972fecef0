"""Data, model, behaviour and compatibility gates. Each returns the list of reasons it refuses; empty
means it passes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.data.validation import data_reasons
from mlops.errors import GateFailed

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd

    from mlops.ml.behaviour import CheckResult
    from mlops.spec import ProjectSpec

    PredictProba = Callable[[pd.DataFrame], Any]


def check_data(spec: ProjectSpec, frame: pd.DataFrame, *, with_target: bool = True) -> None:
    reasons = data_reasons(spec, frame, with_target=with_target)
    if reasons:
        raise GateFailed(f"data gate failed for {spec.name!r}", reasons=reasons)


def metric_reasons(spec: ProjectSpec, metrics: dict[str, float]) -> list[str]:
    reasons = []
    for name, minimum in spec.model_gate.minimums.items():
        value = metrics.get(name)
        if value is None:
            reasons.append(f"metric {name!r} was not computed")
        elif value < minimum:
            reasons.append(f"{name} {value:.4f} is below the minimum {minimum:.4f}")
    return reasons


def behaviour_results(
    spec: ProjectSpec, holdout: pd.DataFrame, predict_proba: PredictProba, threshold: float | None
) -> list[CheckResult]:
    """Every behavioural check the spec declares, run through ``predict_proba`` (CheckList)."""
    from mlops.ml import behaviour

    return behaviour.run(spec, holdout, predict_proba, threshold)


def behaviour_reasons(
    spec: ProjectSpec, holdout: pd.DataFrame, predict_proba: PredictProba, threshold: float | None
) -> list[str]:
    """One reason per failed check, naming the check and up to 3 failing cases."""
    return [r.describe() for r in behaviour_results(spec, holdout, predict_proba, threshold) if not r.passed]


def model_gate(
    spec: ProjectSpec,
    holdout: pd.DataFrame,
    proba: Any,
    threshold: float | None,
    *,
    predict_proba: PredictProba | None = None,
    behaviour: Sequence[CheckResult] | None = None,
) -> tuple[dict[str, float], dict[str, Any], list[str]]:
    """Metrics, per-group metrics and every reason the model gate refuses, from holdout probabilities.

    The behavioural checks need the model itself, not its holdout probabilities: they run when
    ``predict_proba`` is given, or their ``behaviour`` results are passed when the caller already ran
    them (to log them). Without either, the gate is the metric and fairness gate alone.
    """
    from mlops.ml.evaluate import holdout_xy, metrics
    from mlops.ml.fairness import fairness_reasons, group_metrics

    _, y = holdout_xy(spec, holdout)
    values = metrics(spec, y, proba, threshold)
    groups = group_metrics(spec, holdout, y, proba, threshold)
    reasons = metric_reasons(spec, values) + list(fairness_reasons(spec, groups))
    if behaviour is None and predict_proba is not None:
        behaviour = behaviour_results(spec, holdout, predict_proba, threshold)
    reasons += [r.describe() for r in behaviour or () if not r.passed]
    return values, groups, reasons


def _signature(inputs: list[dict[str, Any]]) -> dict[str, str]:
    return {str(col.get("name")): str(col.get("type")) for col in inputs}


def compatibility_reasons(
    candidate: list[dict[str, Any]] | None,
    served: list[dict[str, Any]] | None,
    *,
    breaking_approved: bool,
) -> list[str]:
    """Refuse a version whose input signature (names and types) differs from the served one's, so a
    promotion cannot break live clients; a breaking promotion with an approver passes (its caller
    audits it as breaking).

    ``served`` is the signature of the version the alias points to, None when it points nowhere
    (nothing to break). A candidate without a signature cannot be proven compatible: refused.
    """
    if breaking_approved or served is None:
        return []
    if candidate is None:
        return ["the candidate records no input signature: compatibility with the served version is unproven"]
    new, old = _signature(candidate), _signature(served)
    changes = []
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    retyped = sorted(f"{n} {old[n]} -> {new[n]}" for n in set(new) & set(old) if new[n] != old[n])
    if added:
        changes.append(f"added {', '.join(added)}")
    if removed:
        changes.append(f"removed {', '.join(removed)}")
    if retyped:
        changes.append(f"retyped {', '.join(retyped)}")
    if not changes:
        return []
    return [
        "input signature differs from the served version's (" + "; ".join(changes) + "): a breaking change "
        "needs a promotion marked breaking, with an approver"
    ]
