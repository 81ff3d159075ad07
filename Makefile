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

WEB := frontend/dist/index.html
NODE_MODULES := frontend/node_modules/.package-lock.json
WEB_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.ts \
	frontend/tsconfig.json frontend/openapi.json

.PHONY: setup demo dry-run test lint bench lock browser clean

setup: $(STAMP) $(WEB)

# The dashboard: npm packages from the lock file, then the static build that `tradelab serve` serves at /.
$(NODE_MODULES): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error

$(WEB): $(NODE_MODULES) $(WEB_SOURCES)
	cd frontend && npm run build

# Debian's Chromium for the browser tests (never a downloaded browser); installed when missing and root.
browser:
	@test -x /usr/bin/chromium || [ "$$(id -u)" != 0 ] || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; } >/dev/null
	@test -x /usr/bin/chromium || echo "no /usr/bin/chromium (install Debian's chromium): the browser tests will skip"

# The venv holds exactly requirements-dev.lock (runtime + dev tools, pip included). A changed lock builds a fresh
# venv, so nothing a previous lock installed is left behind; re-pinning is the deliberate `make lock`.
$(STAMP): requirements.txt requirements-dev.txt requirements-dev.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$$(grep -E '^pip==' requirements-dev.lock)"
	$(PY) -m pip install --quiet -r requirements-dev.txt -c requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: setup
	SERVE=$(SERVE) BACKEND=$(BACKEND) bash scripts/demo.sh

# The whole lab rehearsed through the API on the fake RunPod: seeds, a sweep, an ensemble, a re-evaluation.
dry-run: setup
	$(PY) scripts/dry_run.py

test: setup browser
	$(VENV)/bin/ruff check .
	cd frontend && npm test
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup browser
	$(PY) bench/bench_data.py
	$(PY) bench/bench_tools.py
	$(PY) bench/bench_lookahead.py
	$(PY) bench/bench_env.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_api.py
	$(PY) bench/bench_compute.py
	$(PY) bench/bench_ui.py

# Re-pin requirements.lock (the Docker image's runtime closure) and requirements-dev.lock (what .venv holds) in a
# fresh venv: the one deliberate way versions change.
lock:
	bash scripts/lock.sh

clean:
	rm -rf $(VENV) $(DEMO_HOME) bench/results .pytest_cache .ruff_cache frontend/node_modules frontend/dist
