"""The run page's socket (/ws/scenarios/runs/<id>/): planners and admins who may see the run's
site join its group, get the stored progress at once, then the workers' progress coalesced
(latest wins) to at most one frame per FLUSH_INTERVAL_S; a finished state goes out at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from twins.scenarios import const
from twins.scenarios.progress import RunProgress, progress_key, run_group, snapshot
from web.roles import ADMIN, PLANNER, has_role, visible_sites


def _may_watch(user: Any, run_id: int) -> tuple[bool, bool]:
    from twins.scenarios.models import ScenarioRun

    if not has_role(user, PLANNER, ADMIN):
        return False, False
    return True, ScenarioRun.objects.filter(id=run_id, scenario__site__in=visible_sites(user)).exists()


class ScenarioRunConsumer(AsyncJsonWebsocketConsumer):
    flush_interval_s = const.FLUSH_INTERVAL_S

    async def connect(self) -> None:
        self.group: str | None = None
        self.pending: dict[str, Any] | None = None
        self.flush_task: asyncio.Task | None = None
        self.last_flush = 0.0
        self.frames = 0
        self.best_done = 0  # chunks report run-wide sums (progress_key) that may arrive out of order
        self.finished = False  # after done/failed/cancelled, a late progress report is stale
        user = self.scope.get("user")
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        # Accept, then close with a code the page understands (it stops retrying).
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=const.CLOSE_NOT_LOGGED_IN)
            return
        role, visible = await database_sync_to_async(_may_watch)(user, run_id)
        if not role or not visible:
            await self.close(code=const.CLOSE_NO_ROLE if not role else const.CLOSE_NOT_FOUND)
            return
        self.group = run_group(run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        # Joined first, then read: no update can fall between the snapshot and the group.
        current = await database_sync_to_async(snapshot)(run_id)
        if current is not None:
            self.finished = current["state"] not in ("queued", "running")
            await self._send(current)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "flush_task", None) is not None:
            self.flush_task.cancel()
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        return  # the page only listens

    async def scenario_progress(self, event: RunProgress) -> None:
        if self.finished:
            return
        if event["state"] not in ("queued", "running"):
            self.finished = True
            if self.flush_task is not None:
                self.flush_task.cancel()
                self.flush_task = None
            self.pending = None
            await self._send(event)
            return
        if progress_key(event) < self.best_done:
            return
        if self.pending is None or progress_key(event) >= progress_key(self.pending):
            self.pending = dict(event)
        if self.flush_task is None:
            delay = max(0.0, self.last_flush + self.flush_interval_s - time.monotonic())
            self.flush_task = asyncio.ensure_future(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
        finally:
            self.flush_task = None
        message, self.pending = self.pending, None
        if message is not None:
            await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        self.last_flush = time.monotonic()
        self.frames += 1
        self.best_done = max(self.best_done, progress_key(message))
        await self.send_json({key: message[key] for key in ("type", "run", "state", "done", "total", "checked", "check_total", "error")})
