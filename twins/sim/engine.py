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

import heapq
import math
from dataclasses import dataclass

import numpy as np
import simpy

from twins.sim import const
from twins.sim.laws import asset_stress
from twins.sim.lifelaw import LifeLaw, fit_life_law
from twins.sim.scenario import Scenario
from twins.sim.schedule import Schedule

# Random numbers drawn up front per asset and replication; more are drawn on demand.
_PREDRAWN = 5
INF = math.inf


@dataclass(frozen=True)
class Plan:
    """Everything per scenario that does not change between replications.

    Lives are in operating hours at the scenario's stress: the asset's one Weibull law
    (lifelaw.py) with scale and age divided by its acceleration."""

    n_assets: int
    horizon_h: float
    schedule: Schedule
    policy: str
    interval: list[float]  # time-based replacement age per asset; inf: none
    threshold: float
    lead: float
    inspection_h: float  # condition-based: operating hours between inspections; 0: continuous
    detection: float  # condition-based: probability an inspection sees a crossed threshold
    off_shift: bool  # preventive jobs start at the end of the shift they fall in
    crew_size: int
    spare_stock: int | None
    spare_lead_h: float
    pool: list[int]  # index of the asset's spare pool (one per asset type)
    pools: int
    health: list[float]
    laws: list[LifeLaw]
    mean_life: list[float]  # mean life of a new part (the RUL forecast's error scale)
    scale: list[float]
    shape_inv: list[float]
    age_ratio: list[float]  # age / scale of the part in place
    age: list[float]
    repair_h: list[float]
    pm_h: list[float]


