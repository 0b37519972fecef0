"""The compatibility gate in promotion, on a real registry: a version whose inputs differ from the
version the alias serves is refused, unless the promotion is declared breaking by an approver."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from mlops.errors import PromotionRefused
from mlops.governance.promote import manual_promote
from mlops.registry import Registry
from mlops.stores.audit import AuditLog
from tests.support.training import train_register_promote


def rename_input(settings, version: str, old: str, new: str) -> None:
    """Rewrite the served version's MLmodel as if it had been trained on an input named ``new``."""
    registry = Registry(settings, "iris")
    source = registry.client.get_model_version(registry.name, version).source
    model_id = source.removeprefix("models:/").split("/")[0]
    root = Path(unquote(urlparse(registry.client.get_logged_model(model_id).artifact_location).path))
    (mlmodel,) = root.rglob("MLmodel")
    text = mlmodel.read_text()
    assert f'\\"name\\": \\"{old}\\"' in text or f'"name": "{old}"' in text, text
    mlmodel.write_text(text.replace(f'"{old}"', f'"{new}"').replace(f'\\"{old}\\"', f'\\"{new}\\"'))
    assert [i["name"] for i in registry.input_signature(version) or []].count(new) == 1


def test_a_challenger_with_other_inputs_than_the_champion_is_rejected(settings, registered_iris, iris_spec):
    rename_input(settings, "1", "petal_width", "petal_width_cm")
    second = train_register_promote(settings, "iris")  # same data and seed: a tie on the metric
    assert second["promotion"]["outcome"] == "rejected"
    assert "petal_width" in second["promotion"]["reason"]
    reg = Registry(settings, "iris")
    assert reg.alias_version("production") == "1"
    last = AuditLog.for_settings(settings).history(model_name=reg.name)[-1]
    assert last.decision == "rejected" and "petal_width_cm" in last.reason


def test_a_breaking_manual_promotion_needs_the_flag_and_an_approver(settings, registered_iris, iris_spec):
    train_register_promote(settings, "iris")  # v2, kept (a tie)
    rename_input(settings, "1", "petal_width", "petal_width_cm")
    with pytest.raises(PromotionRefused) as refused:
        manual_promote(settings, iris_spec, "2", to="production", reason="new inputs", approver="ana")
    assert any("petal_width" in r for r in refused.value.reasons)
    reg = Registry(settings, "iris")
    assert reg.alias_version("production") == "1"
    with pytest.raises(PromotionRefused, match="needs an approver"):
        manual_promote(settings, iris_spec, "2", to="staging", reason="new inputs", breaking=True)
    event = manual_promote(
        settings, iris_spec, "2", to="production", reason="new inputs", approver="ana", breaking=True
    )
    assert event.decision == "promoted" and event.details["breaking"] is True
    assert reg.alias_version("production") == "2"
