# Two commands: `make demo` runs the platform on its embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint bench-ingest bench-edge bench-rul bench-whatif bench-whatif-engine bench-twins rul-fd001 bench-live bench-rollout bench-pages screenshots clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	$(PY) manage.py run_embedded

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

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

bench-pages: $(STAMP)
	$(PY) bench/pages.py

screenshots: $(STAMP)
	$(PY) manage.py screenshots

clean:
	rm -rf $(VENV) var
