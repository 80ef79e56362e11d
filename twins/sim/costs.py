"""The cost model, one for the simulation's result and the recommendation.

The simulation charges per asset: the corrective cost for each failure, the preventive cost for
each preventive job, and the downtime rate for every production hour lost (waiting for a crew or
a part, then the job). The recommendation uses the same charges per event: the cost of one
failure is its corrective cost plus the downtime rate times the production hours a failure loses
*in this scenario's own simulation* (waits included, mean not median repair), and likewise for
a preventive job; only where the simulation saw no such event does it fall back to the mean job
duration in production hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from twins.sim import const
from twins.sim.scenario import AssetInit, Scenario
from twins.sim.schedule import Schedule

# Job starts spread over one week to average a job's lost production hours over the schedule.
_STARTS_PER_WEEK = 336


def asset_prices(scenario: Scenario, asset: AssetInit) -> tuple[float, float, float]:
    """(preventive cost, corrective cost, downtime cost per production hour) of one asset."""

    def pick(name: str) -> float:
        value = getattr(asset, name)
        return float(getattr(scenario, name) if value is None else value)

    return pick("pm_cost"), pick("cm_cost"), pick("downtime_cost_per_hour")


def mean_job_hours(nominal_h: float) -> float:
    """Mean of a lognormal job duration around its nominal (median) hours."""
    return nominal_h * math.exp(0.5 * const.REPAIR_TIME_LOG_SIGMA**2)


def production_hours_of_job(schedule: Schedule, hours: float, *, at_shift_end: bool) -> float:
    """Mean production hours lost by a job of `hours` calendar hours starting at a random
    production instant (a failure, a preventive job) or at the end of a shift (off-shift job)."""
    if schedule.continuous:
        return hours
    # the same few (schedule, job) pairs come back for every asset of a site
    return _production_hours_of_job(schedule.hours_per_day, schedule.days_per_week, float(hours), at_shift_end)


@lru_cache(maxsize=256)
def _production_hours_of_job(hours_per_day: float, days_per_week: int, hours: float, at_shift_end: bool) -> float:
    schedule = Schedule(hours_per_day, days_per_week)
    op = np.linspace(0.0, schedule.week_hours, _STARTS_PER_WEEK, endpoint=False)
    if at_shift_end:
        op = np.unique(np.ceil(op / schedule.hours_per_day + 1e-12) * schedule.hours_per_day)
    starts = schedule.to_calendar_array(op + 1e-9)
    lost = schedule.to_operating_array(starts + hours) - schedule.to_operating_array(starts)
    return float(lost.mean())


@dataclass(frozen=True)
class EventCosts:
    preventive: float  # one preventive job, its downtime included
    failure: float  # one failure, its waits and repair downtime included
    preventive_lost_h: float  # production hours lost per preventive job
    failure_lost_h: float  # production hours lost per failure
    source: str  # "simulation" or "model"


def event_costs(
    scenario: Scenario,
    asset: AssetInit,
    failures: float,
    failure_lost_h: float,
    preventive: float,
    preventive_lost_h: float,
) -> EventCosts:
    """Cost of one failure and of one preventive job of `asset`, as the simulation charges.

    failures / preventive are event counts summed over replications and *_lost_h the
    production hours they lost; with no event of a kind the mean job duration is used."""
    pm, cm, rate = asset_prices(scenario, asset)
    schedule = Schedule(scenario.hours_per_day, scenario.days_per_week)
    sources = []
    if failures > 0:
        per_failure = failure_lost_h / failures
        sources.append("simulation")
    else:
        per_failure = production_hours_of_job(
            schedule, mean_job_hours(asset.repair_hours), at_shift_end=False
        )
        sources.append("model")
    if preventive > 0:
        per_pm = preventive_lost_h / preventive
    else:
        per_pm = production_hours_of_job(
            schedule, mean_job_hours(asset.pm_hours), at_shift_end=scenario.policy.off_shift
        )
    return EventCosts(
        preventive=pm + rate * per_pm,
        failure=cm + rate * per_failure,
        preventive_lost_h=per_pm,
        failure_lost_h=per_failure,
        source=sources[0],
    )
