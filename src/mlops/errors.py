"""The one error family of the project; the CLI turns it into exit codes, the service into HTTP codes."""

from __future__ import annotations

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


# ----- errors as data: across processes (steps, the retrain worker) without re-parsing text -----
ERROR_TYPES: dict[str, type[MlopsError]] = {
    cls.__name__: cls
    for cls in (MlopsError, UsageError, GateFailed, NotFound, PromotionRefused, AliasConflict)
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
