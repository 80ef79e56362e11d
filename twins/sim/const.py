"""Constants of the what-if simulation: engineering laws, defaults and input bounds.

Everything a planner might question ("why cubic?", "why 10 °C?") is named here once and
quoted back in every result's assumptions.
"""

from __future__ import annotations

# --- engineering laws -------------------------------------------------------------------
# Basic rating life of a rolling bearing (Lundberg-Palmgren, ISO 281): L10 = (C/P)^p million
# revolutions, p = 3 for ball bearings (10/3 for roller bearings). Life therefore scales with
# load^-p.
BEARING_LOAD_EXPONENT = 3.0
# L10h = 10^6 / (60 n) * (C/P)^p: at a fixed number of revolutions, life in hours scales 1/rpm.
BEARING_SPEED_EXPONENT = 1.0
# Montsinger / Arrhenius rule of thumb for insulation: life halves for every ~10 °C rise.
INSULATION_HALVING_C = 10.0
# Copper (I²R) losses scale with the square of current, hence of load for a motor at fixed
# voltage; the steady-state temperature rise over ambient follows the losses.
TEMPERATURE_RISE_LOAD_EXPONENT = 2.0
# Two-sided 80 % interval of a normal variable: p10 and p90 sit ±1.2816 sigma from the median.
Z_P90 = 1.2815515655446004

# --- default model parameters -----------------------------------------------------------
# Log-spread of the current component's remaining life when the twin gives a rate but no interval.
DEFAULT_RUL_LOG_SIGMA = 0.35
# Weibull shape of a new component's life; 1.5 is the ISO 281 dispersion slope for bearings.
DEFAULT_WEIBULL_SHAPE = 1.5
# Log-spread of repair and preventive job durations around their nominal hours.
REPAIR_TIME_LOG_SIGMA = 0.25
# Log-spread of the twin's RUL prediction error the RUL-based policy acts on.
PROGNOSTIC_LOG_SIGMA = 0.20
DEFAULT_AMBIENT_C = 25.0
# Crew priorities on the shared crew resource: smaller is served first.
PRIORITY_CORRECTIVE = 0
PRIORITY_PREVENTIVE = 1

# --- policies -----------------------------------------------------------------------------
POLICY_RUN_TO_FAILURE = "run_to_failure"
POLICY_TIME_BASED = "time_based"
POLICY_CONDITION_BASED = "condition_based"
POLICY_RUL_BASED = "rul_based"
POLICIES = (
    POLICY_RUN_TO_FAILURE,
    POLICY_TIME_BASED,
    POLICY_CONDITION_BASED,
    POLICY_RUL_BASED,
)

# --- input bounds (checked by validate_scenario) -----------------------------------------
MAX_HORIZON_DAYS = 1826  # five years
MAX_REPLICATIONS = 10_000
MAX_ASSETS = 500
# Work bound for one scenario: asset-years of simulation (assets x replications x years).
MAX_ASSET_YEARS = 2_000_000
MIN_CREW, MAX_CREW = 1, 50
MAX_SPARE_STOCK = 10_000
MAX_SPARE_LEAD_DAYS = 365.0
LOAD_FACTOR_RANGE = (0.1, 3.0)
SPEED_FACTOR_RANGE = (0.1, 3.0)
AMBIENT_DELTA_RANGE_C = (-40.0, 60.0)
MAX_HOURS_PER_DAY = 24.0
MAX_JOB_HOURS = 24.0 * 90
MAX_COST = 1e9
MAX_LIFE_HOURS = 1e7
MAX_SEED = 2**63 - 1
WEIBULL_SHAPE_RANGE = (0.5, 10.0)
# Shapes the life-law fit may choose (lifelaw.py): wider than a planner's input, so a very
# narrow twin interval or a part close to its known life gives a steep, not an absurd, law.
LIFE_FIT_SHAPE_RANGE = (0.3, 20.0)

# --- result shaping -----------------------------------------------------------------------
QUANTILES = (0.10, 0.50, 0.90)
HISTOGRAM_BINS = 24
MAX_CURVE_POINTS = 120
# Candidate replacement ages for the age-replacement optimum: evenly spaced up to the new-part
# life's 99.95 % quantile.
RECOMMENDATION_GRID = 400
# Replications (the scenario's first ones, same seeds) of the engine's check of a
# recommendation: the recommended ages and run to failure, simulated side by side.
CHECK_REPLICATIONS = 100
# Two-sided 95 % normal quantile for the confidence intervals a planner reads.
Z_95 = 1.959963984540054
PROGRESS_EVERY = 25
