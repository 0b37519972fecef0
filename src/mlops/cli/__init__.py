"""The `mlops` command line: one thin command per user verb (``mlops --help`` lists them).

Heavy libraries (ZenML, MLflow, scikit-learn) are imported inside commands, so `mlops --help`
answers at once. ``base`` holds the app and the error boundary, ``render`` every output, and the
commands live by subject in ``models``, ``data`` and ``ops``.
"""

from __future__ import annotations

import sys

# isort: off
# Commands are listed by `mlops --help` in the order they are registered: a model's life first.
from mlops.cli import models, rollout, data, monitor, health, ops, ui, ci, render
from mlops.cli.base import app

# isort: on

__all__ = ["app", "ci", "data", "health", "main", "models", "monitor", "ops", "rollout", "ui"]


def main() -> None:
    args = sys.argv[1:]
    if "--verbose" in args[1:] and "--" not in args[: args.index("--verbose")]:
        # `mlops train --verbose` as well as `mlops --verbose train`: the option is the app's
        sys.argv[1:] = ["--verbose", *(a for a in args if a != "--verbose")]
    if "--json" in sys.argv[1:]:
        # ZenML and MLflow log to stdout; keep it machine-readable by sending everything else to stderr.
        render.json_out, sys.stdout = sys.stdout, sys.stderr
    app()
