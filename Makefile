# Every target installs what it needs: a .venv with the project (editable) and, for the
# targets that start a real Prometheus, the Debian package when it is missing and apt is usable.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv prometheus run test lint typecheck unit bench evaluate dashboards rules clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)  ## create .venv with the project and its dev tools

prometheus:  ## install Debian's prometheus (server + promtool) when missing
	@scripts/ensure-prometheus.sh

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check energyd adapter tests bench dashboards

typecheck: $(STAMP)  ## mypy --strict on the packages, tests, benchmarks and dashboards
	$(BIN)/mypy

unit: $(STAMP) prometheus  ## pytest
	$(BIN)/pytest -q

test: lint typecheck unit  ## ruff, mypy and pytest (what CI runs)

# The targets below are filled in by the issues that own them.
bench: $(STAMP)  ## benchmarks: energyd sampling, solver times, simulator speed
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Every measured profile shipped (synthetic examples excluded) through every workload and policy.
EVAL_PROFILES ?= $(filter-out adapter/data/profiles/synthetic-%,$(wildcard adapter/data/profiles/*.yaml))
evaluate: $(STAMP)  ## simulate workloads x policies x seeds; writes docs/evaluation/README.md + PNGs
	$(BIN)/adapter evaluate --profiles $(EVAL_PROFILES) --out docs/evaluation --seeds 3 --jobs 2

dashboards: $(STAMP)  ## write the Grafana dashboards' JSON to dashboards/out/
	$(BIN)/python -m dashboards.generate --out dashboards/out

# The whole stack on one machine with a simulated pipeline (docs/run.md); RUN_ARGS passes options
# to the orchestrator, e.g. RUN_ARGS='--workload steady_high'. Ctrl-C stops every process it started.
run: $(STAMP) prometheus  ## energyd, Prometheus, the adapter and a stand-in cluster; prints the URLs
	$(BIN)/python -m adapter.standin.stack $(RUN_ARGS)

rules: prometheus  ## promtool: check and unit-test the Prometheus rules in deploy/prometheus/
	promtool check rules deploy/prometheus/rules.yaml
	cd deploy/prometheus && promtool test rules rules.test.yaml
