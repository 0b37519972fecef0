"""What a native model file may contain before we load it: skops only, and only types on OUR list.

MLflow's sklearn flavor loads a skops file with the ``skops_trusted_types`` written into the
model's own MLmodel file: whoever wrote the model chose what is trusted, so that list protects
nothing. Here the allow-list is code, reviewed like code. A file is inspected first
(``skops.io.get_untrusted_types`` reads its schema without building any object), refused if it
names a type not on the list, and only then loaded with ``trusted=TRUSTED_TYPES``. Pickle and
cloudpickle are refused outright: unpickling runs whatever the file says.

The list holds the types our projects' pipelines need beyond skops' own defaults (scikit-learn
estimators, numpy arrays): ``tests/unit/ml/test_trust.py`` trains each project's model and proves
its untrusted types are a subset, so a new estimator fails the test instead of the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.errors import MlopsError

TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",  # RandomForest's trees (iris)
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # readmission
)
SKOPS = "skops"


class UntrustedModel(MlopsError):
    """A registered model file we refuse to load: wrong format, unknown types, or altered bytes."""


def file_name(model_dir: Path) -> str:
    """The name of the skops file the MLmodel file in ``model_dir`` names; refuses any other
    serialization format, and any name that leaves the model's folder.

    Reads the MLmodel file only (YAML, safe loader): nothing of the model runs.
    """
    import yaml

    try:
        meta = yaml.safe_load((model_dir / "MLmodel").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UntrustedModel(f"cannot read the model's MLmodel file: {exc}") from None
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    flavor = flavors.get("sklearn") if isinstance(flavors, dict) else None
    if not isinstance(flavor, dict):
        raise UntrustedModel("the model has no sklearn flavor in its MLmodel file")
    fmt = flavor.get("serialization_format")
    if fmt != SKOPS:
        raise UntrustedModel(
            f"the native model is saved as {fmt!r}; only {SKOPS!r} is loaded (unpickling runs code)",
            hint="re-register the version with this project's training (it saves with skops)",
        )
    name = str(flavor.get("pickled_model", ""))
    if not name or Path(name).name != name or name in {".", ".."}:
        raise UntrustedModel(f"the MLmodel file names the model file {name!r}; refused")
    return name


def native_file(model_dir: Path) -> Path:
    """The model's skops file in ``model_dir`` (see ``file_name``); it must exist."""
    path = model_dir / file_name(model_dir)
    if not path.is_file():
        raise UntrustedModel(f"the model file {path.name!r} is missing")
    return path


def refused_types(path: Path) -> list[str]:
    """The types named in the skops file at ``path`` that neither skops nor our list trusts."""
    import skops.io

    try:
        found = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # a damaged or forged file: skops raises whatever its parser hits
        raise UntrustedModel(f"the skops file cannot be inspected: {type(exc).__name__}: {exc}") from None
    return sorted(set(found) - set(TRUSTED_TYPES))


def verify(model_dir: Path) -> Path:
    """The model's skops file, once proven to be skops with only trusted types (nothing is loaded)."""
    path = native_file(model_dir)
    refused = refused_types(path)
    if refused:
        raise UntrustedModel(
            "the native model names types outside our allow-list (mlops.ml.trust.TRUSTED_TYPES)",
            reasons=refused,
            hint="the MLmodel file's skops_trusted_types is ignored; extend TRUSTED_TYPES in a review",
        )
    return path


def load(model_dir: Path) -> Any:
    """The scikit-learn model in ``model_dir``, loaded by skops with our allow-list only."""
    import skops.io

    path = verify(model_dir)
    return skops.io.load(path, trusted=list(TRUSTED_TYPES))


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, expected: str | None, what: str) -> bytes:
    """``data`` when its sha256 is the one recorded at registration; a mismatch means tampering.

    No recorded digest is refused too: every version this code registers records one.
    """
    if not expected:
        raise UntrustedModel(f"{what} has no recorded sha256; refused", hint="re-register the version")
    actual = sha256(data)
    if actual != expected:
        raise UntrustedModel(
            f"{what} was altered after registration: sha256 {actual[:12]}… != recorded {expected[:12]}…",
            hint="the stored file does not match what training registered; investigate the artifact store",
        )
    return data
