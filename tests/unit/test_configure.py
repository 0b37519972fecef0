"""No process-global configuration outside ``mlops.configure``: the source is walked, not trusted.

Any environment mutation (``os.environ[...] =``, ``setdefault``/``update``/``pop``/``clear``,
``del os.environ[...]``, ``os.putenv``/``os.unsetenv``, MLflow's ``MLFLOW_*.set()``) and any
``mlflow.set_*`` call (tracking/registry URI, experiment, tags…) in ``src/mlops`` fails the test,
except inside the functions of ``mlops.configure`` named in ``ALLOWED``. A self-test proves that the
walker catches each pattern (and leaves reads alone).
"""

from __future__ import annotations

import ast
import os
import textwrap
from pathlib import Path

import pytest

import mlops
from mlops.configure import configure_libraries
from mlops.settings import Settings

SRC = Path(mlops.__file__).resolve().parent
# (module, function): the one configuration function, the scope for MLflow's one global read, and
# the variables pyspark reads when the Spark engine starts its JVM.
ALLOWED = {
    ("mlops.configure", "configure_libraries"),
    ("mlops.configure", "scoped_tracking_uri"),
    ("mlops.configure", "spark_environment"),
}
ENV_MUTATORS = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"}


class _Walker(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.function = ""
        self.os_names = {"os"}  # names bound to the os module (import os as o)
        self.environ_names: set[str] = set()  # names bound to os.environ (from os import environ)
        self.mlflow_names = {"mlflow"}
        self.found: list[tuple[int, str]] = []

    # ----- names -----
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if alias.name == "os":
                self.os_names.add(bound)
            elif alias.name.split(".")[0] == "mlflow" and (alias.asname or "." not in alias.name):
                self.mlflow_names.add(bound)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if node.module == "os" and alias.name in {"environ", "putenv", "unsetenv"}:
                self._flag(node, f"from os import {alias.name}")
            if (node.module or "").split(".")[0] == "mlflow" and alias.name.startswith("set_"):
                self._flag(node, f"from {node.module} import {alias.name}")

    def _is_environ(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.environ_names
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id in self.os_names
        )

    def _root(self, node: ast.expr) -> str:
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else ""

    # ----- scopes -----
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, self.function or node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def _flag(self, node: ast.AST, what: str) -> None:
        if (self.module, self.function) not in ALLOWED:
            self.found.append((getattr(node, "lineno", 0), what))

    # ----- mutations -----
    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target, node)
            if self._is_environ(node.value) and isinstance(target, ast.Name):
                self.environ_names.add(target.id)  # environ = os.environ
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target, node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_target(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Subscript) and self._is_environ(target.value):
                self._flag(node, "del os.environ[...]")
        self.generic_visit(node)

    def _check_target(self, target: ast.expr, node: ast.AST) -> None:
        if isinstance(target, ast.Subscript) and self._is_environ(target.value):
            self._flag(node, "os.environ[...] =")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in ENV_MUTATORS and self._is_environ(func.value):
                self._flag(node, f"os.environ.{func.attr}()")
            elif func.attr in {"putenv", "unsetenv"} and self._root(func) in self.os_names:
                self._flag(node, f"os.{func.attr}()")
            elif func.attr.startswith("set_") and self._root(func) in self.mlflow_names:
                self._flag(node, f"{ast.unparse(func)}()")
            elif (
                func.attr in {"set", "unset"}
                and isinstance(func.value, ast.Attribute | ast.Name)
                and ast.unparse(func.value).split(".")[-1].startswith("MLFLOW_")
            ):
                self._flag(node, f"{ast.unparse(func)}() (an MLflow environment variable)")
        self.generic_visit(node)


def violations(source: str, module: str = "mlops.example") -> list[tuple[int, str]]:
    walker = _Walker(module)
    walker.visit(ast.parse(textwrap.dedent(source)))
    return walker.found


