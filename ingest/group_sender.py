"""Channel-layer group messages sent from synchronous code: the ingest worker, Celery tasks,
the twin refresh, views.

``async_to_sync(layer.group_send)`` runs every call on a brand-new event loop. With the Redis
layers that means a new connection (and its teardown) per call, several times a second per
ingest batch; with the in-memory layer of the embedded platform it touches the web server's
queues from a foreign thread, which does not wake the web server's loop. ``send_to_groups``
instead runs the sends on one long-lived loop:

- the web server's own loop when it runs in this process and registered it
  (``use_loop``, the embedded platform) -- thread-safe for the in-memory layer;
- otherwise, for a cross-process layer (Redis), a loop on a daemon thread of our own that
  keeps its connection between calls (re-created after a fork: Celery's prefork pool);
- otherwise (the in-memory layer with no web server in this process: tests, management
  commands) ``async_to_sync``, as before.

Sends are awaited in order; a failure or a timeout raises, and the caller decides (the
callers log it and go on: the data is stored, a reconnecting page catches up).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

SEND_TIMEOUT_S = 5.0

_lock = threading.Lock()
_web_loop: asyncio.AbstractEventLoop | None = None
_own_loop: asyncio.AbstractEventLoop | None = None
_own_pid = 0


def use_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Send on this running loop from now on (the web server's, in the same process); None to stop."""
    global _web_loop
    _web_loop = loop


def _sender_loop() -> asyncio.AbstractEventLoop:
    global _own_loop, _own_pid
    with _lock:
        if _own_loop is None or _own_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="group-sender", daemon=True).start()
            _own_loop, _own_pid = loop, os.getpid()
        return _own_loop


def send_to_groups(messages: Iterable[tuple[str, dict[str, Any]]], timeout: float = SEND_TIMEOUT_S) -> int:
    """Send each (group, message) in order; return how many. Raises on a channel-layer failure
    or when the sends take longer than ``timeout`` seconds."""
    batch = list(messages)
    layer = get_channel_layer()
    if layer is None or not batch:
        return 0

    async def send_all() -> None:
        for group, message in batch:
            await layer.group_send(group, message)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop in this thread: we may block it
    else:
        raise RuntimeError("send_to_groups() blocks: from async code, await layer.group_send() instead")
    web_loop = _web_loop
    if web_loop is not None and web_loop.is_running():
        loop = web_loop
    elif isinstance(layer, InMemoryChannelLayer):
        async_to_sync(send_all)()
        return len(batch)
    else:
        loop = _sender_loop()
    future = asyncio.run_coroutine_threadsafe(send_all(), loop)
    try:
        future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"channel layer did not take {len(batch)} group messages within {timeout:.1f} s") from None
    return len(batch)
