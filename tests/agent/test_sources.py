from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge_node.agent.asset_types import ASSET_TYPES
from edge_node.agent.sources import SOURCES, SourceError, make_source
from edge_node.agent.sources.cmapss import (
    SENSOR_COLUMNS,
    default_cmapss_path,
    load_cmapss,
)

TYPES = ["induction_motor", "centrifugal_pump", "hvac_unit", "turbofan"]


def run(asset_type: str, seed: int, times, **kwargs) -> list[dict[str, float]]:
    src = make_source(asset_type, "a1", seed=seed, **kwargs)
    return [s.values for t in times for s in src.step(t)]


@pytest.mark.parametrize("asset_type", TYPES)
def test_it_repeats_itself_exactly_for_the_same_seed(asset_type):
    times = [i * 5.0 for i in range(30)]
    assert run(asset_type, 7, times) == run(asset_type, 7, times)


@pytest.mark.parametrize("asset_type", ["induction_motor", "centrifugal_pump", "hvac_unit"])
def test_it_differs_between_seeds(asset_type):
    times = [i * 5.0 for i in range(10)]
    assert run(asset_type, 1, times) != run(asset_type, 2, times)


@pytest.mark.parametrize("asset_type", TYPES)
def test_it_emits_exactly_the_platforms_metrics_inside_their_ranges_until_failure(asset_type):
    specs = {m.name: m for m in ASSET_TYPES[asset_type]["metrics"]}
    src = make_source(asset_type, "a1", seed=3, fail_at=5000.0)
    kinds = src.FAULT_KINDS
    for i, kind in enumerate(kinds):
        src.inject_fault(kind, at=1000.0 + 1000.0 * i, duration_s=200.0)
    seen = 0
    for t in np.arange(0.0, 6000.0, 25.0):
        for sample in src.step(float(t)):
            assert set(sample.values) == set(specs)
            for name, v in sample.values.items():
                assert specs[name].min_value <= v <= specs[name].max_value, (name, v)
            seen += 1
    assert seen > 100


def test_the_motors_vibration_energy_rises_with_bearing_wear():
    healthy = run("induction_motor", 5, [100.0 * i for i in range(1, 11)], fail_at=10_000.0)
    worn = run("induction_motor", 5, [9000.0 + 100.0 * i for i in range(1, 11)], fail_at=10_000.0)

    def mean(rows, k):
        return float(np.mean([r[k] for r in rows]))

    assert mean(worn, "vib_rms") > 2 * mean(healthy, "vib_rms")
    assert mean(worn, "vib_band_bearing") > 50 * mean(healthy, "vib_band_bearing")
    assert mean(worn, "vib_kurtosis") > mean(healthy, "vib_kurtosis") + 3
    assert mean(worn, "temperature_c") > mean(healthy, "temperature_c") + 5


def test_the_motors_wear_is_monotonic_towards_the_failure_time():
    src = make_source("induction_motor", "m", seed=1, fail_at=1000.0)
    wear = [src.wear(t) for t in range(0, 1200, 50)]
    assert wear[0] == 0.0 and wear[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(wear))


def test_a_worn_pump_delivers_less_flow_and_vibrates_more():
    healthy = run("centrifugal_pump", 2, [60.0 * i for i in range(60)], fail_at=20_000.0)
    worn = run("centrifugal_pump", 2, [19_000.0 + 60.0 * i for i in range(60)], fail_at=20_000.0)
    assert np.mean([r["flow_m3h"] for r in worn]) < 0.9 * np.mean([r["flow_m3h"] for r in healthy])
    assert np.mean([r["vib_rms"] for r in worn]) > 2 * np.mean([r["vib_rms"] for r in healthy])


def test_an_injected_cavitation_collapses_pressure_at_once():
    src = make_source("centrifugal_pump", "p", seed=1)
    before = src.step(100.0)[0]
    src.inject_fault("cavitation", at=101.0, duration_s=30.0)
    during = src.step(102.0)[0]
    assert during.fault == "cavitation" and before.fault is None
    assert during.values["pressure_bar"] < 0.8 * before.values["pressure_bar"]
    assert during.values["vib_rms"] > before.values["vib_rms"] + 3


def test_the_hvac_unit_follows_a_working_day():
    # start_hour 0: sim hour h is the hour of day.
    rows = run("hvac_unit", 4, [3600.0 * h + 1800 for h in range(24)], params={"start_hour": 0.0})
    occ = [r["occupancy"] for r in rows]
    assert max(occ[0:6]) == 0 and max(occ[21:24]) == 0
    assert min(occ[10:12]) > 50
    co2 = [r["co2_ppm"] for r in rows]
    assert max(co2[10:17]) > min(co2[0:6]) + 300
    energy = [r["energy_kw"] for r in rows]
    assert np.mean(energy[10:16]) > np.mean(energy[0:5])


def test_the_cmapss_replay_plays_an_engine_cycle_by_cycle_then_the_next():
    data = load_cmapss(default_cmapss_path())
    unit1 = data[data[:, 0] == 1]
    src = make_source("turbofan", "e1", params={"unit": 1, "cycle_s": 10.0})
    played = [s for t in range(0, len(unit1) * 10 + 25, 5) for s in src.step(float(t))]
    # every cycle once, in order, with the file's values
    assert [s.values["cycle"] for s in played[: len(unit1)]] == list(unit1[:, 1])
    for name, col in SENSOR_COLUMNS.items():
        assert played[len(unit1) - 1].values[name] == unit1[-1, col]
    assert src.unit == 2 and played[len(unit1)].values["cycle"] == 1.0


def test_the_cmapss_replay_ends_the_engines_life_at_fail_at():
    data = load_cmapss(default_cmapss_path())
    n = int((data[:, 0] == 3).sum())
    src = make_source("turbofan", "e3", params={"unit": 3, "loop": False}, fail_at=600.0)
    played = [s for t in range(0, 700, 10) for s in src.step(float(t))]
    assert len(played) == n
    assert played[-1].sim_t == pytest.approx(600.0 * (n - 1) / n)


def test_it_refuses_unknown_plugins_params_and_faults():
    with pytest.raises(SourceError, match="unknown source plugin 'lathe'"):
        make_source("lathe", "x")
    with pytest.raises(SourceError, match="unknown parameter"):
        make_source("induction_motor", "x", params={"rpmm": 3000})
    with pytest.raises(SourceError, match="unknown fault"):
        make_source("hvac_unit", "x").inject_fault("meltdown")
    with pytest.raises(SourceError, match="cannot read C-MAPSS file"):
        make_source("turbofan", "x", params={"path": "/nonexistent/train.txt"})


def test_every_asset_type_has_a_source_plugin():
    assert set(ASSET_TYPES) <= set(SOURCES)


def test_the_cmapss_replay_plays_one_cycle_per_tick_by_default():
    src = make_source("turbofan", "e1", params={"unit": 2})
    cycles = [s.values["cycle"] for t in (0.0, 0.5, 100.0, 5000.0) for s in src.step(t)]
    assert cycles == [1.0, 2.0, 3.0, 4.0]
