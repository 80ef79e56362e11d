"""The live socket with channels' WebsocketCommunicator: who may connect and subscribe, and
how a flood of updates reaches a client coalesced."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from ingest.live import asset_group, site_group
from tests.factories import make_fleet, make_site
from web.consumers import LiveConsumer
from web.live_messages import CLOSE_NO_ROLE, CLOSE_NOT_LOGGED_IN, FLUSH_INTERVAL_S

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    # Room for the whole flood: this test is about coalescing, not about the layer's capacity.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}


def communicator(user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    comm.scope["user"] = user
    return comm


async def closed_with(comm) -> int:
    connected, _ = await comm.connect()
    assert connected
    message = await comm.receive_output(timeout=2)
    await comm.wait()
    assert message["type"] == "websocket.close"
    return message["code"]


def test_it_closes_anonymous_sockets_with_4401():
    assert async_to_sync(closed_with)(communicator(AnonymousUser())) == CLOSE_NOT_LOGGED_IN


def test_it_closes_sockets_of_users_without_a_role_with_4403(outsider):
    assert async_to_sync(closed_with)(communicator(outsider)) == CLOSE_NO_ROLE


def test_it_refuses_sites_and_assets_the_user_may_not_see(manager):
    mine = make_fleet(1, members=[manager])
    other = make_fleet(1)
    make_site()

    async def scenario():
        comm = communicator(manager)
        assert (await comm.connect())[0]
        replies = []
        for request in ({"site": other.site.id}, {"asset": other.assets[0].id}, {"asset": 10**9}, {"site": "1"}, {"site": mine.site.id, "asset": mine.assets[0].id}):
            await comm.send_json_to({"action": "subscribe", **request})
            replies.append(await comm.receive_json_from(timeout=2))
        await comm.send_json_to({"action": "subscribe", "asset": mine.assets[0].id})
        replies.append(await comm.receive_json_from(timeout=2))
        # A message to the refused site's group never reaches this socket.
        layer = get_channel_layer()
        await layer.group_send(site_group(other.site.id), {"type": "asset.update", "asset": other.assets[0].id, "site": other.site.id, "last_seen": 1.0, "values": {"t": [1.0, 2.0]}})
        await layer.group_send(asset_group(mine.assets[0].id), {"type": "asset.update", "asset": mine.assets[0].id, "site": mine.site.id, "last_seen": 1.0, "values": {"t": [1.0, 3.0]}})
        frame = await comm.receive_json_from(timeout=2)
        await comm.disconnect()
        return replies, frame

    replies, frame = async_to_sync(scenario)()
    assert [r["type"] for r in replies] == ["refused"] * 5 + ["subscribed"]
    assert replies[-1]["asset"] == mine.assets[0].id
    assert [m["asset"] for m in frame["messages"]] == [mine.assets[0].id]


def test_it_coalesces_a_thousand_updates_into_a_few_frames_latest_winning(manager):
    fleet = make_fleet(3, members=[manager])
    assets = fleet.assets

    async def scenario():
        comm = communicator(manager)
        assert (await comm.connect())[0]
        await comm.send_json_to({"action": "subscribe", "site": fleet.site.id})
        assert (await comm.receive_json_from(timeout=2))["type"] == "subscribed"
        await comm.send_json_to({"action": "subscribe", "asset": assets[0].id})
        assert (await comm.receive_json_from(timeout=2))["type"] == "subscribed"
        layer = get_channel_layer()
        started = time.monotonic()
        for i in range(1000):
            asset = assets[i % 3]
            message = {"type": "asset.update", "asset": asset.id, "site": fleet.site.id, "last_seen": float(i), "values": {"temperature_c": [float(i), float(i)]}}
            await layer.group_send(site_group(fleet.site.id), message)
            await layer.group_send(asset_group(asset.id), message)
            if i % 100 == 0:
                await asyncio.sleep(0.05)  # spread the flood over ~0.5 s, like a live stream
        frames, last = [], {}
        deadline = time.monotonic() + 10
        while last != expected and time.monotonic() < deadline:
            frame = await comm.receive_json_from(timeout=5)
            frames.append(frame)
            for m in frame["messages"]:
                last[m["asset"]] = m["values"]["temperature_c"][1]
        elapsed = time.monotonic() - started
        await comm.disconnect()
        return frames, last, elapsed

    expected = {assets[0].id: 999.0, assets[1].id: 997.0, assets[2].id: 998.0}
    frames, last, elapsed = async_to_sync(scenario)()
    assert last == expected  # the latest update of each asset arrives
    assert all(f["type"] == "updates" for f in frames)
    assert len(frames) <= elapsed / FLUSH_INTERVAL_S + 2  # one frame per flush interval at most
    for frame in frames:
        keys = [m["asset"] for m in frame["messages"]]
        assert len(keys) == len(set(keys))  # one entry per asset per frame, though it came via two groups


def test_it_unpacks_site_batches_into_the_coalesced_frame(manager):
    fleet = make_fleet(2, members=[manager])

    async def scenario():
        comm = communicator(manager)
        assert (await comm.connect())[0]
        await comm.send_json_to({"action": "subscribe", "site": fleet.site.id})
        assert (await comm.receive_json_from(timeout=2))["type"] == "subscribed"
        updates = [
            {"type": "asset.update", "asset": a.id, "site": fleet.site.id, "last_seen": 5.0, "values": {"vib_rms": [5.0, float(a.id)]}} for a in fleet.assets
        ]
        await get_channel_layer().group_send(site_group(fleet.site.id), {"type": "site.updates", "site": fleet.site.id, "updates": updates})
        frame = await comm.receive_json_from(timeout=2)
        await comm.disconnect()
        return frame

    frame = async_to_sync(scenario)()
    assert {m["asset"]: m["values"]["vib_rms"][1] for m in frame["messages"]} == {a.id: float(a.id) for a in fleet.assets}


def test_it_refuses_an_anonymous_socket_through_the_real_asgi_stack(db):
    from web.asgi import application

    async def scenario():
        comm = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")])
        return await closed_with(comm)

    assert async_to_sync(scenario)() == CLOSE_NOT_LOGGED_IN


def test_live_updates_keep_flowing_while_a_slow_database_call_holds_the_sync_thread(manager):
    """Group messages are handled on the event loop: a slow sync call elsewhere in the web
    process (a report, a big page) must not hold every open dashboard's updates."""
    fleet = make_fleet(1, members=[manager])
    asset = fleet.assets[0]

    async def scenario():
        comm = communicator(manager)
        assert (await comm.connect())[0]
        await comm.send_json_to({"action": "subscribe", "asset": asset.id})
        assert (await comm.receive_json_from(timeout=2))["type"] == "subscribed"
        slow = asyncio.ensure_future(sync_to_async(time.sleep)(2.0))  # the one shared sync thread, busy
        await asyncio.sleep(0.1)
        sent = time.monotonic()
        message = {"type": "asset.update", "asset": asset.id, "site": fleet.site.id, "last_seen": 1.0, "values": {"t": [1.0, 7.0]}}
        await get_channel_layer().group_send(asset_group(asset.id), message)
        frame = await comm.receive_json_from(timeout=3)
        waited = time.monotonic() - sent
        await slow
        await comm.disconnect()
        return frame, waited

    frame, waited = async_to_sync(scenario)()
    assert frame["messages"][0]["values"]["t"] == [1.0, 7.0]
    assert waited < 0.5, f"the update waited {waited:.2f} s behind the busy sync thread"
