"""The Redis pub/sub layer of the web processes: one PUBLISH per group message, decoded once
per process for all its sockets; and frames whose JSON is made once per message."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from web.channel_layer import SharedDecodePubSubChannelLayer
from web.live_messages import encode_updates


@pytest.mark.redis
def test_every_socket_of_a_group_gets_the_message_decoded_once(redis_url):
    async def scenario():
        layer = SharedDecodePubSubChannelLayer(hosts=[redis_url], prefix=f"test-{uuid.uuid4().hex[:8]}")
        try:
            channels = [await layer.new_channel() for _ in range(3)]
            for channel in channels:
                await layer.group_add("site.1", channel)
            await asyncio.sleep(0.2)  # the subscription reaches Redis
            message = {"type": "site.updates", "site": 1, "updates": [{"asset": 5, "values": {"t": [1.0, 2.5]}}]}
            await layer.group_send("site.1", message)
            await layer.group_send("site.1", {**message, "site": 2})
            first = [await asyncio.wait_for(layer.receive(c), 5) for c in channels]
            second = [await asyncio.wait_for(layer.receive(c), 5) for c in channels]
            return first, second
        finally:
            await layer.flush()

    first, second = asyncio.run(scenario())
    assert all(m == first[0] for m in first) and first[0]["updates"][0]["values"]["t"] == [1.0, 2.5]
    assert first[0] is first[1] is first[2]  # decoded once, shared by the sockets
    assert [m["site"] for m in second] == [2, 2, 2] and second[0] is not first[0]


def test_an_updates_frame_is_the_json_of_its_messages():
    a = {"type": "asset.update", "asset": 1, "site": 2, "last_seen": 3.5, "values": {"t": [3.0, 20.25]}}
    b = {"type": "alert.update", "site": 2, "asset": None, "alert": {"id": 9, "title": '<script>"x"</script>'}}
    text = encode_updates([a, b], 12.5)
    assert json.loads(text) == {"type": "updates", "messages": [a, b], "server_time": 12.5}
    merged = {**a, "values": {"t": [4.0, 21.0]}}  # a new dict (merge) is encoded afresh, not from a's cache
    assert json.loads(encode_updates([merged, a], 13.0))["messages"] == [merged, a]
