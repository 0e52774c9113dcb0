# unmixlab: `make help` lists the targets.
.DEFAULT_GOAL := help
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## install ffmpeg, create .venv and install the project with its test tools
	bash scripts/setup.sh test,kubeflow,auth,dashboard

demo: setup  ## the main job: synthetic data -> training flow (quickstart) -> museval -> champion
	$(VENV)/unmixlab run training --preset quickstart

test: setup  ## run the whole test suite, README examples aside (see test-readme), on two workers
	$(VENV)/python -m pytest -m "not readme" -n 2 --dist loadfile

test-readme: setup  ## run README.md's command-line examples as written, in a temporary folder
	$(VENV)/python -m pytest -m readme tests/test_readme.py

test-fast: setup  ## the unit tests only (no training end to end, no servers): under a minute
	$(VENV)/python -m pytest -m "not slow and not integration and not readme"

lint: setup  ## ruff lint and format check, and the layer contracts (import-linter)
	$(VENV)/ruff check . && $(VENV)/ruff format --check . && $(VENV)/lint-imports

ui: setup  ## open the MLflow UI on the local store (http://127.0.0.1:5000)
	$(VENV)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts --host 127.0.0.1 --port 5000

prefect-ui: setup  ## start a local Prefect server with its UI (http://127.0.0.1:4200)
	$(VENV)/prefect server start --host 127.0.0.1

# the Prefect server `make worker` deploys to and polls (`make prefect-ui` serves this one)
PREFECT_API_URL ?= http://127.0.0.1:4200/api

worker: setup  ## deploy prefect.yaml and run its process worker (with `make prefect-ui` running)
	export PREFECT_API_URL=$(PREFECT_API_URL) UNMIXLAB_PROJECT_DIR=$(CURDIR) && \
	{ $(VENV)/prefect work-pool inspect unmixlab-process >/dev/null 2>&1 || \
	  $(VENV)/prefect work-pool create unmixlab-process --type process; } && \
	$(VENV)/prefect --no-prompt deploy --all && \
	$(VENV)/prefect worker start --pool unmixlab-process

infra-up:  ## start the team services (PostgreSQL, MinIO, MLflow, Prefect) with docker compose
	docker compose -f infra/docker-compose.yml --env-file infra/.env up -d

.PHONY: help setup demo test test-readme test-fast lint ui prefect-ui worker infra-up