def test_no_environment_mutation_or_mlflow_set_outside_configure_libraries() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 40 and SRC / "configure.py" in files  # the walk really covers the package
    found = []
    for path in files:
        module = ".".join(("mlops", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        found += [
            f"{path.relative_to(SRC.parent)}:{line}: {what}"
            for line, what in violations(path.read_text(), module)
        ]
    assert found == [], "process-global configuration outside mlops.configure:\n" + "\n".join(found)


CAUGHT = {
    "os.environ[...] =": "import os\nos.environ['X'] = '1'",
    "augmented assignment": "import os\nos.environ['PATH'] += ':/x'",
    "setdefault": "import os\nos.environ.setdefault('X', '1')",
    "update": "import os\nos.environ.update({'X': '1'})",
    "pop": "import os\nos.environ.pop('X', None)",
    "clear": "import os\nos.environ.clear()",
    "del": "import os\ndel os.environ['X']",
    "putenv": "import os\nos.putenv('X', '1')",
    "unsetenv": "import os\nos.unsetenv('X')",
    "aliased os": "import os as o\no.environ['X'] = '1'",
    "environ imported": "from os import environ",
    "environ bound to a name": "import os\nenv = os.environ\nenv['X'] = '1'",
    "set_tracking_uri": "import mlflow\nmlflow.set_tracking_uri('sqlite:///x.db')",
    "set_registry_uri": "def f():\n    import mlflow\n    mlflow.set_registry_uri('x')",
    "set_experiment": "import mlflow\nmlflow.set_experiment('iris')",
    "set_tags": "import mlflow\nmlflow.set_tags({'a': 'b'})",
    "aliased mlflow": "import mlflow as mf\nmf.set_tracking_uri('x')",
    "submodule call": "import mlflow.tracking\nmlflow.tracking.set_tracking_uri('x')",
    "imported setter": "from mlflow import set_tracking_uri",
    "MLflow env var object": "import mlflow.environment_variables as ev\nev.MLFLOW_TRACKING_URI.set('x')",
    "inside a method": "import os\nclass A:\n    def f(self):\n        os.environ['X'] = '1'",
    "configure.py outside the allowed functions": "import os\ndef other():\n    os.environ['X'] = '1'",
}


@pytest.mark.parametrize("source", CAUGHT.values(), ids=CAUGHT.keys())
def test_the_walker_catches_each_pattern(source: str) -> None:
    assert len(violations(source, module="mlops.configure")) == 1, source


def test_the_walker_leaves_reads_and_clients_alone_and_allows_configure_libraries() -> None:
    reads = """
        import os
        import mlflow
        value = os.environ.get('X', '')
        present = 'X' in os.environ
        copy = {**os.environ, 'X': '1'}
        client = mlflow.MlflowClient(tracking_uri='x')
        client.set_tag('run', 'k', 'v')
        client.set_registered_model_alias('m', 'production', '1')
        local = {}
        local['X'] = '1'
    """
    assert violations(reads) == []
    allowed = "import os\ndef configure_libraries(s):\n    os.environ.setdefault('X', '1')"
    assert violations(allowed, module="mlops.configure") == []
    assert len(violations(allowed, module="mlops.other")) == 1  # the same function elsewhere: refused


def test_configure_libraries_points_zenml_and_mlflow_at_the_settings(tmp_path, monkeypatch) -> None:
    for name in (
        "ZENML_CONFIG_PATH",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")  # the user's own value wins
    settings = Settings(home=tmp_path / "state", registry_uri="sqlite:////tmp/registry.db")
    assert configure_libraries(settings) is settings
    assert settings.state_dir.is_dir()
    assert os.environ["ZENML_CONFIG_PATH"] == str(tmp_path / "state" / "zenml")
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}"
    assert os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:////tmp/registry.db"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "15"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"
    assert os.environ["ZENML_CUSTOM_SOURCE_ROOT"] == str(SRC.parent)


def test_mlflow_may_never_deserialize_models_whatever_the_environment_says(tmp_path, monkeypatch) -> None:
    from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION

    monkeypatch.setenv(
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true"
    )  # a user's value loses here: fail closed
    configure_libraries(Settings(home=tmp_path / "state"))
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    assert MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get() is False


def test_scoped_tracking_uri_puts_the_global_back(monkeypatch) -> None:
    import mlflow

    from mlops.configure import scoped_tracking_uri

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/before.db")
    with scoped_tracking_uri("sqlite:////tmp/inside.db"):
        assert mlflow.get_tracking_uri() == "sqlite:////tmp/inside.db"
    assert mlflow.get_tracking_uri() == "sqlite:////tmp/before.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////tmp/before.db"
