"""The ingest worker: MQTT in, validated batches out to the database, live updates after commit.

Delivery guarantee: QoS 1 with a persistent session, and a message is acknowledged (PUBACK)
only after the transaction holding it has committed. A crash before the commit makes the
broker redeliver; a crash after the commit but before the PUBACK redelivers a message whose
(node, seq) is already stored, and it is dropped as a duplicate. A database outage makes the
worker wait and retry the same batch, with backoff; nothing is acknowledged meanwhile.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_node.agent import contract
from ingest import const, timeseries
from ingest.live import LivePublisher
from ingest.payloads import Limits, ParsedMessage, parse_message
from ingest.registry import load_registry
from ingest.store import BatchResult, Incoming, store_batch
from twins.alerting import AlertEngine

log = logging.getLogger(__name__)

REGISTRY_TTL_S = 10.0
MAINTENANCE_EVERY_S = 3600.0
RECEIVE_MAXIMUM = 2000


@dataclass
class Received:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float  # time.monotonic()


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def default_client_id(name: str, share_group: str | None) -> str:
    host = socket.gethostname().split(".")[0][:20]
    return f"{settings.MQTT_CLIENT_ID_PREFIX}-ingest-{host}-{share_group or 'solo'}-{name}"[:64]


class IngestWorker:
    def __init__(
        self,
        broker_url: str,
        client_id: str,
        share_group: str | None = None,
        protocol: int = mqtt.MQTTv5,
        batch_max_messages: int | None = None,
        batch_wait_ms: int | None = None,
        live: bool = True,
    ) -> None:
        self.address = parse_broker_url(broker_url)
        self.client_id = client_id
        self.share_group = share_group
        self.protocol = protocol
        self.batch_max = batch_max_messages or settings.INGEST_BATCH_MAX_MESSAGES
        self.batch_wait_s = (batch_wait_ms or settings.INGEST_BATCH_MAX_WAIT_MS) / 1000.0
        self.limits = Limits(
            max_payload_bytes=settings.INGEST_MAX_PAYLOAD_BYTES,
            max_readings=settings.INGEST_MAX_READINGS_PER_MESSAGE,
            max_past_s=settings.INGEST_MAX_PAST_SECONDS,
            max_future_s=settings.INGEST_MAX_FUTURE_SECONDS,
        )
        self.inbox: queue.Queue[Received] = queue.Queue()
        self.stop_event = threading.Event()
        self.connected = threading.Event()
        self.registry = None
        self.registry_loaded_at = 0.0
        self.maintained_at = 0.0
        self.live_enabled = live
        self.live: LivePublisher | None = None
        self.stats = {"messages": 0, "rows": 0, "duplicates": 0, "rejected": 0, "batches": 0, "db_retries": 0, "alert_failures": 0}
        self.alerts = AlertEngine()  # the alert rules, evaluated after each committed batch
        self.client = self._make_client()

    # --- MQTT ------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self.protocol,
            clean_session=None if self.protocol == mqtt.MQTTv5 else False,
            manual_ack=True,
        )
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set(ca_certs=settings.MQTT_CA_FILE or None, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def subscriptions(self) -> list[str]:
        return [contract.subscription(ch, share_group=self.share_group) for ch in ("telemetry", "events", "status")]

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.error("broker refused the ingest connection: %s", reason_code)
            return
        for sub in self.subscriptions():
            client.subscribe(sub, qos=1)
        log.info("connected to %s:%s as %s, session present=%s", self.address.host, self.address.port, self.client_id, flags.session_present)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected.clear()
        if not self.stop_event.is_set():
            log.warning("disconnected from broker (%s); paho reconnects with backoff", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Received(msg.mid, msg.qos, msg.topic, msg.payload, time.monotonic()))

    def connect(self) -> None:
        kwargs = {}
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = settings.INGEST_SESSION_EXPIRY_S
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            kwargs = {"clean_start": False, "properties": props}
        self.client.connect_async(self.address.host, self.address.port, keepalive=30, **kwargs)
        self.client.loop_start()

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Run until stop() is called (SIGTERM/SIGINT in the management command)."""
        self.connect()
        try:
            while not self.stop_event.is_set():
                self.step()
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            log.info("ingest worker stopped: %s", self.stats)

    def stop(self) -> None:
        self.stop_event.set()

    def _take_batch(self) -> list[Received]:
        # Idle, wake up when the next throttled live update falls due, so the last reading
        # of a stream is not held longer than its asset's interval.
        wait = 0.2 if self.live is None else min(0.2, self.live.due_in())
        try:
            first = self.inbox.get(timeout=max(0.005, wait))
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            try:
                batch.append(self.inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def step(self) -> bool:
        """One batch: parse, store (retrying on database outages), acknowledge, publish live."""
        self._housekeeping()
        batch = self._take_batch()
        if not batch:
            if self.live:
                self.live.flush()
            return False
        result = self._store_with_retry(batch)
        if result is None:
            return False  # stopping while the database was down; the broker redelivers
        for item in batch:
            if item.qos > 0:
                self.client.ack(item.mid, item.qos)
        self.stats["batches"] += 1
        self.stats["messages"] += len(batch)
        self.stats["rows"] += result.stored_rows
        self.stats["duplicates"] += result.duplicates
        self.stats["rejected"] += result.rejected
        try:
            self.alerts.process(result.rows, result.event_ids)
        except Exception:
            # Alerts must never stop the ingest: the readings are stored and acknowledged already.
            self.stats["alert_failures"] += 1
            log.exception("alert evaluation failed for a batch of %d rows (failure %d)", len(result.rows), self.stats["alert_failures"])
        if self.live:
            self.live.add(result.latest)
            for node_key, status in result.statuses.items():
                node = self.registry.nodes.get(node_key)
                if node is not None:
                    self.live.send_status(node_key, node.site_id, status)
            self.live.flush()
        return True

    def _parse(self, batch: list[Received]) -> list[Incoming]:
        now = time.time()
        items = [Incoming(parse_message(r.topic, r.payload, self.registry, now, self.limits), r.payload) for r in batch]
        misses = [r.received_at for r, i in zip(batch, items, strict=True) if _is_registry_miss(i.parsed)]
        if misses and self.registry_loaded_at < max(misses):
            # A node or asset may have been registered after the registry was loaded: reload
            # once and parse those messages again (at most one reload per batch).
            self._load_registry()
            items = [
                Incoming(parse_message(i.parsed.topic, i.payload, self.registry, now, self.limits), i.payload)
                if _is_registry_miss(i.parsed)
                else i
                for i in items
            ]
        return items

    def _store_with_retry(self, batch: list[Received]) -> BatchResult | None:
        delay = 0.5
        while True:
            try:
                items = self._parse(batch)
                return self._store(items)
            except (OperationalError, InterfaceError) as exc:
                self.stats["db_retries"] += 1
                log.error("database unavailable (%s); retrying batch of %d messages in %.1f s", exc, len(batch), delay)
                close_old_connections()
                try:
                    connection.close()
                except DatabaseError:
                    pass  # the connection is broken already; the next query reconnects
                if self.stop_event.wait(delay):
                    return None
                delay = min(delay * 2, 15.0)

    def _store(self, items: list[Incoming]) -> BatchResult:
        now = datetime.now(UTC)
        try:
            return store_batch(items, now)
        except (OperationalError, InterfaceError):
            raise
        except DatabaseError as exc:
            # One message the database refuses must not block the others: store one by one,
            # dead-lettering what still fails.
            log.warning("batch refused (%s); storing its %d messages one by one", exc, len(items))
            total = BatchResult()
            for item in items:
                try:
                    part = store_batch([item], now)
                except (OperationalError, InterfaceError):
                    raise
                except DatabaseError as one_exc:
                    log.error("message on %s refused by the database: %s", item.parsed.topic, one_exc)
                    failed = ParsedMessage(topic=item.parsed.topic, node_key=item.parsed.node_key, seq=item.parsed.seq)
                    failed.reject_whole(const.STORE_FAILED, str(one_exc)[:500])
                    part = store_batch([Incoming(failed, item.payload)], now)
                _merge(total, part)
            return total

    # --- housekeeping ------------------------------------------------------------------------

    def _load_registry(self) -> None:
        self.registry, metric_keys, asset_sites = load_registry()
        self.registry_loaded_at = time.monotonic()
        if self.live_enabled:
            if self.live is None:
                self.live = LivePublisher(settings.INGEST_LIVE_INTERVAL_S, metric_keys, asset_sites)
            else:
                self.live.update_registry(metric_keys, asset_sites)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.registry is None or now - self.registry_loaded_at > REGISTRY_TTL_S:
            close_old_connections()
            try:
                self._load_registry()
            except (OperationalError, InterfaceError) as exc:
                if self.registry is None:
                    log.error("database unavailable at start (%s); waiting", exc)
                    self.stop_event.wait(2.0)
                    return self._housekeeping() if not self.stop_event.is_set() else None
                log.error("registry reload failed (%s); keeping the previous one", exc)
        if now - self.maintained_at > MAINTENANCE_EVERY_S:
            self.maintained_at = now
            try:
                timeseries.maintain()
            except DatabaseError:
                log.exception("telemetry maintenance failed; will retry in an hour")


def _is_registry_miss(parsed: ParsedMessage) -> bool:
    return any(r.reason in (const.UNKNOWN_NODE, const.UNKNOWN_ASSET, const.ASSET_NOT_ON_NODE, const.UNKNOWN_METRIC) for r in parsed.rejects)


def _merge(total: BatchResult, part: BatchResult) -> None:
    total.stored_rows += part.stored_rows
    total.stored_events += part.stored_events
    total.duplicates += part.duplicates
    total.rejected += part.rejected
    total.dead_letters += part.dead_letters
    for asset_id, metrics in part.latest.items():
        total.latest.setdefault(asset_id, {}).update(metrics)
    total.statuses.update(part.statuses)
    total.event_ids.extend(part.event_ids)
    total.rows.extend(part.rows)
