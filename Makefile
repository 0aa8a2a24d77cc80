# The commands of the README. Each creates .venv in the checkout when missing and installs the
# pinned dependencies (torch first, so pip takes the local CPU wheel), then runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.madx-installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup demo test test-fast reference-venv bench ui-check docs
setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned dependencies into $(VENV) (first run: a few minutes)..."
	@# The machine's pip config lists local index folders that do not exist; drop those warnings.
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@# One-off: Prefect's local database and the MLflow store template, so the first run does not wait for them.
	$(VENV)/bin/madx prepare
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/madx demo $(DEMO_ARGS)

# Tests run in one pytest process per core (pytest-xdist); a worker that finishes early takes
# queued tests from the other (worksteal), so the long Prefect and subprocess tests do not pile up
# at the end. TEST_WORKERS=0 runs them in this process (for --pdb, -x, print debugging).
TEST_WORKERS ?= auto
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

# The whole suite (what CI runs), about 8-9 minutes on 2 cores. The AdapterHub reference venv
# (adapters 1.3.0, its own transformers) is a set-up step of the tests: built once (~45 s), then reused.
test: setup reference-venv
	$(PYTEST) $(TEST_ARGS)

# What a change needs checked while working: everything but Prefect runs, subprocesses, servers and
# the real encoder (tests marked `slow`), in under a minute.
test-fast: setup
	$(PYTEST) -m "not slow" $(TEST_ARGS)

reference-venv:
	@bash scripts/adapterhub_env.sh >/dev/null

# docs/configuration.md, the reference of every config key, from the config models (flows/config_docs.py);
# tests/test_configuration_docs.py fails while the committed file is out of date.
docs: setup
	$(PY) -m flows.config_docs

# The adapter cost benchmarks (bench/README.md): every target, ~25 min on 2 idle cores (an estimate: ~12 of them the real demo; not yet timed whole). BENCH_ARGS="--full", "--threads 1" etc.
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

# The MLflow UI as the comparison tool, checked in headless Chromium (scripts/mlflow_ui_check.py):
# needs Debian's Chromium (apt-get install -y chromium); installs Playwright (the `ui-check` extra)
# once. OUTPUT=runs/demo checks that finished pipeline folder, without OUTPUT a small fake store;
# screenshots go to runs/ui-check/. UI_CHECK_ARGS="--group-by tag:madx.setup --metric f1" etc.
ui-check: setup
	@test -x /usr/bin/chromium || command -v chromium >/dev/null || { echo "ui-check: Chromium is missing: apt-get install -y chromium" >&2; exit 2; }
	@$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check -e '.[ui-check]' 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	$(PY) scripts/mlflow_ui_check.py $(if $(OUTPUT),--output-dir $(OUTPUT),--demo-store) --chromium "$$(command -v chromium || echo /usr/bin/chromium)" $(UI_CHECK_ARGS)
