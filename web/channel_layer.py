"""The Redis pub/sub channel layer, decoding each group message once per process.

channels_redis' pub/sub layer receives a group message once per web process and puts the same
bytes into the queue of every socket in the group, but decodes them once per socket: with 200
fleet pages on one site, decoding was half of daphne's CPU (py-spy on bench/live_latency.py
--mode site). This layer remembers the last decoded payloads by identity, so every socket gets
the same decoded message. Consumers must treat group messages as read-only (web.consumers
does: it builds new dicts when it merges).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer

DECODED_KEPT = 256  # payloads in flight at once to different sockets of one process


class SharedDecodePubSubChannelLayer(RedisPubSubChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # id(payload) -> (payload, decoded). Holding the payload keeps its id from being reused.
        self._decoded: OrderedDict[int, tuple[bytes, Any]] = OrderedDict()

    def deserialize(self, message: bytes) -> Any:
        key = id(message)
        hit = self._decoded.get(key)
        if hit is not None and hit[0] is message:
            return hit[1]
        decoded = super().deserialize(message)
        self._decoded[key] = (message, decoded)
        if len(self._decoded) > DECODED_KEPT:
            self._decoded.popitem(last=False)
        return decoded
