"""Constants of the what-if scenarios app (the engine's bounds live in twins.sim.const)."""

from __future__ import annotations

# --- calibration: what we assume when the twin does not say ------------------------------
# An RUL model trained on flight cycles (C-MAPSS turbofans) reports RUL in cycles; without an
# hours_per_cycle in the model's meta or the twin's details we take one cycle as one operating
# hour, and say so with the result.
DEFAULT_HOURS_PER_CYCLE = 1.0
# An asset without a twin state yet: assumed half-way (health 0.5) through a default life of
# DEFAULT_LIFE_HOURS operating hours (a typical L10-rated industrial bearing life), i.e. a
# median remaining life of 10,000 operating hours.
DEFAULT_HEALTH = 0.5
DEFAULT_LIFE_HOURS = 20_000.0
# The engine needs health in (0, 1]: a twin reporting 0 (failed) is simulated just alive.
MIN_HEALTH = 0.001

# --- variants of one run --------------------------------------------------------------------
VARIANT_SCENARIO = "scenario"
VARIANT_BASELINE = "baseline"
VARIANTS = (VARIANT_BASELINE, VARIANT_SCENARIO)

# --- chunking and progress ----------------------------------------------------------------------
# Chunks per variant: enough for several workers to share one scenario and balance their load;
# each chunk costs one plan build and one DB row. settings.SCENARIO_CHUNKS overrides it.
DEFAULT_CHUNKS = 8
MIN_REPLICATIONS_PER_CHUNK = 25
# The recommendation check (100 replications of up to two policies): as many chunks as the
# simulation, each of at least this many replications (each chunk costs a task, a plan build
# and a row; four chunks keep two workers busy).
MIN_CHECK_REPLICATIONS_PER_CHUNK = 25
# The embedded default's in-process worker: two threads (web/embedded.py).
EMBEDDED_CHUNKS = 2
# A chunk task reports progress (one UPDATE + one group message) at most this often...
PROGRESS_INTERVAL_S = 0.5
# ...and reads the run's cancel flag at most this often.
CANCEL_POLL_S = 0.5
# The run page's socket: at most one frame per FLUSH_INTERVAL_S, latest progress winning.
FLUSH_INTERVAL_S = 0.25
# Celery retries for database hiccups (bounded, with backoff).
TASK_MAX_RETRIES = 5

WS_PATH_PREFIX = "ws/scenarios/runs/"
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NO_ROLE = 4403
CLOSE_NOT_FOUND = 4404
