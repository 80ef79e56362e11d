"""The demo fleet's past: the week before the demo starts, from the same simulated sources at the
ages they had then, so charts (7 d included) and twins have a history from the first page."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest

from edge_node.fleet_history import TIERS, asset_history, backfill, sample_times
from edge_node.fleet_runner import planned_assets
from ingest import timeseries
from twins.models import Asset
from web import dashboards
from web.demo import load_demo

pytestmark = pytest.mark.django_db


def test_it_spaces_history_finer_the_closer_it_is_to_now():
    now = 1_800_000_000.0
    times = np.asarray(sample_times(now - 7 * 86400, now))
    assert times[0] > now - 7 * 86400 and times[-1] < now and np.all(np.diff(times) > 0)
    inner = 0.0
    for span, step in TIERS:  # 20 s in the last 2 h, 5 min to a day back, 15 min before
        band = times[(times > now - span) & (times < now - inner)]
        assert len(band) > 2 and np.allclose(np.diff(band), step)
        inner = span
    assert not [t for t in sample_times(now - 3600, now) if t <= now - 3600]  # nothing before "since"


def test_it_fills_the_hole_since_the_last_reading_once(var_dir):
    load_demo()
    # Readings fall on a 20 s grid: a second later a new one may be due (1 run in 20 did so);
    # starting 5 s past a grid point, nothing is due in the next second.
    now = time.time() // 20 * 20 + 5
    written = backfill(now, days=0.05)
    assert written > 30 * 5 * 200  # 30 assets, 5-9 metrics, 216 readings each in 72 minutes
    assert backfill(now + 1, days=0.05) == 0  # nothing missing any more
    asset = Asset.objects.get(key="north-1-pump-01")
    assert asset.last_seen.timestamp() > now - 30


def test_it_gives_the_seven_day_chart_a_week(var_dir):
    load_demo()
    now = time.time()
    pump = next(a for assets in planned_assets().values() for a in assets if a.key == "north-2-pump-02")  # weeks from the end
    asset = Asset.objects.get(key=pump.key)
    metrics = {m.key: m.id for m in asset.asset_type.metrics.all()}
    history = asset_history(pump, now - 7 * 86400, now, elapsed_s=0.0)
    timeseries.write_rows([(datetime.fromtimestamp(t, UTC), asset.id, metrics[k], v) for t, values in history for k, v in values.items()])
    page = dashboards.asset_page_data(asset, "7d", now=datetime.fromtimestamp(now, UTC))
    series = page["series"]["temperature_c"]
    assert series[-1][0] - series[0][0] > 6.9 * 86400 and len(series) > 300
    # A pump weeks from the end of its life runs warmer at the end of the week than at its start.
    temps = [v for _, v in series]
    assert np.mean(temps[-48:]) > np.mean(temps[:48])
