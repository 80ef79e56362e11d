"""The embedded (amqtt) broker enforces the same rules as Mosquitto.

``RegistryAccessPlugin`` is both an auth plugin (username/password checked against the node
registry and the service accounts, the same Mosquitto ``$7$`` hashes) and a topic plugin (the
rules of ``edge_node.broker_acl``). amqtt runs on its own asyncio loop thread, so the registry
is read into a cached table in a worker thread (never a blocking query on the loop), refreshed
every ``refresh_s`` and at once when a credential changes in this process; a revoked node's
live sessions are then closed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from edge_node import const
from edge_node.broker_acl import READ, WRITE, BrokerAccount, is_allowed
from edge_node.credentials import verify_mosquitto_hash

log = logging.getLogger(__name__)
DEFAULT_REFRESH_S = 5.0

_live_plugins: weakref.WeakSet[RegistryAccessPlugin] = weakref.WeakSet()
_live_lock = threading.Lock()


def load_accounts() -> dict[str, BrokerAccount]:
    """Every account the broker accepts, by username (runs in a worker thread: DB access)."""
    from django.db import close_old_connections

    from edge_node.services import node_accounts, service_accounts, service_usernames

    try:
        accounts = {a.username: a for a in node_accounts() if a.username not in service_usernames()}
        accounts.update({a.username: a for a in service_accounts()})
        return accounts
    finally:
        close_old_connections()


class CredentialTable:
    """A snapshot of the accounts, reloaded when older than ``refresh_s`` or invalidated."""

    def __init__(self, refresh_s: float = DEFAULT_REFRESH_S) -> None:
        self.refresh_s = refresh_s
        self.accounts: dict[str, BrokerAccount] = {}
        self.loaded_at = float("-inf")
        self._stale = threading.Event()  # set from any thread by invalidate()
        self._lock: asyncio.Lock | None = None

    def invalidate(self) -> None:
        self._stale.set()

    async def get(self, username: str) -> BrokerAccount | None:
        if self._stale.is_set() or time.monotonic() - self.loaded_at > self.refresh_s:
            await self._refresh()
        return self.accounts.get(username)

    async def _refresh(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._stale.is_set() and time.monotonic() - self.loaded_at <= self.refresh_s:
                return  # another task refreshed while this one waited
            self._stale.clear()
            try:
                self.accounts = await asyncio.to_thread(load_accounts)
                self.loaded_at = time.monotonic()
            except Exception:
                # Keep the previous snapshot (revocations already cleared from it stay cleared
                # once the registry answers again); refuse nobody new on a DB hiccup.
                log.exception("embedded broker: cannot reload credentials from the registry; keeping the previous table")
                self._stale.set()


@dataclass
class _Config:
    refresh_s: float = DEFAULT_REFRESH_S


class RegistryAccessPlugin(BaseAuthPlugin, BaseTopicPlugin):
    """amqtt plugin: authenticate against the registry and apply the broker ACL rules."""

    Config = _Config

    def __init__(self, context) -> None:
        super().__init__(context)
        self.table = CredentialTable(getattr(self.context.config, "refresh_s", DEFAULT_REFRESH_S))
        self.loop: asyncio.AbstractEventLoop | None = None
        with _live_lock:
            _live_plugins.add(self)

    async def authenticate(self, *, session: Session) -> bool:
        self.loop = asyncio.get_running_loop()
        if not session or not session.username:
            log.info("embedded broker: refused a client without a username")
            return False
        account = await self.table.get(session.username)
        if account is None or not verify_mosquitto_hash(session.password or "", account.password_hash):
            log.warning("embedded broker: refused %r (unknown user or wrong password)", session.username)
            return False
        if account.kind == const.KIND_NODE and session.client_id != account.username:
            # Like Mosquitto's use_username_as_clientid on the nodes' listener: a node cannot
            # take over another client's session by borrowing its client id.
            log.warning("embedded broker: refused node %r connecting as client id %r", session.username, session.client_id)
            return False
        return True

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None) -> bool:
        if session is None or not session.username or not topic:
            return False
        account = await self.table.get(session.username)
        if account is None:
            return False
        access = WRITE if action == Action.PUBLISH else READ
        allowed = is_allowed(account, topic, access)
        if not allowed and action != Action.RECEIVE:
            log.info("embedded broker: %s may not %s %s", session.username, "publish to" if access == WRITE else "subscribe to", topic)
        return allowed

    async def disconnect_user(self, username: str | None) -> int:
        """Close the connections of ``username`` (every client when None) whose account is gone."""
        broker = getattr(self.context, "_broker_instance", None)  # amqtt exposes sessions, not their handlers
        if broker is None:
            return 0
        closed = 0
        for session, handler in list(broker.sessions.values()):
            if session is None or handler is None or not session.username:
                continue
            if username is not None and session.username != username:
                continue
            if await self.table.get(session.username) is not None:
                continue
            writer = getattr(handler, "writer", None)
            if writer is not None:
                await writer.close()  # the broker sees the connection drop and ends the session
                closed += 1
                log.info("embedded broker: disconnected %s (%s): credentials revoked", session.username, session.client_id)
        return closed


def credentials_changed(username: str | None) -> None:
    """Listener (edge_node.services.CREDENTIAL_LISTENERS): refresh every embedded broker's table
    and drop the sessions of an account that no longer exists."""
    with _live_lock:
        plugins = list(_live_plugins)
    for plugin in plugins:
        plugin.table.invalidate()
        if plugin.loop is not None and plugin.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(plugin.disconnect_user(username), plugin.loop)
            future.add_done_callback(_log_failure)


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("embedded broker: disconnecting a revoked account failed: %r", future.exception())


def _register() -> None:
    from edge_node.services import CREDENTIAL_LISTENERS

    if credentials_changed not in CREDENTIAL_LISTENERS:
        CREDENTIAL_LISTENERS.append(credentials_changed)


_register()
