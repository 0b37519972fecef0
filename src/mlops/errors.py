"""The one error family of the project; the CLI turns it into exit codes, the service into HTTP codes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class MlopsError(Exception):
    """An expected failure with a message for humans and a hint on how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "", reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.reasons = list(reasons or [])

    def __str__(self) -> str:
        lines = [self.message, *(f"  - {r}" for r in self.reasons)]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class UsageError(MlopsError):
    exit_code = 2


class GateFailed(MlopsError):
    """A data or model gate refused; ``reasons`` lists every failed check."""

    exit_code = 3


class NotFound(MlopsError):
    exit_code = 4


class PromotionRefused(MlopsError):
    exit_code = 5


class AliasConflict(PromotionRefused):
    """The alias moved between our read and our write (compare-and-set failed)."""


class AuditTampered(MlopsError):
    """``mlops audit verify``: the audit chain or its anchor does not check out (a row edited or deleted)."""

    exit_code = 6


class Unavailable(MlopsError):
    """A decision cannot be judged now: the registry, tracking server or a store is unreachable or timed
    out. Nothing moved; retrying later may succeed, so it has its own exit code (75, ``EX_TEMPFAIL``
    of sysexits.h) apart from 5, a policy refusal that a retry would only repeat."""

    exit_code = 75
    retryable = True


# ----- errors as data: across processes (steps, the retrain worker) without re-parsing text -----
ERROR_TYPES: dict[str, type[MlopsError]] = {
    cls.__name__: cls
    for cls in (
        MlopsError,
        UsageError,
        GateFailed,
        NotFound,
        PromotionRefused,
        AliasConflict,
        AuditTampered,
        Unavailable,
    )
}


def error_data(exc: BaseException) -> dict[str, Any]:
    """The structured form of ``exc`` (JSON values): type, message, hint, reasons, exit code. Any other
    exception is described as a plain ``MlopsError`` of its type's name and message."""
    if isinstance(exc, MlopsError):
        return {
            "type": type(exc).__name__,
            "message": exc.message,
            "hint": exc.hint,
            "reasons": list(exc.reasons),
            "exit_code": exc.exit_code,
        }
    return {
        "type": "MlopsError",
        "message": f"{type(exc).__name__}: {exc}",
        "hint": "",
        "reasons": [],
        "exit_code": MlopsError.exit_code,
    }


def error_from_data(data: dict[str, Any], *, context: str = "") -> MlopsError:
    """The error that ``error_data`` described, as its own type (unknown types: ``MlopsError``);
    ``context`` prefixes the message (e.g. which step of which run failed)."""
    cls = ERROR_TYPES.get(str(data.get("type", "")), MlopsError)
    message = str(data.get("message", ""))
    return cls(
        f"{context}{message}",
        hint=str(data.get("hint", "")),
        reasons=[str(r) for r in data.get("reasons") or []],
    )


@dataclass
class JobResult:
    """What a worker process hands back (``python -m mlops.worker``): its outputs, or its error as data.
    Defined here, below every layer, so the service reads what the worker writes without importing it."""

    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @property
    def model_version(self) -> str | None:
        return str(self.outputs.get("model", {}).get("version") or "") or None

    def write(self, path: Path) -> None:
        """Atomically: a reader sees no file or the whole result."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), default=str))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> JobResult:
        data = json.loads(path.read_text())
        return cls(ok=bool(data["ok"]), outputs=dict(data.get("outputs") or {}), error=data.get("error"))
