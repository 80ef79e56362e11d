"""Constants of the digital twin refresh and of the RUL models the platform trains itself."""

from __future__ import annotations

# --- twin refresh ---------------------------------------------------------------------------

# At most one TwinSnapshot per asset per this many seconds (the chart does not need more,
# and a refresh every few seconds must not grow the table without bound).
SNAPSHOT_MIN_INTERVAL_S = 60.0
# Per-reading (cycle) models look this far back for their last rows.
CYCLE_LOOKBACK_S = 30 * 24 * 3600.0
# Where the store tells new rows apart (SQLite), a refresh reads only the rows stored since the
# previous one (twins/twin_window.py); it still reads each window in full at least this often.
TWIN_FULL_READ_S = 600.0
# How many snapshots the twin history endpoint returns at most (newest kept).
HISTORY_MAX_POINTS = 2000

# A median this close to the model's cap reads as "at least the cap": the forest averages a few
# slightly worn training rows into its leaves, so an unworn asset comes out a hair under it.
AT_CAP_SHARE = 0.97

# --- models of the simulated demo asset types ----------------------------------------------

# One training row per ROW_SECONDS of operating time: the twin refresh averages the 1 Hz
# telemetry into buckets of the same width, so the model sees the same kind of rows.
SIM_ROW_SECONDS = 60.0
# Each training row is the mean of this many simulator samples spread over its interval,
# standing in for the bucket average of the live stream (the motor's vibration window costs
# ~0.5 ms a sample, so it gets fewer).
SIM_SAMPLES_PER_ROW = {"induction_motor": 3, "centrifugal_pump": 12, "hvac_unit": 12}
# 30 rows = 30 minutes of history per estimate (the demo writes its fleet's recent past, so a
# twin has them from the first refresh).
SIM_WINDOW = 30
# Remaining life above this many operating hours is not observable from the signals: wear only
# shows from about half-way through a life (a P-F interval of months), and lives vary by a factor
# of two. Labels are capped there, like the 125 cycles of C-MAPSS; a healthy asset shows "more
# than the cap". About 0.45 of the shortest life of the type (edge_node.agent.asset_types).
SIM_CAP_HOURS = {"induction_motor": 10_000.0, "centrifugal_pump": 7_000.0, "hvac_unit": 10_000.0}
SIM_DEFAULT_UNITS = 24
# Repeats of the validation protocol for the demo models (2 gives a spread; the demo trains them
# at start, in the background, so fewer than the turbofan model's 3).
SIM_PROTOCOL_SEEDS = 2
# A life of tens of thousands of hours is not simulated minute by minute: each training unit is
# a series of snippets of SIM_SNIPPET_ROWS consecutive rows (enough for a full window), at
# SIM_RAMP_SNIPPETS remaining lives spread over [0, cap] (denser near the end, where the
# figures matter most) and SIM_PLATEAU_SNIPPETS ages before the cap (all labelled at the cap).
SIM_SNIPPET_ROWS = 45
SIM_RAMP_SNIPPETS = 36
SIM_PLATEAU_SNIPPETS = 8
# Short lives (tests, a fast demo) are simulated whole instead, from this long before wear onset.
SIM_HEALTHY_LEAD_S = 4 * 3600.0
# Cheapest to simulate first: the embedded stack trains missing demo models in this order.
SIM_TYPES = ("centrifugal_pump", "hvac_unit", "induction_motor")

# --- C-MAPSS turbofan models ----------------------------------------------------------------

TURBOFAN_TYPE = "turbofan"
# A C-MAPSS cycle is one flight; the calendar conversion assumes this many operating hours per
# cycle (stated next to every estimate).
DEFAULT_HOURS_PER_CYCLE = 1.5
# C-MAPSS column names -> the replay source's metric keys (edge_node/agent/sources/cmapss.py).
CMAPSS_SIGNAL_METRICS = {f"sensor_{n}": f"s{n}" for n in (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21)}
