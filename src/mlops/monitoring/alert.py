"""The project's alert webhook (``MLOPS_ALERT_WEBHOOK_URL``), as the monitor uses it.

The same contract as the pipelines' failure hook (``steps.hooks.alert``): a JSON POST with a ``text``
line and the facts beside it (ids and figures, never raw inputs). An unreachable target is logged
and reported, never raised: an alert that cannot be delivered must not stop the retrain it announces.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops.settings import Settings

logger = logging.getLogger(__name__)
TIMEOUT_S = 5.0


def notify(settings: Settings, text: str, facts: dict[str, Any]) -> dict[str, Any]:
    """POST the alert; what happened, for the audit: off (no webhook), sent (its status) or failed."""
    url = settings.alert_webhook_url
    if not url:
        return {"alert": "off"}
    import httpx

    try:
        response = httpx.post(url, json={"text": text, **facts}, timeout=TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        # never the message: it quotes the URL, whose path usually carries the webhook's token
        status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
        why = f"HTTP {status}" if status else type(exc).__name__
        logger.warning("alert webhook failed: %s", why)
        return {"alert": "failed", "error": why}
    return {"alert": "sent", "status": response.status_code}
