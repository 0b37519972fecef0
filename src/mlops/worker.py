"""The retrain worker: ``python -m mlops.worker train --project P --result FILE``.

An entry point beside the CLI, for programs rather than people: it runs the training pipeline and
writes a structured result (``errors.JobResult`` as JSON) to FILE: the run's outputs, or the error as
data (``errors.error_data``). The service's retrain jobs start it and read the file back; its output
(ZenML's and MLflow's log) is only the job's log tail. Exit code: 0, the error's own exit code, or 1
for an unexpected failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlops.errors import JobResult, MlopsError, error_data


def train(project: str) -> dict[str, Any]:
    """The training pipeline's outputs for ``project`` (the settings come from the environment)."""
    from mlops.configure import configure_libraries
    from mlops.runner import run_training
    from mlops.settings import Settings

    settings = configure_libraries(Settings())
    return run_training(settings, project)


JOBS = {"train": train}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.worker", description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--project", required=True)
    parser.add_argument("--result", type=Path, required=True, help="JSON file to write the result to")
    args = parser.parse_args(argv)
    try:
        result = JobResult(ok=True, outputs=JOBS[args.job](args.project))
        code = 0
    except MlopsError as exc:
        result, code = JobResult(ok=False, error=error_data(exc)), exc.exit_code
    except Exception as exc:  # still a result: the job shows what went wrong
        result, code = JobResult(ok=False, error=error_data(exc)), 1
    result.write(args.result)
    if result.error is not None:
        print(f"error: {result.error['message']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
