"""The ingest worker: MQTT in, validated batches out to the database, live updates after commit.

Delivery guarantee: QoS 1 with a persistent session, and a message is acknowledged (PUBACK)
only after the transaction holding it has committed. A crash before the commit makes the
broker redeliver; a crash after the commit but before the PUBACK redelivers a message whose
(node, seq) is already stored, and it is dropped as a duplicate. A database outage makes the
worker wait and retry the same batch, with backoff; nothing is acknowledged meanwhile.
After the commit the worker also confirms each node's handled ``seq`` numbers on
``aiot/v1/<node>/confirm``: agents keep a message until it is confirmed (not merely PUBACKed
by the broker) and send it again otherwise, so a broker crash loses nothing either.

Nothing a node sends can stop the worker: each message is parsed inside a boundary that turns
any exception into a dead letter (``unprocessable``); a batch the database refuses for a
reason that is not an outage is split in halves until the message that causes it is found
and dead-lettered (``store_failed``), and the rest is stored. Only outages are retried.
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
from ingest import const
from ingest.live import LivePublisher
from ingest.metrics import BATCH_SECONDS, CONFIRM_LAG
from ingest.payloads import Limits, ParsedMessage, parse_message, unprocessable
from ingest.registry import load_registry
from ingest.store import BatchResult, Incoming, store_batch
from twins.alerting import AlertEngine

log = logging.getLogger(__name__)

REGISTRY_TTL_S = 10.0
RECEIVE_MAXIMUM = 2000
ALERT_CATCH_UP_EVERY_S = 2.0

class DatabaseOutage(Exception):
    """The database cannot be reached: retry the same batch later (nothing is acknowledged)."""


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
        self.live_enabled = live
        self.live: LivePublisher | None = None
        self.stats = {
            "messages": 0, "rows": 0, "duplicates": 0, "rejected": 0, "batches": 0, "db_retries": 0,
            "alert_failures": 0, "unprocessable": 0, "store_failed": 0, "batch_splits": 0, "confirmations": 0,
            "post_commit_failures": 0,
        }
        self._db_wait_s = settings.INGEST_DB_WAIT_MIN_S
        self.alerts = AlertEngine()  # the alert rules, evaluated after each committed batch
        self._watched: frozenset[int] = frozenset()
        self.alerts_caught_up_at = 0.0
        self._unacked_subscriptions: set[int] = set()
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
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def subscriptions(self) -> list[str]:
        return [contract.subscription(ch, share_group=self.share_group) for ch in ("telemetry", "events", "status")]

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.error("broker refused the ingest connection: %s", reason_code)
            return
        self._unacked_subscriptions = {client.subscribe(sub, qos=1)[1] for sub in self.subscriptions()}
        log.info("connected to %s:%s as %s, session present=%s", self.address.host, self.address.port, self.client_id, flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        # Connected means subscribed: a message published before the broker granted the
        # subscription would not reach this worker (and readiness would say otherwise).
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("broker refused an ingest subscription (mid %s): %s", mid, ", ".join(refused))
            return
        self._unacked_subscriptions.discard(mid)
        if not self._unacked_subscriptions:
            self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected.clear()
        if not self.stop_event.is_set():
            log.warning("disconnected from broker (%s); paho reconnects with backoff", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        # paho's network thread: an exception here would end it, so nothing may raise.
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # a broker that passes invalid UTF-8 topics through
            topic = msg._topic.decode("utf-8", "backslashreplace")
        self.inbox.put(Received(msg.mid, msg.qos, topic, msg.payload, time.monotonic()))

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
        """One batch: parse, store (retrying on database outages), acknowledge, confirm, publish live."""
        if not self._housekeeping():
            return False
        batch = self._take_batch()
        if not batch:
            if self.live:
                self.live.flush()
            self._catch_up_alerts()
            return False
        started = time.monotonic()
        stored = self._store_with_retry(batch)
        if stored is None:
            return False  # stopping while the database was down; the broker redelivers
        items, result = stored
        for item in batch:
            if item.qos > 0:
                self.client.ack(item.mid, item.qos)
        self.stats["batches"] += 1
        self.stats["messages"] += len(batch)
        self.stats["rows"] += result.stored_rows
        self.stats["duplicates"] += result.duplicates
        self.stats["rejected"] += result.rejected
        try:
            if settings.INGEST_CONFIRM:
                self._confirm(items)
        except Exception:  # noqa: BLE001 - unconfirmed messages are sent again by the agents
            self.stats["post_commit_failures"] += 1
            log.exception("confirming a batch of %d messages failed; the agents will send them again", len(items))
        now = time.monotonic()
        BATCH_SECONDS.observe(now - started)
        CONFIRM_LAG.observe(now - min(r.received_at for r in batch))
        try:
            nodes = {i.parsed.node_key for i in items if i.parsed.channel == "telemetry" and i.parsed.seq is not None and i.parsed.node_key}
            self.alerts.process_stored(nodes, result.event_ids)
        except Exception:
            # Alerts must never stop the ingest: the readings are stored and acknowledged already.
            self.stats["alert_failures"] += 1
            log.exception("alert evaluation failed for a batch of %d rows (failure %d)", len(result.rows), self.stats["alert_failures"])
        self._catch_up_alerts()
        if self.live:
            try:
                self._publish_live(result)
            except Exception:  # noqa: BLE001 - live views catch up from the database
                self.stats["post_commit_failures"] += 1
                log.exception("live updates for a batch failed; pages catch up on their next fetch")
        return True

    def _watched_metrics(self) -> frozenset[int]:
        """The metrics whose readings the alert rules need; a broken alert engine keeps the
        previous set (the readings are stored regardless), an outage is retried."""
        try:
            return self.alerts.watched_metrics()
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            self.stats["alert_failures"] += 1
            log.exception("alert rules could not be loaded (failure %d); keeping the previous ones", self.stats["alert_failures"])
            return self._watched

    def _catch_up_alerts(self) -> None:
        """Every few seconds, evaluate nodes whose readings wait behind a gap that has settled
        since (their stream may have gone quiet, so no batch of theirs would)."""
        if time.monotonic() - self.alerts_caught_up_at < ALERT_CATCH_UP_EVERY_S:
            return
        self.alerts_caught_up_at = time.monotonic()
        try:
            self.alerts.catch_up()
        except Exception:
            self.stats["alert_failures"] += 1
            log.exception("alert catch-up failed (failure %d); retried in %.0f s", self.stats["alert_failures"], ALERT_CATCH_UP_EVERY_S)

    def _publish_live(self, result: BatchResult) -> None:
        assert self.live is not None and self.registry is not None
        self.live.add(result.latest)
        for node_key, status in result.statuses.items():
            node = self.registry.nodes.get(node_key)
            if node is not None:
                self.live.send_status(node_key, node.site_id, status)
        self.live.flush()

    def _confirm(self, items: list[Incoming]) -> None:
        """Tell each node which of its seqs are handled for good (stored, already stored, or
        dead-lettered): sent after the commit, so a confirmed message is never lost."""
        by_node: dict[str, dict[str, list[int]]] = {}
        for item in items:
            p = item.parsed
            if p.seq is not None and p.node_key and p.channel in contract.CONFIRMED_CHANNELS:
                by_node.setdefault(p.node_key, {}).setdefault(p.channel, []).append(p.seq)
        for node_key, channels in by_node.items():
            body = {channel: contract.seq_ranges(seqs) for channel, seqs in channels.items()}
            self.client.publish(contract.topic(node_key, "confirm"), contract.encode(body), qos=1)
            self.stats["confirmations"] += 1

    def _parse(self, batch: list[Received]) -> list[Incoming]:
        now = time.time()
        items = [Incoming(self._parse_one(r.topic, r.payload, now), r.payload) for r in batch]
        misses = [r.received_at for r, i in zip(batch, items, strict=True) if _is_registry_miss(i.parsed)]
        if misses and self.registry_loaded_at < max(misses):
            # A node or asset may have been registered after the registry was loaded: reload
            # once and parse those messages again (at most one reload per batch).
            self._load_registry()
            items = [
                Incoming(self._parse_one(i.parsed.topic, i.payload, now), i.payload) if _is_registry_miss(i.parsed) else i
                for i in items
            ]
        return items

    def _parse_one(self, topic: str, payload: bytes, now: float) -> ParsedMessage:
        """The boundary around one untrusted message: whatever it raises becomes its dead letter."""
        try:
            return parse_message(topic, payload, self.registry, now, self.limits)
        except Exception as exc:  # noqa: BLE001 - any input class nobody thought of
            self.stats["unprocessable"] += 1
            failed = unprocessable(topic, exc, payload)
            log.warning(
                "unprocessable message on %s (%d bytes), dead-lettered: %s",
                failed.topic[:200], len(payload), failed.rejects[0].detail,
            )
            return failed

    def _store_with_retry(self, batch: list[Received]) -> tuple[list[Incoming], BatchResult] | None:
        while True:
            try:
                items = self._parse(batch)
                self._watched = self._watched_metrics()
                result = self._store_resilient(items, datetime.now(UTC))
                self._db_wait_s = settings.INGEST_DB_WAIT_MIN_S
                return items, result
            except (DatabaseOutage, OperationalError, InterfaceError) as exc:
                self.stats["db_retries"] += 1
                cause = exc.__cause__ if isinstance(exc, DatabaseOutage) and exc.__cause__ else exc
                log.error("database unavailable (%s); retrying batch of %d messages in %.1f s", cause, len(batch), self._db_wait_s)
                close_old_connections()
                try:
                    connection.close()
                except DatabaseError:
                    pass  # the connection is broken already; the next query reconnects
                if self.stop_event.wait(self._db_wait_s):
                    return None
                self._db_wait_s = min(self._db_wait_s * 2, settings.INGEST_DB_WAIT_MAX_S)

    def _store_resilient(self, items: list[Incoming], now: datetime, retried: bool = False) -> BatchResult:
        """Store ``items``; if the database refuses them for a reason that is not an outage,
        split the batch to find the message that causes it, dead-letter it, store the rest."""
        try:
            return store_batch(items, now, self._watched)
        except Exception as exc:  # noqa: BLE001 - classified below: outage, or this data
            if _is_outage(exc):
                raise DatabaseOutage(str(exc)) from exc
            if len(items) > 1:
                self.stats["batch_splits"] += 1
                log.warning("batch of %d messages refused (%s: %s); splitting it to find the cause",
                            len(items), type(exc).__name__, str(exc)[:200])
                half = len(items) // 2
                total = self._store_resilient(items[:half], now)
                _merge(total, self._store_resilient(items[half:], now))
                return total
            if isinstance(exc, OperationalError) and not retried:
                return self._store_resilient(items, now, retried=True)  # a deadlock or a serialization failure
            return self._dead_letter_refused(items[0], exc, now)

    def _dead_letter_refused(self, item: Incoming, exc: BaseException, now: datetime) -> BatchResult:
        self.stats["store_failed"] += 1
        detail = f"{type(exc).__name__}: {str(exc)[:500]}"
        log.error("message on %s refused by the database, dead-lettered: %s", item.parsed.topic[:200], detail)
        failed = ParsedMessage(topic=item.parsed.topic, node_key=item.parsed.node_key, channel=item.parsed.channel, seq=item.parsed.seq)
        failed.reject_whole(const.STORE_FAILED, detail)
        try:
            return store_batch([Incoming(failed, item.payload)], now)
        except Exception as again:  # noqa: BLE001 - the last resort: the log keeps the message
            if _is_outage(again):
                raise DatabaseOutage(str(again)) from again
            log.error("could not even dead-letter the message on %s (%s); its payload: %s",
                      item.parsed.topic[:200], again, item.payload[:4096].hex())
            return BatchResult()

    # --- housekeeping ------------------------------------------------------------------------

    def _load_registry(self) -> None:
        self.registry, metric_keys, asset_sites = load_registry()
        self.registry_loaded_at = time.monotonic()
        if self.live_enabled:
            if self.live is None:
                self.live = LivePublisher(settings.INGEST_LIVE_INTERVAL_S, metric_keys, asset_sites)
            else:
                self.live.update_registry(metric_keys, asset_sites)

    def _housekeeping(self) -> bool:
        """Reload the registry when stale (partitions and pruning are one job elsewhere:
        ingest/maintenance.py). False while the worker
        cannot start yet (no registry: the database is down); it waits with capped backoff,
        in a loop of steps, for as long as it takes."""
        now = time.monotonic()
        if self.registry is None or now - self.registry_loaded_at > REGISTRY_TTL_S:
            close_old_connections()
            try:
                self._load_registry()
            except (OperationalError, InterfaceError) as exc:
                if self.registry is None:
                    self.stats["db_retries"] += 1
                    log.error("database unavailable at start (%s); waiting %.1f s", exc, self._db_wait_s)
                    self.stop_event.wait(self._db_wait_s)
                    self._db_wait_s = min(self._db_wait_s * 2, settings.INGEST_DB_WAIT_MAX_S)
                    return False
                log.error("registry reload failed (%s); keeping the previous one", exc)
            else:
                self._db_wait_s = settings.INGEST_DB_WAIT_MIN_S
        return True


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unreachable (retry later) rather than that it
    refused this data (find and dead-letter the message). Only a connection error can be an
    outage, and only if a fresh connection cannot run ``SELECT 1`` either."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    close_old_connections()
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
    except (OperationalError, InterfaceError):
        return True
    return False


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
