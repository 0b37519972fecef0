# Every verb of the project. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The newest supported interpreter that answers (3.13, 3.12, 3.11); PYTHON=/path/to/python overrides.
# Each is asked to run: pyenv's shims exist for versions that are installed but not selected.
SUPPORTED_PYTHONS := 3.13 3.12 3.11
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for v in $(SUPPORTED_PYTHONS); do p=$$(command -v python$$v) && $$p -c '' 2>/dev/null && { echo $$p; exit; }; done; command -v python3)
endif
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
MLOPS := $(BIN)/mlops
PROJECT ?= iris
FEATURES ?= {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true
export ZENML_ANALYTICS_OPT_IN := false

.PHONY: help env demo ui test test-fast reliability lint lock format train predict serve monitor models audit status clean bench

help: ## List every verb
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	@echo "Python for .venv: $(PYTHON) ($$($(PYTHON) -c 'import platform; print(platform.python_version())'))"
	$(UV) sync --frozen --all-extras --compile-bytecode --python $(PYTHON)
	@touch $@

env: $(VENV)/.synced ## Create the virtual environment from the lockfile

demo: env ## Train iris through the ZenML pipeline (if no production model yet), serve it, predict over HTTP (Ctrl-C stops)
	$(MLOPS) demo --project $(PROJECT)

ui: env ## ZenML dashboard (runs, steps, artifacts) and MLflow UI (versions, aliases) on the project's state (Ctrl-C stops)
	$(MLOPS) ui --project $(PROJECT)

test: env ## Run the whole test suite (unit, pipeline, integration)
	$(BIN)/pytest

test-fast: env ## Unit tests only: tests/unit (models in a real MLflow registry are tests/integration/mlflow)
	$(BIN)/pytest tests/unit

reliability: env ## The reliability suite at full length (60 s of load); figures to benchmarks/results/reliability.json, table in docs/reliability.md
	MLOPS_RELIABILITY_FULL=1 MLOPS_RELIABILITY_OUT=benchmarks/results/reliability.json $(BIN)/pytest tests/reliability
	$(BIN)/python benchmarks/tables.py

lint: env ## ruff (lint + format check), mypy and the import contract (layers, .importlinter)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	@diff <($(UV) export --frozen --all-extras --no-dev --no-hashes --format requirements-txt -q | grep -v '^ *#') \
	      <(grep -v '^ *#' requirements.lock) >/dev/null || { echo "requirements.lock is stale: make lock"; exit 1; }

lock: $(UV) ## Re-lock after editing pyproject.toml (uv.lock + requirements.lock for pip)
	$(UV) lock
	$(UV) export --frozen --all-extras --no-dev --no-hashes --format requirements-txt -q -o requirements.lock

format: env ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# MODE=stack: run against the docker compose stack (`make up`) instead of the embedded default.
ifeq ($(MODE),stack)
train: deploy/.env
	$(COMPOSE) --profile pipeline run --rm pipeline mlops train --project $(PROJECT)

predict: deploy/.env
	@set -a; . deploy/.env; set +a; curl -fsS -X POST "http://127.0.0.1:$${MLOPS_PORT:-8000}/predict" \
	  -H "Content-Type: application/json" -H "X-API-Key: $${MLOPS_PREDICT_API_KEY}" -d '$(FEATURES)'; echo
else
train: env ## Run the training pipeline (MODE=stack: inside the compose stack, against the ZenML server)
	$(MLOPS) train --project $(PROJECT)

predict: env ## Predict FEATURES with the production model (MODE=stack: through the stack's service)
	$(MLOPS) predict '$(FEATURES)' --project $(PROJECT)
endif

models: env ## Registered versions, aliases, metrics
	$(MLOPS) models --project $(PROJECT)

audit: env ## Promotion history
	$(MLOPS) audit --project $(PROJECT)

status: env ## Where state lives, which versions hold which alias
	$(MLOPS) status --project $(PROJECT)

monitor: env ## The monitoring loop: drift every 10 minutes -> alert -> retrain job -> the new version in shadow (Ctrl-C stops)
	$(MLOPS) monitor --project $(PROJECT) --every 10m

serve: env ## Serve the production model on http://127.0.0.1:8000 (docs at /docs)
	$(MLOPS) serve --project $(PROJECT)

# BENCH_QUICK=1: one short run each, to check the harness (its figures overwrite benchmarks/results/).
# Every results file a table of docs/benchmarks.md reads is written here; then the plots and the tables.
BENCH_RUNS := $(if $(filter 1,$(BENCH_QUICK)),--runs 1)
BENCH_BATCH_10M := $(if $(filter 1,$(BENCH_QUICK)),100000,10000000)
BENCH_BATCH_2M := $(if $(filter 1,$(BENCH_QUICK)),100000,2000000)
bench: env ## Every benchmark against its baseline: JSON to benchmarks/results/, plots and tables in docs/ (BENCH_QUICK=1: short)
	$(BIN)/python benchmarks/training.py $(BENCH_RUNS)
	$(BIN)/python benchmarks/training_profile.py $(BENCH_RUNS)
	$(BIN)/python benchmarks/serving.py $(BENCH_RUNS) $(if $(filter 1,$(BENCH_QUICK)),--seconds 3)
	$(BIN)/python benchmarks/hotswap.py $(BENCH_RUNS) --poll-interval 0.5
	$(BIN)/python benchmarks/coldstart.py $(BENCH_RUNS) --profile
	$(BIN)/python benchmarks/predict_cpu.py $(if $(filter 1,$(BENCH_QUICK)),--runs 1 --requests 2000 --warmup 200)
	$(BIN)/python benchmarks/rollout.py $(if $(filter 1,$(BENCH_QUICK)),--quick)
	$(BIN)/python benchmarks/rollout.py $(if $(filter 1,$(BENCH_QUICK)),--quick) --out rollout-repeat.json
	$(BIN)/python benchmarks/prediction_log.py $(BENCH_RUNS) $(if $(filter 1,$(BENCH_QUICK)),--seconds 5)
	$(BIN)/python benchmarks/batch.py --project readmission $(BENCH_RUNS) --sizes $(BENCH_BATCH_10M) \
	  --modes floor local spark1 spark2 --out batch_engines-readmission-10m.json
	$(BIN)/python benchmarks/batch.py --project readmission $(BENCH_RUNS) --sizes $(BENCH_BATCH_2M) \
	  --out batch_engines-readmission.json
	$(BIN)/python benchmarks/search.py $(BENCH_RUNS)
	$(BIN)/python benchmarks/tracing.py $(BENCH_RUNS)
	$(BIN)/python benchmarks/plots.py
	$(BIN)/python benchmarks/tables.py

clean: ## Remove all local state (.mlops), caches and the environments
	rm -rf .mlops .pytest_cache .ruff_cache .mypy_cache $(VENV) $(TOOLS)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# ----- production stack (docker compose, deploy/) -----
COMPOSE := docker compose -f deploy/compose.yml --env-file deploy/.env
CMD ?= stack list

.PHONY: up down logs zenml validate-deploy

deploy/.env:
	sh deploy/scripts/gen-env.sh

up: deploy/.env ## Start the full stack (generates deploy/.env with random secrets if absent)
	MLOPS_GIT_COMMIT="$$(git rev-parse HEAD 2>/dev/null)" $(COMPOSE) up -d --build

down: ## Stop the stack (volumes are kept; `docker compose ... down -v` wipes them)
	$(COMPOSE) down

logs: ## Follow the stack's logs
	$(COMPOSE) logs -f --tail=100

zenml: deploy/.env ## ZenML CLI against the stack's server, e.g. make zenml CMD="pipeline runs list"
	$(COMPOSE) --profile pipeline run --rm pipeline zenml $(CMD)

validate-deploy: env ## Static checks of deploy/, configs/stacks and workflows (compose, hadolint, promtool, k8s, actionlint)
	$(BIN)/pytest tests/static
