"""The model card of a registered version: intended use, data, metrics (per group too), gates, approvals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops.registry import Registry
    from mlops.spec import ProjectSpec
    from mlops.stores.audit import AuditEvent


def render(
    spec: ProjectSpec,
    *,
    name: str,
    version: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    group_metrics: dict[str, dict[str, dict[str, float]]] | None = None,
    decisions: list[AuditEvent] | None = None,
) -> str:
    gate = spec.model_gate
    runtime = "ONNX (parity passed)" if tags.get("onnx_parity") == "true" else "native scikit-learn"
    lines = [
        f"# Model card: {name} v{version}",
        "",
        "## Intended use",
        spec.description,
        f"Predicts `{spec.target}` ({', '.join(spec.class_names)}). Promotion target after training: "
        f"`{spec.promotion_target}`. Not for decisions without human review outside that scope.",
        "",
        "## Data",
        f"- dataset hash: `{tags.get('dataset_hash', 'unknown')}`",
        f"- features: {', '.join(f'`{f.name}` ({f.kind})' for f in spec.features)}",
        f"- code: git `{tags.get('git_commit', 'unknown')}`; ZenML run `{tags.get('zenml_run_id', '-')}`; "
        f"MLflow run `{tags.get('mlflow_run_id', '-')}`",
        "",
        "## Metrics (evaluation holdout)",
        "| metric | value | gate minimum |",
        "|---|---|---|",
        *(f"| {k} | {v:.4f} | {gate.minimums.get(k, '')} |" for k, v in sorted(metrics.items())),
        "",
        f"Primary metric: `{spec.primary_metric}`. Decision threshold: {tags.get('threshold') or 'argmax'}. "
        f"Serving runtime: {runtime}.",
    ]
    if group_metrics:
        lines += [
            "",
            "## Per-group metrics",
            f"Maximum allowed gap between groups: {gate.max_group_gap}.",
            "",
        ]
        for feature, groups in group_metrics.items():
            lines += [f"### {feature}", "| group | " + " | ".join(_columns(groups)) + " |"]
            lines.append("|---|" + "---|" * len(_columns(groups)))
            for group, values in groups.items():
                cells = " | ".join(_fmt(values.get(c)) for c in _columns(groups))
                lines.append(f"| {group} | {cells} |")
            lines.append("")
    lines += ["", "## Gates", f"Passed at training: {tags.get('gates_passed') == 'true'}."]
    if tags.get("sealed_fingerprint"):
        lines += [
            "",
            "## Promotion evidence",
            f"- sealed governance slice: `{tags['sealed_fingerprint'][:16]}` "
            f"({tags.get('sealed_rows', '?')} rows, epoch {tags.get('sealed_epoch', '0')}), "
            "never seen by training, tuning or evaluation",
            "- rule: paired, class-stratified bootstrap of the primary metric's difference on those rows; "
            "automatic promotion when the 95 % interval's lower bound exceeds the superiority margin, "
            "re-validation for production when it exceeds minus the non-inferiority margin",
        ]
        if tags.get("promotion.interval"):
            lines.append(
                f"- last decision: {tags.get('promotion.test', '')}, "
                f"estimate {tags.get('promotion.estimate', '')}, "
                f"95 % interval {tags['promotion.interval']}, {tags.get('promotion.resamples', '')} resamples"
            )
    if decisions:
        lines += [
            "",
            "## Decisions and approvals",
            "| when | who | alias | decision | evidence | reason |",
            "|---|---|---|---|---|---|",
        ]
        for e in decisions:
            who = e.details.get("approver", e.actor)
            lines.append(
                f"| {e.at:%Y-%m-%d %H:%M} | {who} | {e.alias or ''} | {e.decision} | {_evidence(e.details)} "
                f"| {e.reason} |"
            )
    return "\n".join(lines) + "\n"


def _evidence(details: dict[str, Any]) -> str:
    """``sealed 30 rows, [-0.03, +0.03]``: where a decision's scores came from and its interval."""
    evidence = details.get("evidence") or {}
    interval = details.get("interval") or {}
    text = f"{evidence.get('source', '')} {evidence.get('rows', '')} rows".strip() if evidence else ""
    if interval:
        text += f", [{interval['lo']:+.4f}, {interval['hi']:+.4f}]"
    return text or "-"


def _columns(groups: dict[str, dict[str, Any]]) -> list[str]:
    first = next(iter(groups.values()), {})
    return list(first)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def refresh(reg: Registry, version: str) -> str:
    """Render the version's model card from its tags and audit history; log it to its MLflow run."""
    import json

    from mlops.projects import get_project
    from mlops.stores.audit import AuditLog

    spec = get_project(reg.project)
    info = reg.version(version)
    groups = json.loads(info.tags.get("group_metrics", "{}") or "{}")
    history = AuditLog.for_settings(reg.settings).history(model_name=reg.name)
    card = render(
        spec,
        name=reg.name,
        version=version,
        tags={**info.tags, "mlflow_run_id": info.run_id},
        metrics=info.metrics,
        group_metrics=groups,
        decisions=[e for e in history if e.to_version == version],
    )
    reg.client.log_text(info.run_id, card, "model_card.md")
    return card
