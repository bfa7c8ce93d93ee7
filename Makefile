# Every target installs what it needs: a .venv with the project (editable) and, for the
# targets that start a real Prometheus, the Debian package when it is missing and apt is usable.
# `make run` installs only what running needs (the project with its `adapter` extra: no test,
# lint or plotting tools, no Gurobi); the other targets install the `dev` extra, a superset.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.installed-run-stamp

.PHONY: help venv prometheus kubectl sizes run test lint typecheck unit bench evaluate dashboards rules clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)  ## create .venv with the project and its dev tools

# Skipped when the dev install is already current: it holds everything `run` needs.
$(RUN_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then :; else \
	  [ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -e '.[adapter]'; fi
	@touch $@

prometheus:  ## install Debian's prometheus (server + promtool) when missing
	@scripts/ensure-prometheus.sh

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check energyd adapter tests bench dashboards

typecheck: $(STAMP)  ## mypy --strict on the packages, tests, benchmarks and dashboards
	$(BIN)/mypy

kubectl:  ## install Debian's kubectl when missing (the manifest tests render deploy/ with `kubectl kustomize`)
	@scripts/ensure-kubectl.sh

unit: $(STAMP) prometheus kubectl  ## pytest
	$(BIN)/pytest -q

test: lint typecheck unit  ## ruff, mypy and pytest (what CI runs)

# The targets below are filled in by the issues that own them.
bench: $(STAMP)  ## benchmarks: energyd sampling, solver times, simulator speed
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Every measured profile shipped (synthetic examples excluded) through every workload and policy.
EVAL_PROFILES ?= $(filter-out adapter/data/profiles/synthetic-%,$(wildcard adapter/data/profiles/*.yaml))
evaluate: $(STAMP)  ## simulate windows x policies x frontiers (gamma tuned on held-out windows); writes docs/evaluation/README.md + PNGs
	$(BIN)/adapter evaluate --profiles $(EVAL_PROFILES) --out docs/evaluation --jobs 2

dashboards: $(STAMP)  ## regenerate the committed Grafana dashboards' JSON in deploy/grafana/dashboards/
	$(BIN)/python -m dashboards.generate

sizes: $(STAMP)  ## installed size of each runtime set from the built wheel (docs/deploy.md)
	$(BIN)/python -m tests.deploy.wheelenv

# The whole stack on one machine with a simulated pipeline (docs/run.md); RUN_ARGS passes options
# to the orchestrator, e.g. RUN_ARGS='--workload steady_high'. Ctrl-C stops every process it started.
run: $(RUN_STAMP) prometheus  ## energyd, Prometheus, the adapter and a stand-in cluster; prints the URLs
	$(BIN)/python -m adapter.standin.stack $(RUN_ARGS)

rules: prometheus  ## promtool: check and unit-test deploy/prometheus/rules.yaml; regenerate its PrometheusRule
	$(PYTHON) scripts/prometheusrule.py
	promtool check rules deploy/prometheus/rules.yaml
	cd deploy/prometheus && promtool test rules rules.test.yaml
