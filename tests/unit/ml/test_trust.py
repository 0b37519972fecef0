"""The trusted-types allow-list and the checks made before a native model file loads (``ml.trust``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import skops.io
import yaml

from mlops.ml import trust
from mlops.ml.model import tabular_pipeline, to_frame, train
from mlops.projects import get_project


class NotOnOurList:
    def __init__(self) -> None:
        self.x = 1


def _frame(settings: Any, project: str) -> Any:
    if project == "readmission":
        from mlops.data.readmission import cleaning, generator

        return cleaning.clean(generator.generate(1_500, seed=3))
    return get_project(project).load(settings)


@pytest.mark.parametrize("project", ["iris", "readmission"])
def test_each_projects_trained_model_needs_only_types_on_our_list(settings, project) -> None:
    spec = get_project(project)
    found = skops.io.get_untrusted_types(data=skops.io.dumps(train(spec, _frame(settings, project), seed=0)))
    assert found and set(found) <= set(trust.TRUSTED_TYPES), found


def _model_dir(tmp_path: Path, obj: Any, **flavor: Any) -> Path:
    skops.io.dump(obj, tmp_path / "model.skops")
    conf = {"pickled_model": "model.skops", "serialization_format": "skops", **flavor}
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": conf}}))
    return tmp_path


def test_a_skops_model_with_listed_types_loads(settings, tmp_path, iris_spec) -> None:
    model = train(iris_spec, iris_spec.load(settings), seed=0)
    loaded = trust.load(_model_dir(tmp_path, model))
    frame = to_frame(iris_spec, iris_spec.load(settings).head(5))
    assert (loaded.predict_proba(frame) == model.predict_proba(frame)).all()


@pytest.mark.parametrize(
    ("flavor", "message"),
    [
        ({"serialization_format": "cloudpickle"}, "saved as 'cloudpickle'"),
        ({"serialization_format": "pickle"}, "saved as 'pickle'"),
        ({"serialization_format": None}, "saved as None"),
        ({"pickled_model": "../model.skops"}, "names the model file"),
        ({"pickled_model": "/etc/passwd"}, "names the model file"),
        ({"pickled_model": "absent.skops"}, "is missing"),
    ],
)
def test_other_formats_and_stray_paths_are_refused(tmp_path, flavor, message) -> None:
    model_dir = _model_dir(tmp_path, [1, 2], **flavor)
    with pytest.raises(trust.UntrustedModel, match=message):
        trust.load(model_dir)


def test_the_mlmodel_files_own_trust_list_is_ignored(tmp_path) -> None:
    name = f"{__name__}.NotOnOurList"
    model_dir = _model_dir(tmp_path, NotOnOurList(), skops_trusted_types=[name])
    with pytest.raises(trust.UntrustedModel, match="outside our allow-list") as refused:
        trust.load(model_dir)
    assert refused.value.reasons == [name]


def test_unreadable_model_files_are_refused_not_raised_raw(tmp_path) -> None:
    with pytest.raises(trust.UntrustedModel, match="MLmodel"):
        trust.load(tmp_path)  # no MLmodel file
    (tmp_path / "MLmodel").write_text("flavors: [")
    with pytest.raises(trust.UntrustedModel, match="MLmodel"):
        trust.load(tmp_path)
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": {}}}))
    with pytest.raises(trust.UntrustedModel, match="no sklearn flavor"):
        trust.load(tmp_path)
    model_dir = _model_dir(tmp_path, [1])
    (model_dir / "model.skops").write_bytes(b"not a zip file")
    with pytest.raises(trust.UntrustedModel, match="cannot be inspected"):
        trust.load(model_dir)


def test_sha256_check() -> None:
    data = b"onnx bytes"
    assert trust.check_sha256(data, trust.sha256(data), "f") == data
    with pytest.raises(trust.UntrustedModel, match="altered after registration"):
        trust.check_sha256(data + b"!", trust.sha256(data), "f")
    with pytest.raises(trust.UntrustedModel, match="no recorded sha256"):
        trust.check_sha256(data, None, "f")


def test_training_refuses_to_register_a_model_with_types_outside_our_list(settings, iris_spec) -> None:
    from sklearn.ensemble import ExtraTreesClassifier

    from mlops.tracking import skops_types

    frame = iris_spec.load(settings)
    model = tabular_pipeline(iris_spec, ExtraTreesClassifier(n_estimators=3, random_state=0))
    model.fit(to_frame(iris_spec, frame), frame[iris_spec.target])
    assert skops_types(model) == ["numpy.dtype", "sklearn.tree._tree.Tree"]
    with pytest.raises(trust.UntrustedModel) as refused:
        skops_types(tabular_pipeline(iris_spec, NotOnOurList()))
    assert refused.value.reasons == [f"{__name__}.NotOnOurList"]
