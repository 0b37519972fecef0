"""The one error family of the project; the CLI turns it into exit codes, the service into HTTP codes."""

from __future__ import annotations


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
