"""Why judging a model failed: "cannot be judged now" versus "proven unservable".

The difference decides whether a promotion may go on. A registry that timed out says nothing about
the champion, so the only safe answer is to refuse and retry later (fail closed). A champion whose
artifact is missing, corrupt or in a refused format will fail the same way on every retry and
cannot serve either: it is judged absent, and the record says why.

Anything not recognised as deterministic is "unavailable": an unknown failure must never promote.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Literal

from mlops.errors import MlopsError, Unavailable

Fault = Literal["unavailable", "unservable"]

# MLflow error codes that describe the artifact, not the server's health.
UNSERVABLE_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST"})
TRANSIENT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH}
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during (``from None`` keeps ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _transient(exc: BaseException) -> bool:
    """A transport failure, a timeout, a 5xx answer or a database that cannot be reached."""
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return True
    module = type(exc).__module__
    name = type(exc).__name__
    if module.startswith(("requests", "urllib3")) and name in {
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "MaxRetryError",
        "NewConnectionError",
        "ProtocolError",
        "RetryError",
    }:
        return True
    if module.startswith("sqlalchemy") and name in {"OperationalError", "TimeoutError", "DisconnectionError"}:
        return True
    code = getattr(exc, "error_code", None)
    status = getattr(exc, "get_http_status_code", None)
    if code is not None and callable(status):  # an MlflowException
        try:
            return int(status()) >= 500 and code not in UNSERVABLE_CODES
        except (TypeError, ValueError):
            return False
    return False


def _deterministic(exc: BaseException) -> bool:
    """The artifact itself is the problem: missing, corrupt, or a format we refuse to load."""
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return True
    if isinstance(exc, MlopsError) and type(exc) not in {MlopsError, Unavailable}:
        return True  # our own refusals of a version (not found, refused format) repeat on every retry
    if getattr(exc, "error_code", None) in UNSERVABLE_CODES:
        return True
    module = type(exc).__module__
    if module.startswith(("pickle", "_pickle", "zipfile", "skops", "onnx", "google.protobuf")):
        return True
    return isinstance(exc, EOFError | UnicodeDecodeError) or type(exc).__name__ in {
        "UnpicklingError",
        "BadZipFile",
        "UntrustedTypesFoundException",
        "InvalidProtobuf",
        "DecodeError",
    }


def classify(exc: BaseException) -> Fault:
    """``"unavailable"`` when anything in the chain is transient (or nothing is known to be
    deterministic); ``"unservable"`` only when a deterministic artifact failure is proven."""
    chain = list(_chain(exc))
    if any(_transient(e) for e in chain):
        return "unavailable"
    if any(_deterministic(e) for e in chain):
        return "unservable"
    return "unavailable"


def transient(exc: BaseException) -> bool:
    """Whether anything in the chain is a transport failure or a timeout (a retry may succeed)."""
    return any(_transient(e) for e in _chain(exc))


def describe(exc: BaseException) -> str:
    """One line naming the failure: its type and message, and its root cause when different."""
    root = list(_chain(exc))[-1]
    text = f"{type(exc).__name__}: {exc}"
    if root is not exc:
        text += f" (cause: {type(root).__name__}: {root})"
    return " ".join(text.split())[:500]
