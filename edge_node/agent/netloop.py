"""One network thread for many paho clients (the fleet simulator's I/O).

paho's ``loop_start`` gives every client its own thread blocked in ``select()``, which
cannot watch file descriptors above 1023: a process with a few hundred simulated nodes
(socket + SQLite files each) runs past it and the later nodes never connect. ``NetLoop``
drives all clients through paho's external-loop API (``loop_read``/``loop_write``/
``loop_misc`` with the ``on_socket_*`` callbacks) on one ``selectors`` (epoll) loop, and
reconnects each client with its own exponential backoff.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from . import const

log = logging.getLogger(__name__)

MISC_INTERVAL_S = 0.5  # keepalive pings and timeouts, per client


@dataclass
class _Entry:
    client: mqtt.Client
    name: str
    next_attempt: float = 0.0
    backoff: float = const.RECONNECT_MIN_DELAY_S
    sock: Any = None
    want_write: bool = False
    closed: bool = False  # detached: never reconnect
    hold_until: float = 0.0  # no attempt before this (the broker refused the credentials)


class NetLoop:
    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._entries: dict[int, _Entry] = {}  # id(client) -> entry
        self._ops: deque = deque()  # socket (un)registrations from other threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- attaching clients ---------------------------------------------------------
    def attach(self, client: mqtt.Client, host: str, port: int, keepalive: int, name: str = "") -> None:
        """Take over ``client``'s network I/O; it connects (and reconnects) from the loop."""
        entry = _Entry(client, name or str(client._client_id))
        client.on_socket_open = lambda c, u, s: self._op(("open", entry, s))
        client.on_socket_close = lambda c, u, s: self._op(("close", entry, s))
        client.on_socket_register_write = lambda c, u, s: self._op(("write", entry, s))
        client.on_socket_unregister_write = lambda c, u, s: self._op(("nowrite", entry, s))
        client.connect_async(host, port, keepalive=keepalive)
        with self._lock:
            self._entries[id(client)] = entry
        self.wake()

    def detach(self, client: mqtt.Client) -> None:
        with self._lock:
            entry = self._entries.get(id(client))
        if entry is not None:
            entry.closed = True
            self._op(("detach", entry, None))

    def hold_off(self, client: mqtt.Client, seconds: float) -> None:
        """No reconnect attempt for ``seconds`` (the broker refused the client's credentials:
        retrying every second cannot help and floods both logs)."""
        with self._lock:
            entry = self._entries.get(id(client))
        if entry is not None:
            entry.hold_until = time.monotonic() + seconds

    def _op(self, op: tuple) -> None:
        self._ops.append(op)
        if threading.current_thread() is not self._thread:
            self.wake()

    def wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the loop is awake anyway

    # -- running -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-netloop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            entries = list(self._entries.values())
        for e in entries:
            if e.sock is not None:
                try:
                    e.client._sock_close()
                except OSError as exc:
                    log.debug("%s: closing socket: %s", e.name, exc)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _apply_ops(self) -> None:
        while self._ops:
            kind, entry, sock = self._ops.popleft()
            if kind == "open":
                entry.sock = sock
                entry.want_write = False
                self._sel.register(sock, selectors.EVENT_READ, entry)
            elif kind in ("write", "nowrite"):
                if entry.sock is not sock or sock is None:
                    continue
                entry.want_write = kind == "write"
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if entry.want_write else 0)
                try:
                    self._sel.modify(sock, events, entry)
                except (KeyError, ValueError, OSError):
                    continue  # closed meanwhile
            elif kind == "close":
                self._forget_socket(entry, sock)
                if not entry.closed:
                    # Closed before a CONNACK was accepted counts as a failed attempt: back off.
                    entry.next_attempt = max(time.monotonic() + entry.backoff, entry.hold_until)
                    if not entry.client.is_connected():
                        entry.backoff = min(const.RECONNECT_MAX_DELAY_S, entry.backoff * 2)
            elif kind == "detach":
                with self._lock:
                    self._entries.pop(id(entry.client), None)

    def _forget_socket(self, entry: _Entry, sock: Any) -> None:
        if sock is not None:
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError, OSError):
                pass  # never registered or already gone
        if entry.sock is sock:
            entry.sock = None

    def _connect_due(self, now: float) -> None:
        with self._lock:
            entries = list(self._entries.values())
        for e in entries:
            if e.closed or e.sock is not None or now < max(e.next_attempt, e.hold_until):
                continue
            try:
                e.client.reconnect()  # the TCP connection only: the backoff resets on CONNACK
            except (OSError, ValueError) as exc:
                e.next_attempt = now + e.backoff
                log.debug("%s: connect failed (%s); retry in %.0f s", e.name, exc, e.backoff)
                e.backoff = min(const.RECONNECT_MAX_DELAY_S, e.backoff * 2)
            self._apply_ops()

    def _run(self) -> None:
        last_misc = 0.0
        while not self._stop.is_set():
            self._apply_ops()
            now = time.monotonic()
            self._connect_due(now)
            for key, mask in self._sel.select(timeout=0.25):
                entry = key.data
                if entry is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    continue
                try:
                    if mask & selectors.EVENT_READ:
                        entry.client.loop_read(max_packets=100)
                    if mask & selectors.EVENT_WRITE and entry.sock is not None:
                        entry.client.loop_write()
                except Exception:  # one client's failure must not stop every node's I/O
                    log.exception("%s: network error", entry.name)
                self._apply_ops()
            now = time.monotonic()
            if now - last_misc >= MISC_INTERVAL_S:
                last_misc = now
                with self._lock:
                    entries = list(self._entries.values())
                for e in entries:
                    if e.sock is not None:
                        e.client.loop_misc()
                        # a successful CONNACK resets the backoff
                        if e.client.is_connected():
                            e.backoff = const.RECONNECT_MIN_DELAY_S
