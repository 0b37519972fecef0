"""The sealed governance slice: the rows every promotion decision is judged on, and nothing else sees.

The slice is carved at load time by a salted content hash of each row (``data.split.seal``), so the
same rows stay sealed across runs, seeds and versions, and no training, threshold tuning or
evaluation split ever contains them. Reusing evidence wears it out (every decision that reads it is
a look at the answers), so the slice is redrawn under a new salt (epoch + 1) after
``sealed_max_decisions`` decisions, or when drift was detected since it was first used (the old
distribution is the wrong evidence). The epoch and the count are replayed from the audit log: each
decision's details carry the slice's ``evidence`` (source, fingerprint, rows, epoch), so no other
state is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops.data.split import fingerprint, row_hashes, seal
from mlops.errors import Unavailable
from mlops.governance.faults import describe
from mlops.stores.audit import AuditEvent, AuditLog

if TYPE_CHECKING:
    import pandas as pd

    from mlops.settings import Settings
    from mlops.spec import ProjectSpec


@dataclass(frozen=True)
class SealedSlice:
    frame: pd.DataFrame
    fingerprint: str
    epoch: int
    redrawn: str = ""  # why this epoch was started now ("" when it continues)
    source: str = "sealed"  # "sealed", or "fresh" for newly drawn re-validation rows

    @property
    def rows(self) -> int:
        return len(self.frame)

    def evidence(self) -> dict[str, Any]:
        """What a decision records about its rows (the audit log replays epochs and counts from it)."""
        out: dict[str, Any] = {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "epoch": self.epoch,
        }
        if self.redrawn:
            out["sealed_redrawn"] = self.redrawn
        return out

    @classmethod
    def from_evidence(cls, frame: pd.DataFrame, evidence: dict[str, Any]) -> SealedSlice:
        """The slice again from its rows and ``evidence()`` (how it travels between pipeline steps)."""
        return cls(
            frame,
            str(evidence["fingerprint"]),
            int(evidence["epoch"]),
            str(evidence.get("sealed_redrawn", "")),
            str(evidence.get("source", "sealed")),
        )


def sealed_tags(evidence: dict[str, Any]) -> dict[str, str]:
    """The version tags that say which slice was kept away from its training."""
    return {
        "sealed_fingerprint": str(evidence["fingerprint"]),
        "sealed_rows": str(evidence["rows"]),
        "sealed_epoch": str(evidence["epoch"]),
    }


def columns(spec: ProjectSpec) -> list[str]:
    return [*spec.feature_names, spec.target]


def _evidence(event: AuditEvent) -> dict[str, Any]:
    value = event.details.get("evidence")
    return value if isinstance(value, dict) else {}


def _history(settings: Settings, spec: ProjectSpec) -> list[AuditEvent]:
    try:
        return AuditLog.for_settings(settings).history(model_name=settings.registered_model_name(spec.name))
    except Exception as exc:  # without the history the slice's use cannot be counted: fail closed
        raise Unavailable(
            f"the audit log cannot be read to count the sealed slice's use: {settings.redact(describe(exc))}",
            hint="retry when the control database is reachable",
        ) from exc


def _drift_since(settings: Settings, spec: ProjectSpec, since: datetime) -> str:
    from mlops.stores.drift import latest_drift

    try:
        latest = latest_drift(settings.prediction_log_db_url, spec.name)
    except Exception as exc:
        raise Unavailable(
            f"drift results cannot be read for the sealed slice: {settings.redact(describe(exc))}",
            hint="retry when the predictions database is reachable",
        ) from exc
    if latest and latest["detected"] and datetime.fromisoformat(latest["at"]) > since:
        return (
            f"drift detected at {latest['at']} (share {latest['share']:.2f}) since the slice was first used"
        )
    return ""


def carve(settings: Settings, spec: ProjectSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, SealedSlice]:
    """``(rest, sealed)`` for this load: the current epoch's slice, or the next one when the current
    one has been read ``sealed_max_decisions`` times or drift was seen since its first use."""
    history = _history(settings, spec)
    epoch = max((int(_evidence(e).get("epoch", 0)) for e in history if _evidence(e)), default=0)
    rest, sealed = seal(frame, columns(spec), settings.sealed_fraction, epoch)
    digest = fingerprint(sealed)
    readers = [e for e in history if _evidence(e).get("fingerprint") == digest]
    why = ""
    if len(readers) >= settings.sealed_max_decisions:
        why = f"{len(readers)} decisions read slice {digest[:12]} (max {settings.sealed_max_decisions})"
    elif readers:
        why = _drift_since(settings, spec, min(e.at for e in readers))
    if why:
        epoch += 1
        rest, sealed = seal(frame, columns(spec), settings.sealed_fraction, epoch)
        digest = fingerprint(sealed)
    return rest, SealedSlice(sealed, digest, epoch, why)


def fresh(settings: Settings, spec: ProjectSpec, version: str, data_path: Any = None) -> pd.DataFrame:
    """Rows the version's training cannot have seen, when the loader can draw them: an operator's
    newer file (``data_path``), or the loader with another seed (the readmission generator). Rows
    also present in the default load are dropped, so a loader that always returns the same rows
    (iris) yields none and re-validation falls back to the sealed slice."""
    updates: dict[str, Any] = {"seed": settings.seed + 1_000 + int(version)}
    if data_path is not None:
        updates["data_path"] = data_path
    candidate = spec.load(settings.model_copy(update=updates))
    known = set(row_hashes(spec.load(settings), columns(spec)).tolist())
    keep = [h not in known for h in row_hashes(candidate, columns(spec)).tolist()]
    return candidate[keep].reset_index(drop=True)
