"""Small synchronous paho wrappers for the broker ACL tests."""

from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from tests.helpers import wait_until


@dataclass
class Session:
    client: mqtt.Client
    connack: list = field(default_factory=list)
    messages: queue.Queue = field(default_factory=queue.Queue)
    subacks: dict = field(default_factory=dict)
    disconnected: threading.Event = field(default_factory=threading.Event)

    def subscribe(self, topic: str, qos: int = 1) -> int:
        """Subscribe and return the granted QoS or the failure code (128 = refused)."""
        _, mid = self.client.subscribe(topic, qos=qos)
        codes = wait_until(lambda: self.subacks.get(mid), timeout=5, what=f"SUBACK for {topic}")
        return codes[0].value

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=5)

    def received(self, timeout: float = 5.0) -> tuple[str, bytes]:
        msg = self.messages.get(timeout=timeout)
        return msg

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(port: int, username: str | None, password: str | None, *, protocol: int = mqtt.MQTTv311, client_id: str | None = None) -> Session:
    """Connect and wait for the CONNACK; ``session.connack[0]`` is the reason code (0 = accepted)."""
    # Like the agent, a client uses its username as client id unless the test says otherwise.
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or username or f"t-{uuid.uuid4().hex[:10]}", protocol=protocol)
    session = Session(client)
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(c, userdata, flags, reason_code, properties):
        session.connack.append(reason_code)

    def on_message(c, userdata, msg):
        session.messages.put((msg.topic, msg.payload))

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        session.subacks[mid] = reason_codes

    def on_disconnect(c, userdata, flags, reason_code, properties):
        session.disconnected.set()

    client.on_connect, client.on_message, client.on_subscribe, client.on_disconnect = on_connect, on_message, on_subscribe, on_disconnect
    client.reconnect_delay_set(60, 120)  # no quick automatic reconnect hiding a refusal
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    wait_until(lambda: session.connack or session.disconnected.is_set(), timeout=5, what="CONNACK")
    if not session.connack or session.connack[0].is_failure:
        client.loop_stop()
    return session


def accepted(session: Session) -> bool:
    return bool(session.connack) and not session.connack[0].is_failure
