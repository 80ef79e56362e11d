"""The node's MQTT connection (paho-mqtt 2.x): TLS, credentials, last will, reconnect
with backoff, PUBACK tracking so the sender knows what the broker has taken, and the
platform's confirmations (``confirm``) of what it has stored."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from . import const, contract
from .config import AgentConfig
from .netloop import NetLoop

log = logging.getLogger(__name__)


class MqttLink:
    def __init__(self, cfg: AgentConfig, *, on_command: Callable[[bytes], None] | None = None,
                 wake: threading.Event | None = None, offline_payload: bytes | None = None,
                 net: NetLoop | None = None) -> None:
        """``net``: a shared network loop (fleet); None gives the client its own thread."""
        self.cfg = cfg
        self.net = net
        self.node_id = cfg.node_id
        self.wake = wake
        self.on_command = on_command
        self.connected = False
        self.connects = 0
        self._acked: list[int] = []
        self._confirmed: list[dict[str, list[tuple[int, int]]]] = []
        self._acked_lock = threading.Lock()
        self.confirm_topic = contract.topic(cfg.node_id, "confirm") if cfg.delivery == "confirmed" else None
        self.last_error: str | None = None
        proto = mqtt.MQTTv5 if cfg.broker.protocol.startswith("5") else mqtt.MQTTv311
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.node_id, protocol=proto)
        if cfg.username is not None:
            self.client.username_pw_set(cfg.username, cfg.password)
        if cfg.broker.tls:
            self.client.tls_set(
                ca_certs=str(cfg.broker.ca_file) if cfg.broker.ca_file else None,
                certfile=str(cfg.broker.cert_file) if cfg.broker.cert_file else None,
                keyfile=str(cfg.broker.key_file) if cfg.broker.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        self.client.will_set(
            contract.topic(cfg.node_id, "status"),
            offline_payload or contract.encode({"state": "offline"}), qos=1, retain=True,
        )
        self.client.reconnect_delay_set(const.RECONNECT_MIN_DELAY_S, const.RECONNECT_MAX_DELAY_S)
        self.client.max_inflight_messages_set(const.MAX_INFLIGHT)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_connect_fail = self._on_connect_fail
        self._last_fail_log = 0.0

    def start(self) -> None:
        # connect_async + loop_start: the network thread keeps retrying (with backoff) when
        # the broker is unreachable, while the agent goes on sampling and buffering.
        if self.net is not None:
            self.net.attach(self.client, self.cfg.broker.host, self.cfg.broker.port, self.cfg.broker.keepalive_s,
                            name=self.node_id)
            return
        self.client.connect_async(self.cfg.broker.host, self.cfg.broker.port, keepalive=self.cfg.broker.keepalive_s)
        self.client.loop_start()

    def stop(self, final_status: bytes | None = None) -> None:
        if self.connected and final_status is not None:
            info = self.client.publish(contract.topic(self.node_id, "status"), final_status, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("node %s: final status not confirmed: %s", self.node_id, exc)
        self.client.disconnect()
        if self.net is not None:
            self.net.detach(self.client)
        else:
            self.client.loop_stop()

    # -- publishing ------------------------------------------------------------
    def publish(self, channel: contract.Channel, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        info = self.client.publish(contract.topic(self.node_id, channel), payload, qos=qos, retain=retain)
        # NO_CONN still queues a QoS 1 message inside paho; it goes out on reconnect.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise OSError(f"publish to {channel} failed: {mqtt.error_string(info.rc)}")
        return info.mid

    def pop_acked(self) -> list[int]:
        with self._acked_lock:
            acked, self._acked = self._acked, []
        return acked

    def pop_confirmed(self) -> list[dict[str, list[tuple[int, int]]]]:
        with self._acked_lock:
            confirmed, self._confirmed = self._confirmed, []
        return confirmed

    # -- paho callbacks (network thread) ---------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            error = f"broker refused the connection: {reason_code}"
            auth = getattr(reason_code, "value", None) in const.AUTH_REFUSED_CODES
            if error != self.last_error:  # say it once, not on every attempt
                hint = (f": the node's credentials are no longer accepted (revoked or rotated?); trying again every "
                        f"{const.AUTH_REFUSED_RETRY_S / 60:g} min") if auth else ""
                log.error("node %s: %s%s", self.node_id, error, hint)
            self.last_error = error
            if auth:
                if self.net is not None:
                    self.net.hold_off(client, const.AUTH_REFUSED_RETRY_S)
                else:
                    client.reconnect_delay_set(const.AUTH_REFUSED_RETRY_S, const.AUTH_REFUSED_RETRY_S)
            return
        if self.last_error and self.last_error.startswith("broker refused"):
            client.reconnect_delay_set(const.RECONNECT_MIN_DELAY_S, const.RECONNECT_MAX_DELAY_S)
        self.connected = True
        self.connects += 1
        self.last_error = None
        log.info("node %s: connected to %s", self.node_id, self.cfg.broker.url)
        client.subscribe(contract.topic(self.node_id, "cmd"), qos=1)
        if self.confirm_topic:
            client.subscribe(self.confirm_topic, qos=1)
        if self.wake:
            self.wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # Unreachable broker, refused TCP, failed TLS handshake: paho retries with backoff;
        # say so once a minute, not on every attempt.
        now = time.monotonic()
        if now - self._last_fail_log >= 60.0:
            self._last_fail_log = now
            log.warning("node %s: cannot connect to %s (retrying; buffering meanwhile)", self.node_id,
                        self.cfg.broker.url)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self.connected = False
        if was and reason_code.is_failure:
            log.warning("node %s: disconnected (%s); buffering until the broker is back", self.node_id, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked_lock:
            self._acked.append(mid)
        if self.wake:
            self.wake.set()

    def _on_message(self, client, userdata, message) -> None:
        if self.confirm_topic and message.topic == self.confirm_topic:
            try:
                ranges = contract.parse_confirmation(message.payload)
            except contract.PayloadError as exc:
                log.warning("node %s: unreadable confirmation ignored: %s", self.node_id, exc)
                return
            with self._acked_lock:
                self._confirmed.append(ranges)
            if self.wake:
                self.wake.set()
            return
        if self.on_command is None:
            return
        try:
            self.on_command(message.payload)
        except Exception:  # one bad command must not kill the network thread
            log.exception("node %s: command handler failed", self.node_id)
