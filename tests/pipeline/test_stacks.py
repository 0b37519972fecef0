"""`mlops stack apply` against the session's isolated ZenML store: created once, unchanged after."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops import stacks
from mlops.errors import UsageError

pytestmark = pytest.mark.pipeline

STACK = """
name: it-${SUFFIX}
secrets:
  - name: it-secret-${SUFFIX}
    values: {token: IT_TOKEN}
components:
  orchestrator:
    name: it-orch-${SUFFIX}
    flavor: local
  artifact_store:
    name: it-store-${SUFFIX}
    flavor: local
    configuration: {path: "${STORE_DIR}"}
"""


def write(tmp_path: Path) -> Path:
    path = tmp_path / "it.yaml"
    path.write_text(STACK)
    return path


def test_apply_is_idempotent_and_updates_what_changed(settings, tmp_path: Path) -> None:
    from zenml.client import Client

    from mlops.configure import configure_libraries

    configure_libraries(settings)
    env = {"SUFFIX": tmp_path.name[-8:].lower(), "STORE_DIR": str(tmp_path / "a"), "IT_TOKEN": "t1"}
    first = stacks.apply(stacks.load(write(tmp_path), env), environ=env)
    assert first["status"] == "created" and set(first["components"].values()) == {"created"}
    assert first["secrets"] == {f"it-secret-{env['SUFFIX']}": "created"}
    second = stacks.apply(stacks.load(write(tmp_path), env), environ=env)
    assert second["status"] == "unchanged" and set(second["components"].values()) == {"unchanged"}
    assert set(second["secrets"].values()) == {"unchanged"}

    env = {**env, "STORE_DIR": str(tmp_path / "b"), "IT_TOKEN": "t2"}
    third = stacks.apply(stacks.load(write(tmp_path), env), environ=env, activate=True)
    assert third["components"][f"it-store-{env['SUFFIX']}"] == "updated"
    assert set(third["secrets"].values()) == {"updated"}
    client = Client()
    assert client.active_stack_model.name == f"it-{env['SUFFIX']}"
    assert client.get_secret(f"it-secret-{env['SUFFIX']}").secret_values == {"token": "t2"}
    client.activate_stack("default")


def test_missing_variables_are_all_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        stacks.load(write(tmp_path), {"SUFFIX": "x"})
    assert info.value.reasons == ["IT_TOKEN", "STORE_DIR"]


def test_shipped_stack_files_parse() -> None:
    import yaml

    files = sorted(Path("configs/stacks").glob("*.yaml"))
    assert {p.stem for p in files} >= {"local", "staging", "production"}
    for path in files:
        text = path.read_text()
        raw = yaml.safe_load(text)
        env = {name: "x" for name, _ in stacks._VAR.findall(text)}
        env |= {
            var: "x" for secret in raw.get("secrets") or [] for var in (secret.get("values") or {}).values()
        }
        parsed = stacks.load(path, env)
        assert parsed.name and parsed.components, path
