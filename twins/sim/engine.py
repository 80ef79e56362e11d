"""The SimPy engine: one replication of a fleet over the horizon, event by event.

Each component degrades linearly in operating hours at a rate drawn once per component life
(a random-effects degradation path): the remaining life is therefore known the moment the
component is installed, and the asset process schedules ONE timeout to whichever comes first of
its failure or its policy's trigger. Shifts never cost events: operating hours map to calendar
hours in closed form (schedule.py). Crews are a simpy.PriorityResource (failures before
preventive jobs), spares a simpy.Container replenished one-for-one after a lead time.

An asset-year without a maintenance event costs no SimPy event at all: its first event is
computed before a process is created, and past the horizon no process is started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from twins.sim import const
from twins.sim.laws import asset_stress, life_model, weibull_scale
from twins.sim.scenario import Scenario
from twins.sim.schedule import Schedule

# Random numbers drawn up front per asset and replication; more are drawn on demand.
_PREDRAWN = 3
INF = math.inf


@dataclass(frozen=True)
class Plan:
    """Everything per scenario that does not change between replications."""

    n_assets: int
    horizon_h: float
    schedule: Schedule
    policy: str
    interval: float
    threshold: float
    lead: float
    crew_size: int
    spare_stock: int | None
    spare_lead_h: float
    health: list[float]
    current_median: list[
        float
    ]  # remaining life now, at the scenario's stress (op hours)
    current_sigma: list[float]
    new_scale: list[float]  # Weibull eta of a new component at the scenario's stress
    new_shape_inv: list[float]
    age: list[float]
    repair_h: list[float]
    pm_h: list[float]


def build_plan(scenario: Scenario) -> Plan:
    lives = [life_model(asset) for asset in scenario.assets]
    accel = [asset_stress(asset, scenario).acceleration for asset in scenario.assets]
    policy = scenario.policy
    return Plan(
        n_assets=len(scenario.assets),
        horizon_h=scenario.horizon_days * 24.0,
        schedule=Schedule(scenario.hours_per_day, scenario.days_per_week),
        policy=policy.name,
        interval=policy.interval_hours or 0.0,
        threshold=policy.health_threshold or 0.0,
        lead=policy.lead_time_hours or 0.0,
        crew_size=scenario.crew_size,
        spare_stock=scenario.spare_stock,
        spare_lead_h=scenario.spare_lead_time_days * 24.0,
        health=[life.health for life in lives],
        current_median=[life.current_median / a for life, a in zip(lives, accel)],
        current_sigma=[life.current_sigma for life in lives],
        new_scale=[
            weibull_scale(life.new_median, life.weibull_shape) / a
            for life, a in zip(lives, accel)
        ],
        new_shape_inv=[1.0 / life.weibull_shape for life in lives],
        age=[life.age_hours for life in lives],
        repair_h=[asset.repair_hours for asset in scenario.assets],
        pm_h=[asset.pm_hours for asset in scenario.assets],
    )


@dataclass
class ReplicationOutcome:
    """Per-asset outcomes of one replication (lists indexed like scenario.assets)."""

    first_failure_h: list[float]  # calendar hours; inf if no failure within the horizon
    rul_h: list[
        float
    ]  # remaining life of the component in place at t=0 (operating hours)
    failures: list[int]
    preventive: list[int]
    downtime_h: list[float]  # production hours lost
    wait_h: list[float]  # hours failed assets waited for a part or a crew
    busy_h: list[float]  # crew hours spent on the asset


def simulate_replication(plan: Plan, rng: np.random.Generator) -> ReplicationOutcome:
    n = plan.n_assets
    horizon = plan.horizon_h
    sched = plan.schedule
    to_cal = sched.to_calendar
    to_op = sched.to_operating
    lost = sched.production_hours
    policy = plan.policy
    rtf = policy == const.POLICY_RUN_TO_FAILURE
    time_based = policy == const.POLICY_TIME_BASED
    condition_based = policy == const.POLICY_CONDITION_BASED
    interval, threshold, lead = plan.interval, plan.threshold, plan.lead
    exp, log = math.exp, math.log
    repair_sigma = const.REPAIR_TIME_LOG_SIGMA
    prog_sigma = const.PROGNOSTIC_LOG_SIGMA

    z0 = rng.standard_normal(n).tolist()
    normals = rng.standard_normal((n, _PREDRAWN)).tolist()
    uniforms = rng.random((n, _PREDRAWN)).tolist()

    def normal(k: int) -> float:
        pool = normals[k]
        return pool.pop() if pool else float(rng.standard_normal())

    def new_life(k: int) -> float:
        pool = uniforms[k]
        u = pool.pop() if pool else float(rng.random())
        return plan.new_scale[k] * (-log(1.0 - u)) ** plan.new_shape_inv[k]

    def trigger_left(k: int, life: float, h_start: float, age_start: float) -> float:
        """Remaining life (op hours) at which the policy calls a preventive job; <= 0: never."""
        if rtf:
            return 0.0
        if time_based:
            return life + age_start - interval
        if condition_based:
            return threshold * life / h_start
        # RUL-based: the twin predicts remaining life with a lognormal error, drawn per component
        return lead * exp(-prog_sigma * normal(k))

    first_failure = [INF] * n
    failures = [0] * n
    preventive = [0] * n
    downtime = [0.0] * n
    wait = [0.0] * n
    busy = [0.0] * n
    rul = [
        plan.current_median[k] * exp(plan.current_sigma[k] * z0[k]) for k in range(n)
    ]
    down_since: list[float | None] = [None] * n
    waiting_since: list[float | None] = [None] * n
    busy_since: list[float | None] = [None] * n

    env = simpy.Environment()
    crews = simpy.PriorityResource(env, capacity=plan.crew_size)
    spares = (
        None
        if plan.spare_stock is None
        else simpy.Container(env, init=plan.spare_stock)
    )
    spare_lead = plan.spare_lead_h
    corrective_p, preventive_p = const.PRIORITY_CORRECTIVE, const.PRIORITY_PREVENTIVE

    def restock(_event: simpy.Event) -> None:
        spares.put(1)

    def first_event(left: float, trig: float, op_now: float) -> tuple[float, bool]:
        """Calendar time of the next event and whether it is a preventive trigger."""
        if trig > 0.0:
            dt = left - trig
            return to_cal(op_now + (max(0.0, dt))), True
        return to_cal(op_now + left), False

    def asset(k: int, left: float, trig: float, event_at: float, is_pm: bool):
        while True:
            now = env.now
            if event_at > now:
                yield env.timeout(event_at - now)
            now = env.now
            failed = not is_pm
            if failed:
                first_failure[k] = min(first_failure[k], now)
                failures[k] += 1
                down_since[k] = waiting_since[k] = now
                fail_at = INF
            else:
                # the asset keeps running until a part and a crew are there, and may fail first
                remaining = min(left, trig)
                fail_at = to_cal(to_op(now) + remaining)
            if spares is not None:
                get = spares.get(1)
                if spare_lead > 0.0:
                    env.timeout(spare_lead).callbacks.append(restock)
                else:
                    spares.put(1)
                if not get.triggered:
                    if not failed and fail_at < horizon:
                        yield get | env.timeout(fail_at - env.now)
                        if not get.triggered:
                            failed = True
                    else:
                        yield get
                    if failed and down_since[k] is None:
                        now = env.now
                        first_failure[k] = min(first_failure[k], now)
                        failures[k] += 1
                        down_since[k] = waiting_since[k] = now
                        yield get
            request = crews.request(priority=corrective_p if failed else preventive_p)
            if not request.triggered:
                if not failed and fail_at < horizon:
                    yield request | env.timeout(fail_at - env.now)
                    if not request.triggered:
                        # failed while queued for a crew: the job turns corrective and jumps ahead
                        request.cancel()
                        now = env.now
                        first_failure[k] = min(first_failure[k], now)
                        failures[k] += 1
                        down_since[k] = waiting_since[k] = now
                        failed = True
                        request = crews.request(priority=corrective_p)
                        yield request
                else:
                    yield request
            start = env.now
            if failed:
                wait[k] += start - waiting_since[k]
                waiting_since[k] = None
                duration = plan.repair_h[k] * exp(repair_sigma * normal(k))
            else:
                preventive[k] += 1
                down_since[k] = start
                duration = plan.pm_h[k] * exp(repair_sigma * normal(k))
            busy_since[k] = start
            yield env.timeout(duration)
            crews.release(request)
            now = env.now
            busy[k] += duration
            busy_since[k] = None
            downtime[k] += lost(down_since[k], now)
            down_since[k] = None
            # renewal: a new component from health 1
            left = new_life(k)
            trig = trigger_left(k, left, 1.0, 0.0)
            event_at, is_pm = first_event(left, trig, to_op(now))
            if event_at >= horizon:
                return

    for k in range(n):
        left = rul[k]
        trig = trigger_left(k, left, plan.health[k], plan.age[k])
        event_at, is_pm = first_event(left, trig, 0.0)
        if event_at < horizon:
            env.process(asset(k, left, trig, event_at, is_pm))
    env.run(until=horizon)

    for k in range(n):
        if down_since[k] is not None:
            downtime[k] += lost(down_since[k], horizon)
        if waiting_since[k] is not None:
            wait[k] += horizon - waiting_since[k]
        if busy_since[k] is not None:
            busy[k] += horizon - busy_since[k]
    return ReplicationOutcome(
        first_failure, rul, failures, preventive, downtime, wait, busy
    )
