"""ZenML stacks from YAML (`configs/stacks/<env>.yaml`), registered idempotently from Python.

The file shape::

    name: mlops-staging                     # the stack's name
    secrets:                                # ZenML secrets, filled from environment variables
      - name: mlops-s3
        values: {aws_access_key_id: AWS_ACCESS_KEY_ID, aws_secret_access_key: AWS_SECRET_ACCESS_KEY}
    components:                             # one per component type
      artifact_store:
        name: mlops-s3-store
        flavor: s3
        configuration:                      # ${VAR} / ${VAR:-default} come from the environment;
          path: s3://${MLOPS_BUCKET}/zenml  # {{secret.key}} stays a reference ZenML resolves itself
          key: "{{mlops-s3.aws_access_key_id}}"

Registering from Python (not `zenml artifact-store register --secret ...`) avoids the CLI's own
``--secret`` option clashing with the S3 store's ``secret`` field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import NotFound, UsageError

_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


@dataclass
class Component:
    type: str
    name: str
    flavor: str
    configuration: dict[str, Any] = field(default_factory=dict)


@dataclass
class StackFile:
    name: str
    components: list[Component]
    secrets: dict[str, dict[str, str]]  # secret name -> {key: ENV_VAR}


def stack_path(env: str, root: Path | None = None) -> Path:
    path = (root or Path("configs") / "stacks") / f"{env}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.exists() else []
        raise NotFound(f"no stack file {path}", hint=f"available: {', '.join(available) or 'none'}")
    return path


def load(path: Path, environ: dict[str, str] | None = None) -> StackFile:
    """Parse a stack file, substituting ``${VAR}`` from the environment; every missing variable is named."""
    import yaml

    env = dict(os.environ if environ is None else environ)
    raw = yaml.safe_load(path.read_text()) or {}
    missing: set[str] = set()

    def substitute(value: Any) -> Any:
        if isinstance(value, str):

            def one(match: re.Match[str]) -> str:
                name, default = match.group(1), match.group(2)
                if name in env:
                    return env[name]
                if default is not None:
                    return default
                missing.add(name)
                return ""

            return _VAR.sub(one, value)
        if isinstance(value, dict):
            return {k: substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v) for v in value]
        return value

    components = [
        Component(
            type=ctype,
            name=str(substitute(spec["name"])),
            flavor=spec["flavor"],
            configuration=substitute(spec.get("configuration") or {}),
        )
        for ctype, spec in (raw.get("components") or {}).items()
    ]
    secrets = {str(substitute(s["name"])): dict(s.get("values") or {}) for s in raw.get("secrets") or []}
    for values in secrets.values():
        missing.update(var for var in values.values() if var not in env)
    if missing:
        raise UsageError(
            f"stack file {path} needs environment variables that are not set",
            reasons=sorted(missing),
            hint="export them (or put them in .env) and run again",
        )
    if "name" not in raw or not components:
        raise UsageError(f"stack file {path} needs a 'name' and at least one component")
    return StackFile(name=str(substitute(raw["name"])), components=components, secrets=secrets)


def apply(
    stack: StackFile, *, activate: bool = False, environ: dict[str, str] | None = None
) -> dict[str, Any]:
    """Create or update the secrets, components and stack; a second run changes nothing."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    env = dict(os.environ if environ is None else environ)
    client = Client()
    report: dict[str, Any] = {"stack": stack.name, "secrets": {}, "components": {}}
    for name, values in stack.secrets.items():
        resolved = {key: env[var] for key, var in values.items()}
        try:
            existing = client.get_secret(name, allow_partial_name_match=False, allow_partial_id_match=False)
        except KeyError:
            client.create_secret(name, resolved)
            report["secrets"][name] = "created"
            continue
        current = {k: v.get_secret_value() if v else "" for k, v in existing.values.items()}
        if current != resolved:
            client.update_secret(name, add_or_update_values=resolved)
            report["secrets"][name] = "updated"
        else:
            report["secrets"][name] = "unchanged"
    mapping: dict[StackComponentType, str] = {}
    for comp in stack.components:
        ctype = StackComponentType(comp.type)
        mapping[ctype] = comp.name
        try:
            existing_comp = client.get_stack_component(ctype, comp.name, allow_name_prefix_match=False)
        except KeyError:
            client.create_stack_component(comp.name, comp.flavor, ctype, comp.configuration)
            report["components"][comp.name] = "created"
            continue
        if existing_comp.flavor_name != comp.flavor:
            raise UsageError(
                f"component {comp.name!r} has flavor {existing_comp.flavor_name!r}, not {comp.flavor!r}",
                hint="rename it in the stack file or delete the old component",
            )
        if {
            k: v for k, v in existing_comp.configuration.items() if k in comp.configuration
        } != comp.configuration:
            client.update_stack_component(comp.name, ctype, configuration=comp.configuration)
            report["components"][comp.name] = "updated"
        else:
            report["components"][comp.name] = "unchanged"
    try:
        existing_stack = client.get_stack(stack.name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack(stack.name, components=mapping)
        report["status"] = "created"
    else:
        current_map = {t: c[0].name for t, c in existing_stack.components.items()}
        if current_map != mapping:
            client.update_stack(stack.name, component_updates=mapping)
            report["status"] = "updated"
        else:
            report["status"] = "unchanged"
    if activate:
        client.activate_stack(stack.name)
        report["active"] = True
    return report
