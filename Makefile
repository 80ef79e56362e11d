# Two commands: `make demo` runs the platform on its embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-timescale bench-timescale venv lint bench-ingest bench-edge bench-rul bench-whatif bench-whatif-engine bench-twins rul-fd001 bench-live bench-rollout bench-faults screenshots clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# The TimescaleDB harness of the `timescale` tests (tests/timescale/harness: PGlite with
# TimescaleDB, pinned in package-lock.json). Without npm those tests skip (CI installs it).
HARNESS := tests/timescale/harness
HARNESS_STAMP := $(HARNESS)/node_modules/.installed

$(HARNESS_STAMP): $(HARNESS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(HARNESS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the TimescaleDB harness is not installed; its tests skip"; fi

venv: $(STAMP)

demo: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	$(PY) manage.py run_embedded

test: $(STAMP) $(HARNESS_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-timescale: $(STAMP) $(HARNESS_STAMP)
	$(PY) -m pytest -m timescale $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench-ingest: $(STAMP)
	$(PY) bench/ingest.py

bench-edge: $(STAMP)
	$(PY) bench/edge.py

bench-rul: $(STAMP)
	$(PY) bench/rul.py

bench-whatif: $(STAMP)
	$(PY) bench/whatif.py

bench-whatif-engine: $(STAMP)
	$(PY) bench/whatif_engine.py

bench-twins: $(STAMP)
	$(PY) bench/twin_refresh.py

rul-fd001: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py train_rul --cmapss datasets/cmapss/train_FD001.txt.gz

bench-live: $(STAMP)
	$(PY) bench/live_latency.py

bench-rollout: $(STAMP)
	$(PY) bench/rollout.py

bench-faults: $(STAMP)
	$(PY) bench/faults.py

bench-timescale: $(STAMP) $(HARNESS_STAMP)
	$(PY) bench/timescale_aggregate.py

screenshots: $(STAMP)
	$(PY) manage.py screenshots

clean:
	rm -rf $(VENV) var
