"""The ingest's live updates: per asset at most once per interval, spread over batches, and
gathered per site into one message per SITE_BATCH_INTERVAL_S (fleet pages)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers, get_channel_layer

from ingest.live import SITE_BATCH_INTERVAL_S, LivePublisher, asset_group, site_group
from web.env import channel_layers_from_url

METRICS = {7: "temperature_c", 8: "vib_rms"}


@pytest.fixture
def layer(settings):
    settings.CHANNEL_LAYERS = channel_layers_from_url("")
    channel_layers.backends.clear()
    yield get_channel_layer()
    channel_layers.backends.clear()


def listen(layer, group: str) -> str:
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def drain(layer, channel: str) -> list[dict]:
    async def take() -> list[dict]:
        out = []
        queue = layer.channels.get(channel)
        while queue is not None and not queue.empty():
            out.append(await layer.receive(channel))
        return out

    return async_to_sync(take)()


def reading(ts: float, value: float, metric: int = 7) -> dict:
    return {metric: (datetime.fromtimestamp(ts, UTC), value)}


def test_each_asset_goes_out_at_once_and_at_most_once_per_interval(layer):
    pub = LivePublisher(0.5, METRICS, {1: 10, 2: 10})
    asset1 = listen(layer, asset_group(1))
    t = 1000.0
    pub.add({1: reading(t, 20.0)})
    assert pub.flush(now=t) == 1
    pub.add({1: reading(t + 0.1, 21.0)})
    assert pub.flush(now=t + 0.1) == 0  # throttled: kept, latest wins
    pub.add({1: reading(t + 0.2, 22.0)})
    assert 0 < pub.due_in(now=t + 0.2) <= 2 * 0.5  # the first gap is 1-2 intervals
    assert pub.flush(now=t + 1.01) == 1
    sent = drain(layer, asset1)
    assert [m["values"]["temperature_c"] for m in sent] == [[t, 20.0], [t + 0.2, 22.0]]


def test_updates_spread_so_a_fleet_is_not_sent_in_one_flush(layer):
    pub = LivePublisher(0.5, METRICS, {a: 10 for a in range(100)})
    per_flush = []
    t = 1000.0
    for step in range(200):  # 10 s of 50 ms batches, every asset with a new reading each time
        now = t + step * 0.05
        pub.add({a: reading(now, float(step)) for a in range(100)})
        per_flush.append(pub.flush(now=now))
    steady = per_flush[60:]  # after 3 s
    assert per_flush[0] == 100  # the first readings of every asset go out at once
    assert max(steady) <= 40, max(steady)  # then spread: never the whole fleet again
    assert 160 <= sum(steady) / (len(steady) * 0.05) <= 200  # ~100 assets / 0.5-0.6 s each


def test_site_groups_get_one_batch_per_interval_with_the_latest_of_each_asset(layer):
    pub = LivePublisher(0.0, METRICS, {1: 10, 2: 10, 3: 11})
    site10, site11 = listen(layer, site_group(10)), listen(layer, site_group(11))
    t = 1000.0
    pub.add({1: reading(t, 1.0)})
    pub.flush(now=t)  # the site's first batch goes at once
    pub.add({2: reading(t + 0.01, 2.0), 3: reading(t + 0.01, 3.0)})
    pub.flush(now=t + 0.01)
    pub.add({1: reading(t + 0.02, 1.5, metric=8)})
    pub.flush(now=t + 0.02)
    first = drain(layer, site10)
    assert [[u["asset"] for u in m["updates"]] for m in first] == [[1]]
    assert [[u["asset"] for u in m["updates"]] for m in drain(layer, site11)] == [[3]]  # other site: its own first batch
    assert pub.due_in(now=t + 0.02) == pytest.approx(SITE_BATCH_INTERVAL_S - 0.02)
    pub.flush(now=t + SITE_BATCH_INTERVAL_S)
    (batch,) = drain(layer, site10)
    updates = {u["asset"]: u["values"] for u in batch["updates"]}
    assert updates == {2: {"temperature_c": [t + 0.01, 2.0]}, 1: {"vib_rms": [t + 0.02, 1.5]}}
