"""What every simulated sensor source provides, and the plugin registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


class SourceError(ValueError):
    """A source cannot be built from its parameters (named in the message)."""


@dataclass
class Sample:
    """One reading of an asset at sim time ``sim_t``.

    ``raw`` holds the high-rate window the features were computed from (for event
    snippets); ``raw_bytes`` is what shipping every raw sample behind this reading would
    have cost (high-rate channels as float32, slow ones as float64), so the agent can
    report its bandwidth saving.
    """

    sim_t: float
    values: dict[str, float]
    raw: dict[str, np.ndarray] | None = None
    raw_bytes: int = 0
    fault: str | None = None  # ground truth for tests and benchmarks, never published


@dataclass
class Fault:
    kind: str
    start: float  # sim seconds
    duration_s: float
    magnitude: float

    def active(self, sim_t: float) -> bool:
        return self.start <= sim_t < self.start + self.duration_s


@dataclass
class SourceState:
    faults: list[Fault] = field(default_factory=list)


class Source:
    """A deterministic simulated asset. Subclasses set ``asset_type``, ``PARAMS``
    (name -> default) and ``FAULT_KINDS``, and implement ``_sample``.

    Determinism: two sources with the same seed and params, stepped at the same sim
    times, give identical samples. Degradation: ``wear(sim_t)`` rises from 0 (healthy)
    to 1 (failed) between an onset and ``fail_at``; without ``fail_at`` the asset stays
    healthy.

    Age: ``fail_at`` is the operating age (seconds since the component was new) at which it
    wears out; ``age_s`` is its age at sim time 0 (default 0, so ``fail_at`` is then also the
    sim time of the failure). A demo fleet starts its assets at different ages of realistic
    lives. With ``renew_s``, a worn-out component is replaced ``renew_s`` seconds after it
    failed: a new life begins (its length drawn around ``fail_at`` from the seed); without it
    the asset stays worn out.
    """

    asset_type: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Any]] = {}
    FAULT_KINDS: ClassVar[tuple[str, ...]] = ()
    # Fraction of the life before fail_at during which the asset looks healthy.
    ONSET_FRACTION: ClassVar[float] = 0.4
    # Log-spread of the lives of replacement components around the first one's.
    RENEWED_LIFE_SIGMA: ClassVar[float] = 0.2

    def __init__(self, asset_id: str, seed: int = 0, params: dict[str, Any] | None = None,
                 fail_at: float | None = None, age_s: float = 0.0, renew_s: float | None = None) -> None:
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            raise SourceError(
                f"unknown parameter(s) {', '.join(unknown)} for {type(self).__name__} "
                f"(known: {', '.join(sorted(self.PARAMS)) or 'none'})"
            )
        self.asset_id = asset_id
        self.seed = int(seed)
        self.params = {**self.PARAMS, **params}
        self.rng = np.random.default_rng(self.seed)
        self.fail_at: float | None = None
        self.set_failure_time(fail_at)
        if age_s < 0:
            raise SourceError(f"age_s must be >= 0 operating seconds, got {age_s}")
        if renew_s is not None and renew_s <= 0:
            raise SourceError(f"renew_s must be > 0 seconds, got {renew_s}")
        self.age_s = float(age_s)
        self.renew_s = renew_s
        self._lives: list[float] = []  # lives of the components after the first (drawn lazily)
        self.faults: list[Fault] = []

    # -- control -----------------------------------------------------------------
    def set_failure_time(self, fail_at: float | None) -> None:
        if fail_at is not None and fail_at <= 0:
            raise SourceError(f"fail_at must be > 0 sim seconds, got {fail_at}")
        self.fail_at = fail_at

    def inject_fault(self, kind: str | None = None, at: float = 0.0, duration_s: float = 30.0,
                     magnitude: float = 1.0) -> Fault:
        """Schedule a sudden fault from sim time ``at`` for ``duration_s`` seconds."""
        kind = kind or self.FAULT_KINDS[0]
        if kind not in self.FAULT_KINDS:
            raise SourceError(f"unknown fault {kind!r} for {self.asset_type} (known: {', '.join(self.FAULT_KINDS)})")
        fault = Fault(kind, float(at), float(duration_s), float(magnitude))
        self.faults.append(fault)
        return fault

    def active_fault(self, sim_t: float, kind: str | None = None) -> Fault | None:
        for f in self.faults:
            if f.active(sim_t) and (kind is None or f.kind == kind):
                return f
        return None

    def life_at(self, sim_t: float) -> tuple[float, float] | None:
        """(age, life) of the component in place at ``sim_t``, in operating seconds; None
        without a failure time. Past a failure with ``renew_s``, the replacement's."""
        if self.fail_at is None:
            return None
        age, life = self.age_s + sim_t, self.fail_at
        if self.renew_s is not None:
            k = 0
            while age > life + self.renew_s:
                age -= life + self.renew_s
                while len(self._lives) <= k:
                    # One draw per renewal, from the seed: the same lives whenever it is replayed.
                    rng = np.random.default_rng([self.seed, 7919, len(self._lives)])
                    self._lives.append(self.fail_at * float(np.exp(self.RENEWED_LIFE_SIGMA * rng.standard_normal())))
                life = self._lives[k]
                k += 1
        return age, life

    def wear(self, sim_t: float) -> float:
        current = self.life_at(sim_t)
        if current is None:
            return 0.0
        age, life = current
        onset = self.ONSET_FRACTION * life
        if age <= onset:
            return 0.0
        # Quadratic growth: slow at first, accelerating towards failure, as wear does.
        return float(min(1.0, ((age - onset) / (life - onset)) ** 2))

    # -- sampling ----------------------------------------------------------------
    def step(self, sim_t: float) -> list[Sample]:
        """Samples up to sim time ``sim_t`` (usually one)."""
        sample = self._sample(sim_t)
        fault = self.active_fault(sim_t)
        if fault is not None:
            sample.fault = fault.kind
        return [sample]

    def _sample(self, sim_t: float) -> Sample:
        raise NotImplementedError

    def detect_metrics(self) -> list[str] | None:
        """Metrics the streaming EWMA detector watches (None: all of them)."""
        from ..const import DETECT_METRICS

        return DETECT_METRICS.get(self.asset_type)

    def metric_names(self) -> list[str]:
        from ..asset_types import ASSET_TYPES

        return [m.name for m in ASSET_TYPES[self.asset_type]["metrics"]]


def clamp_to_spec(asset_type: str, values: dict[str, float]) -> dict[str, float]:
    """Keep every value inside the platform's valid range (a real sensor saturates too)."""
    from ..asset_types import ASSET_TYPES

    out = {}
    for m in ASSET_TYPES[asset_type]["metrics"]:
        if m.name in values:
            out[m.name] = float(min(m.max_value, max(m.min_value, values[m.name])))
    return out
