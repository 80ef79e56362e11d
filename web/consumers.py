"""The live socket: logged-in users subscribe to the sites and assets they may see, and get
the group messages coalesced (latest wins) and flushed at most every FLUSH_INTERVAL_S, so a
1,000 readings/s stream reaches a browser as a few frames a second."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ingest.live import asset_group, site_group
from web import live_messages as lm
from web import metrics
from web.roles import roles_of, visible_sites

log = logging.getLogger(__name__)


def _allowed_site_ids(user: Any) -> tuple[bool, set[int]]:
    return bool(roles_of(user)), set(visible_sites(user).values_list("id", flat=True))


def _site_of_asset(asset_id: int) -> int | None:
    from twins.models import Asset

    return Asset.objects.filter(id=asset_id).values_list("site_id", flat=True).first()


class LiveConsumer(AsyncJsonWebsocketConsumer):
    flush_interval_s = lm.FLUSH_INTERVAL_S

    async def connect(self) -> None:
        self.joined: set[str] = set()
        self.pending: dict[tuple[str, Any], dict[str, Any]] = {}
        self.flush_task: asyncio.Task | None = None
        self.last_flush = 0.0
        self.sent_frames = 0
        user = self.scope.get("user")
        # Accept, then close with a code: a browser sees 4401/4403 and stops retrying,
        # where a refused handshake looks like a network failure.
        await self.accept()
        metrics.LIVE_SOCKETS.inc()
        self.counted = True
        if user is None or not user.is_authenticated:
            await self.close(code=lm.CLOSE_NOT_LOGGED_IN)
            return
        has_role, self.site_ids = await database_sync_to_async(_allowed_site_ids)(user)
        if not has_role:
            await self.close(code=lm.CLOSE_NO_ROLE)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):
            self.counted = False
            metrics.LIVE_SOCKETS.dec()
        if self.flush_task is not None:
            self.flush_task.cancel()
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("action") != "subscribe":
            await self.send_json({"type": "refused", "site": None, "asset": None, "reason": "unknown request"})
            return
        site_id, asset_id = content.get("site"), content.get("asset")
        if isinstance(site_id, bool) or isinstance(asset_id, bool):
            site_id = asset_id = None
        group: str | None = None
        reason = "not allowed"
        if isinstance(site_id, int) and asset_id is None:
            if site_id in self.site_ids:
                group = site_group(site_id)
        elif isinstance(asset_id, int) and site_id is None:
            if await database_sync_to_async(_site_of_asset)(asset_id) in self.site_ids:
                group = asset_group(asset_id)
        else:
            reason = "ask for one site or one asset"
        if group is not None and len(self.joined) >= lm.MAX_SUBSCRIPTIONS and group not in self.joined:
            group, reason = None, "too many subscriptions"
        if group is None:
            await self.send_json({"type": "refused", "site": site_id, "asset": asset_id, "reason": reason})
            return
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.add(group)
        await self.send_json({"type": "subscribed", "site": site_id, "asset": asset_id, "server_time": time.time()})

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first hops to the one shared sync thread (close_old_connections)
        # for EVERY message. Group messages here touch only memory, and with hundreds of
        # sockets that hop queues them behind each other (~70 ms at 400 messages/s, see
        # bench/live_latency.py). Socket events still go the usual way; the handlers that
        # reach the database use database_sync_to_async, which closes old connections itself.
        if message.get("type") in lm.GROUP_MESSAGE_TYPES:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)

    # group messages (from the ingest worker and the alert services)

    async def asset_update(self, event: dict[str, Any]) -> None:
        self._queue(event)

    async def node_status(self, event: dict[str, Any]) -> None:
        self._queue(event)

    async def alert_update(self, event: dict[str, Any]) -> None:
        self._queue(event)

    async def twin_update(self, event: dict[str, Any]) -> None:
        self._queue(event)

    async def site_updates(self, event: dict[str, Any]) -> None:
        # Several asset updates of one site in one group message (lead: see live_messages).
        for update in event.get("updates", ()):
            self._queue(update)

    def _queue(self, event: dict[str, Any]) -> None:
        key = lm.coalesce_key(event)
        if key is None:
            return
        older = self.pending.get(key)
        # An asset is in its site's group and its own: the same update may arrive twice.
        self.pending[key] = lm.merge_asset_updates(older, event) if older is not None and key[0] == "asset" else event
        if self.flush_task is None:
            delay = max(0.0, self.last_flush + self.flush_interval_s - time.monotonic())
            self.flush_task = asyncio.ensure_future(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
        finally:
            self.flush_task = None
        messages = list(self.pending.values())
        self.pending.clear()
        self.last_flush = time.monotonic()
        if messages:
            self.sent_frames += 1
            metrics.LIVE_FRAMES.inc()
            await self.send(text_data=lm.encode_updates(messages, time.time()))
