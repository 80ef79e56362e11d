"""Constants of the digital twin refresh and of the RUL models the platform trains itself."""

from __future__ import annotations

# --- twin refresh ---------------------------------------------------------------------------

# At most one TwinSnapshot per asset per this many seconds (the chart does not need more,
# and a refresh every few seconds must not grow the table without bound).
SNAPSHOT_MIN_INTERVAL_S = 60.0
# Degradation rate: health at the latest row and RATE_POINTS - 1 earlier rows RATE_STRIDE apart.
# A shorter stride than the RUL package's default keeps the telemetry query small.
RATE_POINTS = 5
RATE_STRIDE = 2
# Per-reading (cycle) models look this far back for their last rows.
CYCLE_LOOKBACK_S = 30 * 24 * 3600.0
# Where the store tells new rows apart (SQLite), a refresh reads only the rows stored since the
# previous one (twins/twin_window.py); it still reads each window in full at least this often.
TWIN_FULL_READ_S = 600.0
# How many snapshots the twin history endpoint returns at most (newest kept).
HISTORY_MAX_POINTS = 2000

# --- models of the simulated demo asset types ----------------------------------------------

# One training row per ROW_SECONDS of operating time: the twin refresh averages the 1 Hz
# telemetry into buckets of the same width, so the model sees the same kind of rows.
SIM_ROW_SECONDS = 60.0
# Each training row is the mean of this many simulator samples spread over its interval,
# standing in for the bucket average of the live stream (the motor's vibration window costs
# ~0.4 ms a sample, so it gets fewer).
SIM_SAMPLES_PER_ROW = {"induction_motor": 4, "centrifugal_pump": 12, "hvac_unit": 12}
# 30 rows = 30 minutes of history per estimate: a fresh demo asset has a first (wide) estimate
# after its first minute of data and a full window after half an hour.
SIM_WINDOW = 30
# Remaining life above this many hours is not observable from the signals (wear only starts
# at 40% of the life); labels are capped, like the 125 cycles of C-MAPSS. With 24 h a healthy
# asset read ~70% health (it might be early in a short life); 12 h keeps it near 90%.
SIM_CAP_HOURS = 12.0
# Lives of the simulated training units, in operating hours (the demo fleet fails at 6-48 h).
SIM_LIFE_HOURS = (4.0, 52.0)
SIM_DEFAULT_UNITS = 40
# Healthy operating time kept before each training unit's wear onset.
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
