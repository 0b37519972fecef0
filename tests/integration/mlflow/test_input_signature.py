"""Registry.input_signature against a real registered version: what the compatibility gate compares."""

from __future__ import annotations

from mlops.governance.gates import compatibility_reasons
from mlops.registry import Registry


def test_input_signature_of_a_registered_version(settings, registered_iris, iris_spec) -> None:
    reg = Registry(settings, "iris")
    inputs = reg.input_signature(registered_iris["model"]["version"])
    assert inputs is not None
    assert [(c["name"], c["type"]) for c in inputs] == [(name, "double") for name in iris_spec.feature_names]
    assert compatibility_reasons(inputs, inputs, breaking_approved=False) == []
