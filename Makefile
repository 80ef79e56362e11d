# Two commands: `make demo` runs the platform on its embedded default; `make test` runs the suite.
# `make demo` installs the runtime (requirements.txt) only; tests, lint, benchmarks and the
# browser need requirements-dev.txt on top. `make production-check` runs the production stack.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed-dev
PROD_VENV := .venv-prod

.PHONY: demo test test-stack test-timescale venv lint production-check bench-ingest bench-edge bench-rul bench-rul-models bench-whatif bench-whatif-engine bench-twins rul-fd001 bench-live bench-rollout bench-abuse bench-faults bench-timescale bench-protocols bench-pages bench-api bench-scaleout screenshots clean

$(RUNTIME): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(RUNTIME)

$(STAMP): $(RUNTIME) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The TimescaleDB harness of the `timescale` tests (tests/timescale/harness: PGlite with
# TimescaleDB, pinned in package-lock.json). Without npm those tests skip (CI installs it).
HARNESS := tests/timescale/harness
HARNESS_STAMP := $(HARNESS)/node_modules/.installed

$(HARNESS_STAMP): $(HARNESS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(HARNESS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the TimescaleDB harness is not installed; its tests skip"; fi

# What a production host installs: the runtime file only, in its own virtualenv.
$(PROD_VENV)/.installed: requirements.txt
	test -x $(PROD_VENV)/bin/python || $(PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PROD_VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $(PROD_VENV)/.installed

venv: $(STAMP)

demo: $(RUNTIME)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	$(PY) manage.py run_embedded

# Two pytest lanes side by side, each with its own services (tests/lanes.py); PYTEST_ARGS naming
# test paths, or AIOT_TEST_LANES=1, run one plain pytest.
test: $(STAMP) $(HARNESS_STAMP)
	$(PY) -m tests.lanes $(PYTEST_ARGS)

# The production check's short form (several minutes: the whole production stack, every process
# killed under traffic); kept out of `make test`, run by .ci/run after it.
test-stack: $(STAMP)
	$(PY) -m pytest -m stack $(PYTEST_ARGS)

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

# LightGBM against the 1D-CNN and their average under the protocol: needs torch (requirements-train.txt)
bench-rul-models: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-train.txt
	nice -n 10 $(PY) bench/rul_models.py

bench-whatif: $(STAMP)
	$(PY) bench/whatif.py

bench-whatif-engine: $(STAMP)
	$(PY) bench/whatif_engine.py

bench-twins: $(STAMP)
	$(PY) bench/twin_refresh.py

bench-scaleout: $(STAMP)
	$(PY) bench/scaleout.py

rul-fd001: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py train_rul --cmapss datasets/cmapss/train_FD001.txt.gz

bench-live: $(STAMP)
	$(PY) bench/live_latency.py

bench-rollout: $(STAMP)
	$(PY) bench/rollout.py

bench-abuse: $(STAMP)
	$(PY) bench/abuse.py

bench-faults: $(STAMP)
	$(PY) bench/faults.py

bench-timescale: $(STAMP) $(HARNESS_STAMP)
	$(PY) bench/timescale_aggregate.py

# Every process of the README's production table as its own OS process (TLS, PostgreSQL,
# Redis, Mosquitto), run from the runtime-only virtualenv; prints a JSON line last.
production-check: $(STAMP) $(PROD_VENV)/.installed
	$(PY) -m deploy.prodcheck --python $(PROD_VENV)/bin/python $(CHECK_ARGS)

bench-protocols: $(STAMP)
	$(PY) bench/protocols.py

bench-pages: $(STAMP)
	$(PY) bench/pages.py

# The REST API, exports and notifications (PostgreSQL, Redis, a Celery worker, SMTP and HTTP receivers).
bench-api: $(STAMP)
	$(PY) bench/api.py

screenshots: $(STAMP)
	$(PY) manage.py screenshots

clean:
	rm -rf $(VENV) $(PROD_VENV) var