def build_plan(scenario: Scenario) -> Plan:
    accel = [asset_stress(asset, scenario).acceleration for asset in scenario.assets]
    laws = [fit_life_law(asset).at_stress(a) for asset, a in zip(scenario.assets, accel)]
    policy = scenario.policy
    default_interval = (
        policy.interval_hours if policy.name == const.POLICY_TIME_BASED else None
    )
    intervals = []
    for asset in scenario.assets:
        own = asset.pm_interval_hours if policy.name == const.POLICY_TIME_BASED else None
        value = own if own is not None else default_interval
        intervals.append(INF if value is None else float(value))
    types = sorted({asset.asset_type for asset in scenario.assets})
    return Plan(
        n_assets=len(scenario.assets),
        horizon_h=scenario.horizon_days * 24.0,
        schedule=Schedule(scenario.hours_per_day, scenario.days_per_week),
        policy=policy.name,
        interval=intervals,
        threshold=policy.health_threshold or 0.0,
        lead=policy.lead_time_hours or 0.0,
        inspection_h=policy.inspection_interval_hours or 0.0,
        detection=1.0 if policy.detection_probability is None else policy.detection_probability,
        off_shift=bool(policy.off_shift),
        crew_size=scenario.crew_size,
        spare_stock=scenario.spare_stock,
        spare_lead_h=scenario.spare_lead_time_days * 24.0,
        pool=[types.index(asset.asset_type) for asset in scenario.assets],
        pools=len(types),
        health=[asset.health for asset in scenario.assets],
        laws=laws,
        mean_life=[law.new_mean for law in laws],
        scale=[law.scale for law in laws],
        shape_inv=[1.0 / law.shape for law in laws],
        age_ratio=[law.age / law.scale for law in laws],
        age=[law.age for law in laws],
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
    failure_downtime_h: list[float]  # of which lost to failures (wait and repair)
    wait_h: list[float]  # calendar hours failed assets waited for a part or a crew
    busy_h: list[float]  # crew hours spent on the asset


def rul_trigger_left(
    life: float, lead: float, z: float, mean_life: float, sigma: float
) -> float:
    """True remaining life at which the twin's predicted RUL first falls to `lead`.

    The prediction is the true remaining life r times exp(sigma sqrt(r / mean_life) z): its
    error narrows as the part nears failure, as a model's does when wear becomes visible. Solved
    for r by Newton in log r (a few steps; the map is monotone for |sigma z| < 2); `life`
    when the forecast is under the lead time from installation on."""
    target = math.log(lead)
    top = math.log(life)
    if top + sigma * z * math.sqrt(life / mean_life) <= target:
        return life  # under the lead time from installation on
    y = min(top, target - sigma * z * math.sqrt(lead / mean_life))
    for _ in range(4):
        root = math.sqrt(math.exp(y) / mean_life)
        g = y + sigma * z * root - target
        y = min(top, y - g / (1.0 + 0.5 * sigma * z * root))
    return math.exp(y)


class Draws:
    """The random numbers of one replication, drawn per asset so that an asset's lives and job
    durations never depend on the order in which other assets' events happen: the fast path
    and the SimPy path read the very same numbers. A few per asset are drawn up front; more
    come from the asset's own generator, seeded with (seed, replication, asset)."""

    def __init__(self, key: list[int], n: int) -> None:
        rng = np.random.default_rng(key)
        self.key = key
        self.u0 = rng.random(n).tolist()
        self.normals = rng.standard_normal((n, _PREDRAWN)).tolist()
        self.uniforms = rng.random((n, _PREDRAWN)).tolist()
        self.own: dict[int, np.random.Generator] = {}

    def generator(self, k: int) -> np.random.Generator:
        rng = self.own.get(k)
        if rng is None:
            rng = self.own[k] = np.random.default_rng([*self.key, k])
        return rng


def _replication_model(plan: Plan, draws: Draws):
    """The per-asset laws of one replication: draws, lives, policy triggers, next events."""
    n = plan.n_assets
    sched = plan.schedule
    to_cal = sched.to_calendar
    policy = plan.policy
    rtf = policy == const.POLICY_RUN_TO_FAILURE
    time_based = policy == const.POLICY_TIME_BASED
    condition_based = policy == const.POLICY_CONDITION_BASED
    threshold, lead = plan.threshold, plan.lead
    inspection, detection = plan.inspection_h, plan.detection
    off_shift = plan.off_shift and not sched.continuous
    log, log1p, expm1 = math.log, math.log1p, math.expm1
    prog_sigma = const.PROGNOSTIC_LOG_SIGMA
    scale, shape_inv, intervals = plan.scale, plan.shape_inv, plan.interval
    mean_life = plan.mean_life

    normals, uniforms, own = draws.normals, draws.uniforms, draws.generator

    def normal(k: int) -> float:
        pool = normals[k]
        return pool.pop() if pool else float(own(k).standard_normal())

    def uniform(k: int) -> float:
        pool = uniforms[k]
        return pool.pop() if pool else float(own(k).random())

    def new_life(k: int) -> float:
        return scale[k] * (-log(1.0 - uniform(k))) ** shape_inv[k]

    def trigger_left(
        k: int, life: float, h_start: float, age_start: float, op_now: float
    ) -> float:
        """Remaining life (op hours) at which the policy calls a preventive job; <= 0: never."""
        if rtf:
            return 0.0
        if time_based:
            trig = life + age_start - intervals[k]
        elif condition_based:
            trig = threshold * life / h_start
            if inspection > 0.0:
                # seen at the first inspection after the crossing that detects it
                crossed = op_now + life - trig
                seen = math.ceil(crossed / inspection - 1e-12) * inspection
                if detection < 1.0:
                    misses = math.floor(log(1.0 - uniform(k)) / log(1.0 - detection))
                    seen += misses * inspection
                trig = life - (seen - op_now)
        else:
            trig = rul_trigger_left(life, lead, normal(k), mean_life[k], prog_sigma)
            if age_start == 0.0 and trig >= life:
                return 0.0  # a part just installed is not replaced on its forecast
        if off_shift and trig > 0.0:
            due = op_now + max(0.0, life - trig)
            trig = life - (sched.shift_end_operating(due) - op_now)
        return trig

    def first_event(left: float, trig: float, op_now: float) -> tuple[float, bool]:
        """Calendar time of the next event and whether it is a preventive trigger."""
        if trig > 0.0:
            return to_cal(op_now + max(0.0, left - trig)), True
        return to_cal(op_now + left), False

    rul = []
    for k in range(n):
        e = -log1p(-draws.u0[k])
        x = plan.age_ratio[k]
        if x > 0.0:
            xb = x ** (1.0 / shape_inv[k])
            rul.append(scale[k] * x * expm1(log1p(e / xb) * shape_inv[k]))
        else:
            rul.append(scale[k] * e ** shape_inv[k])
    return rul, normal, new_life, trigger_left, first_event


def simulate_replication(plan: Plan, key: list[int], fast: bool = True) -> ReplicationOutcome:
    """One replication, seeded by `key` ([seed, replication]).

    When no job ever waits for a crew, a plain event loop (parts matched to jobs in closed
    form) gives exactly what SimPy would, the same numbers bit for bit: that fast path is tried
    first and kept only if its jobs never find every crew busy; SimPy runs otherwise."""
    if fast:
        outcome = _contention_free(plan, Draws(key, plan.n_assets))
        if outcome is not None:
            return outcome
    return _simulate_simpy(plan, Draws(key, plan.n_assets))


def _contention_free(plan: Plan, draws: Draws) -> ReplicationOutcome | None:
    """Every asset's events in time order (one heap), parts matched to jobs first come, first
    served, without SimPy: exact whenever no job waits for a crew (checked at the end; None
    if one would). The i-th part taken from a pool is in stock (i < stock) or is the one
    reordered by the (i - stock)-th job, back `lead` hours after it was taken."""
    n = plan.n_assets
    horizon = plan.horizon_h
    sched = plan.schedule
    to_op, to_cal = sched.to_operating, sched.to_calendar
    lost = sched.production_hours
    exp = math.exp
    repair_sigma = const.REPAIR_TIME_LOG_SIGMA
    rul, normal, new_life, trigger_left, first_event = _replication_model(plan, draws)
    first_failure = [INF] * n
    failures = [0] * n
    preventive = [0] * n
    downtime = [0.0] * n
    failure_downtime = [0.0] * n
    wait = [0.0] * n
    busy = [0.0] * n
    jobs: list[tuple[float, float]] = []
    stock = plan.spare_stock
    lead = plan.spare_lead_h
    taken: list[list[float]] = [[] for _ in range(plan.pools)]
    pool = plan.pool
    left = list(rul)
    trig = [0.0] * n
    is_pm = [False] * n
    since = [0.0] * n  # when the asset's last job ended (the clock its next timeout runs from)
    # ties (jobs due at the same shift end) go as SimPy takes them: the timeout scheduled
    # first, i.e. the one set at the earlier job end, then the asset's index
    queue: list[tuple[float, float, int]] = []
    for k in range(n):
        trig[k] = trigger_left(k, left[k], plan.health[k], plan.age[k], 0.0)
        event_at, is_pm[k] = first_event(left[k], trig[k], 0.0)
        if event_at < horizon:
            queue.append((event_at, 0.0, k))
    heapq.heapify(queue)
    pop, push = heapq.heappop, heapq.heappush
    while queue:
        event_at, _set_at, k = pop(queue)
        now = since[k]
        if event_at > now:
            now = now + (event_at - now)  # as SimPy's clock adds the timeout, to the bit
        failed = not is_pm[k]
        down_since = waiting_since = now
        if failed:
            if now < first_failure[k]:
                first_failure[k] = now
            failures[k] += 1
            fail_at = INF
        else:
            fail_at = to_cal(to_op(now) + min(left[k], trig[k]))
        part_at = now
        if stock is not None:
            parts = taken[pool[k]]
            i = len(parts)
            parts.append(now)
            if lead > 0.0 and i >= stock:
                back = parts[i - stock] + lead
                if back > now:
                    part_at = back
        if part_at > now and not failed and fail_at < horizon and fail_at < part_at:
            # the asset runs while its part is on the way, and fails first
            failed = True
            down_since = waiting_since = now + (fail_at - now)
            if down_since < first_failure[k]:
                first_failure[k] = down_since
            failures[k] += 1
        if part_at >= horizon:
            if failed:
                hours = lost(down_since, horizon)
                downtime[k] += hours
                failure_downtime[k] += hours
                wait[k] += horizon - waiting_since
            continue
        start = part_at
        if failed:
            wait[k] += start - waiting_since
            duration = plan.repair_h[k] * exp(repair_sigma * normal(k))
        else:
            preventive[k] += 1
            down_since = start
            duration = plan.pm_h[k] * exp(repair_sigma * normal(k))
        end = start + duration
        jobs.append((start, end))
        if end >= horizon:
            busy[k] += horizon - start
            hours = lost(down_since, horizon)
            downtime[k] += hours
            if failed:
                failure_downtime[k] += hours
            continue
        busy[k] += duration
        hours = lost(down_since, end)
        downtime[k] += hours
        if failed:
            failure_downtime[k] += hours
        since[k] = end
        left[k] = new_life(k)
        op_now = to_op(end)
        trig[k] = trigger_left(k, left[k], 1.0, 0.0, op_now)
        event_at, is_pm[k] = first_event(left[k], trig[k], op_now)
        if event_at < horizon:
            push(queue, (event_at, end, k))
    if not _fits(jobs, plan.crew_size):
        return None
    return ReplicationOutcome(
        first_failure, rul, failures, preventive, downtime, failure_downtime, wait, busy
    )


def _fits(jobs: list[tuple[float, float]], crews: int) -> bool:
    """No job ever finds every crew busy."""
    if len(jobs) <= crews:
        return True
    jobs.sort()
    running: list[float] = []
    for start, end in jobs:
        while running and running[0] <= start:
            heapq.heappop(running)
        if len(running) >= crews:
            return False
        heapq.heappush(running, end)
    return True


def _simulate_simpy(plan: Plan, draws: Draws) -> ReplicationOutcome:
    n = plan.n_assets
    horizon = plan.horizon_h
    sched = plan.schedule
    to_cal = sched.to_calendar
    to_op = sched.to_operating
    lost = sched.production_hours
    exp = math.exp
    repair_sigma = const.REPAIR_TIME_LOG_SIGMA
    rul, normal, new_life, trigger_left, first_event = _replication_model(plan, draws)
    first_failure = [INF] * n
    failures = [0] * n
    preventive = [0] * n
    downtime = [0.0] * n
    failure_downtime = [0.0] * n
    wait = [0.0] * n
    busy = [0.0] * n
    down_since: list[float | None] = [None] * n
    failing = [False] * n  # whether the asset is down for a failure (not a preventive job)
    waiting_since: list[float | None] = [None] * n
    busy_since: list[float | None] = [None] * n

    env = simpy.Environment()
    crews = simpy.PriorityResource(env, capacity=plan.crew_size)
    pools = (
        None
        if plan.spare_stock is None
        else [simpy.Container(env, init=plan.spare_stock) for _ in range(plan.pools)]
    )
    spare_lead = plan.spare_lead_h
    corrective_p, preventive_p = const.PRIORITY_CORRECTIVE, const.PRIORITY_PREVENTIVE

    def asset(k: int, left: float, trig: float, event_at: float, is_pm: bool):
        spares = None if pools is None else pools[plan.pool[k]]

        def restock(_event: simpy.Event) -> None:
            spares.put(1)

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
                failing[k] = True
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
                        failing[k] = True
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
                        failing[k] = True
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
                failing[k] = False
                duration = plan.pm_h[k] * exp(repair_sigma * normal(k))
            busy_since[k] = start
            yield env.timeout(duration)
            crews.release(request)
            now = env.now
            busy[k] += duration
            busy_since[k] = None
            hours = lost(down_since[k], now)
            downtime[k] += hours
            if failed:
                failure_downtime[k] += hours
            down_since[k] = None
            # renewal: a new component from health 1
            left = new_life(k)
            op_now = to_op(now)
            trig = trigger_left(k, left, 1.0, 0.0, op_now)
            event_at, is_pm = first_event(left, trig, op_now)
            if event_at >= horizon:
                return

    for k in range(n):
        left = rul[k]
        trig = trigger_left(k, left, plan.health[k], plan.age[k], 0.0)
        event_at, is_pm = first_event(left, trig, 0.0)
        if event_at < horizon:
            env.process(asset(k, left, trig, event_at, is_pm))
    env.run(until=horizon)

    for k in range(n):
        if down_since[k] is not None:
            hours = lost(down_since[k], horizon)
            downtime[k] += hours
            if failing[k]:
                failure_downtime[k] += hours
        if waiting_since[k] is not None:
            wait[k] += horizon - waiting_since[k]
        if busy_since[k] is not None:
            busy[k] += horizon - busy_since[k]
    return ReplicationOutcome(
        first_failure, rul, failures, preventive, downtime, failure_downtime, wait, busy
    )
