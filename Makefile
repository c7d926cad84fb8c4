# The two entry points a newcomer needs: `make demo` and `make test`.
# Each one creates the virtual environment and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP  := $(VENV)/.installed

.PHONY: demo test test-services test-fast lint typecheck unit bench clean

# The programs the integration tests start (Java and Maven for the local Kafka,
# Prometheus and promtool, Alertmanager and amtool, tini): as root it apt-get installs
# what is missing; any other user gets one line naming the packages, and make stops.
# Only `make test` runs it; `make demo` needs none of them.
TEST_SERVICES ?= scripts/install-test-services

# Packages go in with uv (from PyPI, into the venv): it resolves and installs the test
# tools in seconds where pip takes about a minute.
UV := $(BIN)/python -m uv pip install --quiet --python $(BIN)/python

# What running needs, and nothing else: the demo installs only this (and the installer).
$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv>=0.9,<1'
	$(UV) -e .
	touch $(RUNTIME)

# The test tools on top (pytest, ruff, mypy, the deploy checkers, pandas).
$(STAMP): $(RUNTIME)
	$(UV) -e '.[test]'
	touch $(STAMP)

demo: $(RUNTIME)
	$(BIN)/driftd demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite on both cores: a module stays on one worker (its services start
# once), each worker has its own Kafka broker, and modules go out in the order
# tests/conftest.py gives them (slow ones first), not xdist's biggest-first.
unit: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

test-services:
	VENV=$(VENV) PYTHON=$(PYTHON) $(TEST_SERVICES)

# The installer runs first; under `make test` a missing service fails its tests
# instead of skipping them (tests/required_tools.py).
test: export DRIFTDTEST_REQUIRE_SERVICES := 1
test: test-services lint typecheck unit

# Unit, property and oracle tests: no broker, Prometheus or subprocess soak; both cores.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not integration and not slow" -n 2

# Every benchmark with --quick. Each appends its JSON lines to $(BENCH_LINES); the run
# ends with benchmarks.summary: one line per missed target, and per benchmark that
# failed (a failure does not stop the others, but makes the run exit non-zero).
BENCH_LINES ?= $(VENV)/bench-lines.jsonl
BENCHMARKS := startup sketch_throughput ks_speed adwin_speed decode_speed join_throughput checkpoint_size detection_quality concept_pairs hardening e2e_throughput publish_throughput state_snapshot decision_memory scrape_size scale beyond_univariate

bench: $(STAMP)
	@rm -f $(BENCH_LINES); failed=""; \
	for b in $(BENCHMARKS); do \
		echo "== benchmarks.$$b"; \
		BENCHMARK_LINES=$(BENCH_LINES) $(BIN)/python -m benchmarks.$$b --quick || failed="$$failed $$b"; \
	done; \
	echo "== summary ($(BENCH_LINES))"; \
	$(BIN)/python -m benchmarks.summary $(BENCH_LINES) --failed $$failed

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
