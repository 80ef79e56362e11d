"""Group messages from synchronous code (ingest, Celery, twin refresh) reach the sockets: on the
web server's loop in the embedded platform, on a long-lived loop of their own over Redis."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime

import pytest
from channels.layers import channel_layers, get_channel_layer

from ingest import group_sender
from ingest.group_sender import send_to_groups
from ingest.live import LivePublisher
from tests.helpers import free_port
from web.env import channel_layers_from_url


@pytest.fixture
def layer_settings(settings):
    def use(config: dict) -> None:
        settings.CHANNEL_LAYERS = config
        channel_layers.backends.clear()

    yield use
    channel_layers.backends.clear()


class LoopThread:
    """An event loop on its own thread, like daphne's, with a receiver on one group."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.received: list[dict] = []

    def run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _listen(self, group: str, ready: threading.Event) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        ready.set()
        while True:
            self.received.append(await layer.receive(channel))

    def listen(self, group: str) -> None:
        ready = threading.Event()
        self.task = asyncio.run_coroutine_threadsafe(self._listen(group, ready), self.loop)
        assert ready.wait(5)

    def stop(self) -> None:
        self.task.cancel()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def wait_for_messages(receiver: LoopThread, n: int, timeout: float) -> float:
    started = time.monotonic()
    while len(receiver.received) < n and time.monotonic() - started < timeout:
        time.sleep(0.01)
    return time.monotonic() - started


def test_in_process_sends_run_on_the_web_loop_and_wake_its_sockets(layer_settings):
    layer_settings(channel_layers_from_url(""))  # in-memory, as in the embedded platform
    web = LoopThread()
    try:
        web.listen("asset.1")
        group_sender.use_loop(web.loop)
        for i in range(3):
            assert send_to_groups([("asset.1", {"type": "asset.update", "n": i})]) == 1
        waited = wait_for_messages(web, 3, 2.0)
        assert [m["n"] for m in web.received] == [0, 1, 2]
        assert waited < 1.0
    finally:
        group_sender.use_loop(None)
        web.stop()


@pytest.mark.redis
def test_over_redis_messages_arrive_in_order_from_another_process_loop(layer_settings, redis_url):
    layer_settings(channel_layers_from_url(redis_url, prefix=f"test-sender-{free_port()}"))
    web = LoopThread()
    try:
        web.listen("site.7")
        time.sleep(0.2)  # the subscription reaches Redis
        for i in range(5):
            send_to_groups([("site.7", {"type": "x", "n": 2 * i}), ("site.7", {"type": "x", "n": 2 * i + 1})])
        wait_for_messages(web, 10, 5.0)
        assert [m["n"] for m in web.received] == list(range(10))
    finally:
        web.stop()


def test_a_channel_layer_outage_is_logged_and_counted_and_the_ingest_goes_on(layer_settings, caplog):
    layer_settings(channel_layers_from_url(f"redis://127.0.0.1:{free_port()}/0"))  # nothing listens there
    publisher = LivePublisher(0.0, {5: "temperature_c"}, {1: 3})
    publisher.add({1: {5: (datetime.now(UTC), 21.5)}})
    with caplog.at_level(logging.ERROR, logger="ingest.live"):
        started = time.monotonic()
        assert publisher.flush() == 0
    assert time.monotonic() - started < group_sender.SEND_TIMEOUT_S + 1
    assert publisher.failures == 1
    assert "live updates for 1 assets not sent" in caplog.text


def test_it_refuses_to_block_an_event_loop(layer_settings):
    layer_settings(channel_layers_from_url(""))

    async def from_async_code() -> None:
        send_to_groups([("asset.1", {"type": "x"})])

    with pytest.raises(RuntimeError, match="await layer.group_send"):
        asyncio.run(from_async_code())
