"""The platform's MQTT side of rollouts: publish commands, receive cmd/ack and status.

One paho client with the platform account (``edge_node.services.platform_broker_url``).
Callbacks only queue messages: the database work happens in the caller's thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings

from edge_node.agent import contract

log = logging.getLogger(__name__)


class PlatformMqtt:
    def __init__(self, url: str, *, subscribe: bool = False, client_id: str | None = None) -> None:
        parts = urlsplit(url)
        self.subscribe = subscribe
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._pending: list[tuple[str, Any]] = []
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"aiot-rollouts-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        self.tls = parts.scheme in ("mqtts", "ssl")
        if self.tls:
            # The site's CA (MQTT_CA_FILE) when the broker's certificate is not publicly signed.
            self.client.tls_set(ca_certs=settings.MQTT_CA_FILE or None)
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme in ("mqtts", "ssl") else 1883)

    def start(self, timeout: float = 10.0) -> Self:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            if self.tls:
                from web.broker_probe import BrokerCertificateError, probe_broker_tls

                try:
                    probe_broker_tls(f"mqtts://{self.host}:{self.port}", settings.MQTT_CA_FILE)
                except BrokerCertificateError as exc:
                    raise OSError(str(exc)) from None
            raise OSError(f"cannot connect to the MQTT broker at {self.host}:{self.port} within {timeout:g} s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def publish(self, node_id: str, command: dict[str, Any], *, wait: bool = True) -> None:
        """Publish one command (QoS 1) and wait for the broker's PUBACK; with ``wait=False`` the
        PUBACK is awaited later, by ``flush`` (a step's commands then cost one round trip, not one each)."""
        info = self.client.publish(contract.topic(node_id, "cmd"), contract.encode(command), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise OSError(f"publish to {node_id} failed: {mqtt.error_string(info.rc)}")
        if not wait:
            self._pending.append((node_id, info))
            return
        info.wait_for_publish(timeout=10.0)
        if not info.is_published():
            raise OSError(f"publish to {node_id}: no PUBACK within 10 s")

    def publish_later(self, node_id: str, command: dict[str, Any]) -> None:
        """``publish(..., wait=False)``: the driver's Publish for a loop that calls ``flush`` after each step."""
        self.publish(node_id, command, wait=False)

    def flush(self, timeout: float = 10.0) -> list[str]:
        """Wait for the PUBACK of every ``publish(wait=False)``; returns the node ids still without one
        (paho keeps those QoS 1 messages and sends them again after a reconnect)."""
        pending, self._pending = self._pending, []
        deadline = time.monotonic() + timeout
        late = []
        for node_id, info in pending:
            info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                late.append(node_id)
        return late

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("rollouts MQTT: connection refused: %s", reason_code)
            return
        if self.subscribe:
            client.subscribe([(contract.subscription("cmd/ack"), 1), (contract.subscription("status"), 1)])
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.connected.clear()
        if reason_code != 0:
            log.warning("rollouts MQTT: disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.inbox.put((message.topic, message.payload))
