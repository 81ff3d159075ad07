# tradelab: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.tradelab-demo
export TRADELAB_DEMO_HOME := $(DEMO_HOME)
# make demo SERVE=0 stops once the demo run has finished (for tests and scripts)
SERVE ?= 1
# make demo BACKEND=runpod-fake trains on a "pod" of the in-repo fake RunPod instead of a local process
BACKEND ?= local

.PHONY: setup demo test lint bench lock clean

setup: $(STAMP)

# Re-install only when the pins or the package metadata change.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: setup
	SERVE=$(SERVE) BACKEND=$(BACKEND) bash scripts/demo.sh

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/bench_data.py
	$(PY) bench/bench_tools.py
	$(PY) bench/bench_env.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_api.py
	$(PY) bench/bench_compute.py

# Re-pin requirements.lock (the Docker image's full runtime closure) from requirements.txt in a fresh venv.
lock:
	bash scripts/lock.sh

clean:
	rm -rf $(VENV) $(DEMO_HOME) bench/results .pytest_cache .ruff_cache
