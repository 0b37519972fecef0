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


def test_a_version_without_a_signature_reads_none(settings, registered_iris) -> None:
    """A version logged by hand, without a signature: None, which the compatibility gate refuses.
    (The fixture configured the process-wide MLflow URIs to this test's registry.)"""
    import mlflow
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    reg = Registry(settings, "iris")
    model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=reg.name,
            pip_requirements=[],
            serialization_format="cloudpickle",
        )
    version = str(info.registered_model_version)
    assert version == "2" and reg.input_signature(version) is None
    served = reg.input_signature("1")
    assert compatibility_reasons(reg.input_signature(version), served, breaking_approved=False) != []
