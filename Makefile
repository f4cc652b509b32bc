# uvs-analysis: two commands do all the set-up on a fresh machine with Python 3.11.
#   make demo   runs the main job on the embedded default and prints where the result is
#   make test   runs the whole suite, notebooks included
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := uvs-analysis

.PHONY: help env demo test bench soak lab lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

env: $(STAMP)  ## create .venv and install the package, its dependencies and the kernel

$(STAMP): pyproject.toml constraints.txt
	@# System packages the tests use: nginx (proxy fault profiles), Chromium (the report in a browser)
	@missing=""; \
	{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null || missing="$$missing nginx-light"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (uvs-analysis)" >/dev/null
	@touch $@

demo: $(STAMP)  ## run the main job on the embedded default (no cloud account)
	$(BIN)/uvs-analysis report -f params/demo.yaml

test: $(STAMP)  ## the whole suite: package tests, notebooks (nbval), lint and types
	$(BIN)/ruff check uvs_analysis tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest --nbval-lax -p no:cacheprovider

bench: $(STAMP)  ## benchmarks, each against a baseline measured in the same run
	$(BIN)/python -m benchmarks

soak: $(STAMP)  ## long load checks: 1,000 concurrent sessions, a 1 GB export through the report
	$(BIN)/python -m benchmarks.soak

lab: $(STAMP)  ## JupyterLab on notebooks/ with the project's kernel
	$(BIN)/jupyter lab --notebook-dir=notebooks

lock:  ## refresh constraints.txt from a fresh resolution
	rm -rf /tmp/uvs-lock && $(PYTHON) -m venv /tmp/uvs-lock
	/tmp/uvs-lock/bin/pip install -q -e '.[dev]'
	/tmp/uvs-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:  ## remove the environment and caches (outputs/ is kept)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
