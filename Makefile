# The two commands of the quick start: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# setup -> tools -> stack -> checks
.PHONY: tools setup stack stack-down demo test test-cluster faults lint typecheck unit integration e2e bench clean

setup: $(STAMP)

# the virtualenv with the project and its dev extra; redone when pyproject.toml changes
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# the local Kafka + Redis on loopback (no-op when they already answer)
stack: setup
	$(BIN)/scamwatch stack up

# kcat: a non-Python Kafka client the stack tests use to show any client sees the broker;
# prometheus (with promtool): the real Prometheus the metrics tests scrape a worker with,
# and the rule checks (Debian's package; its service is not started, tests run their own)
TOOLS := kcat:kcat prometheus:prometheus promtool:prometheus
tools:
	@missing=""; for tool in $(TOOLS); do \
	  command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$(echo $$missing | tr ' ' '\n' | sort -u) >/dev/null; \
	  else echo "missing:$$missing: install with 'apt-get install$$missing'"; exit 1; fi; fi

stack-down: setup
	$(BIN)/scamwatch stack down

demo: setup
	$(BIN)/scamwatch demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/unit -q

integration: stack
	$(BIN)/pytest tests/integration -q

# the 3-broker secured Kafka stack on ports of its own (19092..19103, Redis 16579), the Redis
# Cluster (17379..17381) and the secured Redis (17479), which use the shared Kafka, and every
# command on a secured single-node stack (19392..19395, Redis 16879); the worker on a plain and
# a secured Redis Cluster (free ports from 12000); `test` runs them too
test-cluster: stack
	$(BIN)/pytest tests/integration/test_stack_cluster.py tests/integration/test_redis_cluster.py \
	  tests/integration/test_redis_secure.py tests/integration/test_secured_stack.py \
	  tests/integration/test_worker_redis_cluster.py -q

# fault tests: a 3-broker cluster of their own on free ports under 31000, its own Redis, real
# workers, one fault each; a 3-master Redis Cluster of their own (free ports from 12000) with
# the shared Kafka (README "Faults and what they cost"); `test` runs them too
faults: stack
	$(BIN)/pytest tests/integration/test_faults.py tests/integration/test_faults_redis_cluster.py \
	  -q -s -rfE --durations=10

e2e: stack
	$(BIN)/pytest tests/e2e -q

test: setup tools stack lint typecheck
	$(BIN)/pytest tests -q -rfE --durations=15

bench: stack
	$(BIN)/python benchmarks/bench_matcher.py
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_gc.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_hostile.py
	$(BIN)/python benchmarks/bench_hunt.py
	$(BIN)/python benchmarks/bench_updates.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
