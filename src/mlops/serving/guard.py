"""The rollout guard in the service: one leader among every worker and replica ends a canary that
breaches its budgets (the decision is ``mlops.governance.rollout``). Not built yet: no-ops."""

from __future__ import annotations

from mlops.settings import Settings


class RolloutGuard:
    def __init__(self, settings: Settings, project: str) -> None:
        self.settings = settings
        self.project = project

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
