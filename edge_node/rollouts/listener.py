"""The rollout listener loop: apply cmd/ack and status messages, step active rollouts.

``RolloutListener.run_once`` is one small step (drain the inbox, step rollouts when due) that
says whether it found work; ``manage.py rollout_listener`` loops over it until SIGTERM.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from edge_node import key_rotation
from edge_node.agent import contract

from . import const, driver
from .mqtt_client import PlatformMqtt

log = logging.getLogger(__name__)


class RolloutListener:
    def __init__(self, mqtt_client: PlatformMqtt, step_interval_s: float | None = None) -> None:
        self.mqtt = mqtt_client
        self.step_interval_s = settings.ROLLOUT_STEP_INTERVAL_S if step_interval_s is None else step_interval_s
        self._next_step = 0.0
        self._last_step = 0.0
        self._dirty = False
        self.failures = 0
        self.acks = 0

    def run_once(self, wait_s: float = 0.05) -> bool:
        found = False
        dirty = False
        try:
            item = self.mqtt.inbox.get(timeout=wait_s)
        except queue.Empty:
            item = None
        batch = [item] if item else []
        while len(batch) < 1000:
            try:
                batch.append(self.mqtt.inbox.get_nowait())
            except queue.Empty:
                break
        close_old_connections()
        acks: list[tuple[str, dict]] = []
        for topic, raw in batch:
            found = True
            parsed = contract.parse_topic(topic)
            if parsed is None:
                continue
            node_id, channel = parsed
            try:
                payload = contract.decode(raw)
                if not isinstance(payload, dict):
                    raise contract.PayloadError("not_an_object", "payload is not a map")
                if channel == "cmd/ack" and key_rotation.is_keyring_ack(payload):
                    dirty = key_rotation.record_keyring_ack(node_id, payload) or dirty
                elif channel == "cmd/ack":
                    acks.append((node_id, payload))  # applied together below: a few queries a batch
                elif channel == "status":
                    dirty = driver.record_status(node_id, payload) or dirty
            except contract.PayloadError as exc:
                self.failures += 1
                log.warning("rollout listener: bad %s payload from %s: %s", channel, node_id, exc)
            except Exception:
                self.failures += 1
                log.exception("rollout listener: handling %s from %s failed", channel, node_id)
        dirty = self._record_acks(acks) or dirty
        now = time.monotonic()
        # A final ack frees a download slot: step soon, but at most every DIRTY_STEP_MIN_S (hundreds
        # of acks a second must not mean hundreds of steps).
        self._dirty = self._dirty or dirty
        if now >= self._next_step or (self._dirty and now >= self._last_step + const.DIRTY_STEP_MIN_S):
            self._dirty = False
            self._last_step = now
            self._next_step = now + self.step_interval_s
            found = driver.step_active(self.mqtt.publish_later) > 0 or found
            try:
                found = key_rotation.step_keyrings(self.mqtt.publish_later) > 0 or found
            except Exception:
                self.failures += 1
                log.exception("rollout listener: sending keyrings failed")
            late = self.mqtt.flush()
            if late:
                log.warning("rollout listener: %d command(s) without the broker's PUBACK within 10 s (first: %s); "
                            "the client sends them again after a reconnect", len(late), late[0])
        return found

    def _record_acks(self, acks: list[tuple[str, dict]]) -> bool:
        """Apply a batch of acks; True when one was final (a slot freed: step soon). A batch that
        fails is applied one ack at a time, so one bad ack costs only itself."""
        if not acks:
            return False
        try:
            changed = driver.record_acks(acks)
        except Exception:
            log.exception("rollout listener: a batch of %d acks failed; applying them one by one", len(acks))
            changed = []
            for node_id, payload in acks:
                try:
                    rn = driver.record_ack(node_id, payload)
                except Exception:
                    self.failures += 1
                    log.exception("rollout listener: handling cmd/ack from %s failed", node_id)
                    continue
                if rn is not None:
                    changed.append(rn)
        self.acks += len(changed)
        return any(rn.state not in const.IN_FLIGHT_STATES for rn in changed)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()


def start_listener_thread(mqtt_url: str | None = None) -> tuple[threading.Thread, threading.Event, PlatformMqtt]:
    """The listener in a daemon thread (the embedded demo stack): set the event, join the thread,
    then stop the client to shut it down."""
    from edge_node.services import platform_broker_url

    client = PlatformMqtt(platform_broker_url(mqtt_url), subscribe=True).start()
    stop = threading.Event()
    thread = threading.Thread(target=RolloutListener(client).run, args=(stop,), name="rollout-listener", daemon=True)
    thread.start()
    return thread, stop, client
