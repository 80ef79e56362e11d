"""OPC UA (asyncua client): data-change subscriptions where the server offers them, polling
otherwise; security policy Basic256Sha256 (Sign or SignAndEncrypt) with this gateway's
certificate, and user/password.

Notifications arrive in publish responses of many items; the driver decodes their data
changes in bulk from the binary (``opcua_publish``: a tenth of asyncua's cost per change; the
subscription's iterator queue is still read, for anything asyncua decodes itself) and hands the
changes of one publish to the sink grouped by their source timestamp (one reading per asset and
timestamp: a PLC stamps a whole scan alike), so 10,000 changes a second cost a few hundred
readings, not 10,000. Monitored items carry the driver's own client handles (the index of
their points), so a change finds its points without a node id lookup. Monitored items have a
queue (``queue_size``): every change between two publishes arrives, each at its own time.
A server that stops answering is found by a keep-alive read of its clock (and by the
subscription going silent past its keep-alive), then the runtime reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import security_policies

from ..codec import float32_value
from ..specs import DeviceSpec, OpcuaOptions, PointSpec
from . import DeviceDown, next_slot, opcua_publish, quiet_library_logs

log = logging.getLogger(__name__)
quiet_library_logs("asyncua", logging.CRITICAL)  # its publish loop logs every lost connection with a traceback

SERVER_CURRENT_TIME = ua.NodeId(2258)  # Server.ServerStatus.CurrentTime
KEEPALIVE_S = 5.0
SESSION_TIMEOUT_MS = 60_000
MAX_CLOCK_SKEW_S = 60.0  # a server clock further off than this: its timestamps are not used  # how long a server keeps our session after the connection drops
READ_CHUNK = 500  # nodes per Read request while polling
QUEUE_MAX = 200_000  # notifications waiting for the sink (asyncua drops the oldest past it)
MAX_ITEMS_PER_CALL = 1000  # monitored items created per CreateMonitoredItems request


def application_uri_of(cert_path: Path) -> str | None:
    """The URI in the certificate's SubjectAltName (servers check the client says the same)."""
    from cryptography import x509

    data = cert_path.read_bytes()
    cert = x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_certificate(data)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def to_number(dv: ua.DataValue) -> Any:
    """The raw value of a good DataValue (float32 as its shortest decimal)."""
    variant = dv.Value
    if variant is None:
        return None
    value = variant.Value
    if variant.VariantType == ua.VariantType.Float and isinstance(value, float):
        return float32_value(value)
    if isinstance(value, ua.LocalizedText):
        return value.Text
    return value


def status_problem(dv: ua.DataValue) -> str | None:
    """None for a good value, else the status name (BadSensorFailure, UncertainLastUsableValue...)."""
    code = dv.StatusCode
    if code is None or code.is_good():
        return None
    return code.name


class Driver:
    # Decode data changes in bulk (opcua_publish); False: one by one, as asyncua's iterator
    # delivers them (what happens anyway for a response the bulk decoder cannot read).
    BULK_DECODE = True

    def __init__(self, spec: DeviceSpec, sink: Any, health: Any, shared: dict[str, Any], cfg: Any) -> None:
        self.spec = spec
        self.sink = sink
        self.health = health
        opts = spec.options
        assert isinstance(opts, OpcuaOptions)
        self.opts = opts
        self.client: Client | None = None
        self.by_node: dict[str, list[PointSpec]] = {}
        for p in spec.points:
            self.by_node.setdefault(p.address.node_id, []).append(p)  # type: ignore[union-attr]
        self._pending: list[tuple[PointSpec, Any]] = []
        self._pending_bad: list[tuple[PointSpec, str]] = []
        self._pending_ts: dict[float, list[tuple[PointSpec, Any]]] = {}  # source time (Unix s) -> its changes
        self.by_handle: list[list[PointSpec]] = []  # monitored item client handle -> its points
        self._flush_scheduled = False
        self._skew_logged = False

    async def run(self) -> None:
        client = await self._connect()
        nodes = {nid: client.get_node(nid) for nid in self.by_node}
        subscribed: set[str] = set()
        subscription = None
        if self.opts.subscribe == "auto":
            if self.BULK_DECODE:
                opcua_publish.install(client, self._on_changes)
            subscription, subscribed = await self._subscribe(client, nodes)
        polled = [p for nid, pts in self.by_node.items() if nid not in subscribed for p in pts]
        mode = "subscription" if subscribed and not polled else "subscription+poll" if subscribed else "poll"
        tasks = [asyncio.create_task(self._keepalive(client, subscription))]
        if subscription is not None:
            tasks.append(asyncio.create_task(self._consume(subscription)))
        if polled:
            tasks.append(asyncio.create_task(self._poll(client, nodes, polled)))
        self.health.device_ok(self.spec.name, mode)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
            raise DeviceDown("the connection ended")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _connect(self) -> Client:
        o = self.opts
        client = Client(o.endpoint, timeout=self.spec.timeout_s)
        client.session_timeout = SESSION_TIMEOUT_MS
        if o.username:
            client.set_user(o.username)
        if o.password is not None:
            client.set_password(o.password)
        if o.security != "None":
            assert o.certificate is not None and o.private_key is not None
            uri = application_uri_of(o.certificate)
            if uri:
                client.application_uri = uri
            policy = getattr(security_policies, f"SecurityPolicy{o.security}")
            mode = getattr(ua.MessageSecurityMode, o.mode)
            server_cert = str(o.server_certificate) if o.server_certificate else None
            await asyncio.wait_for(client.set_security(policy, str(o.certificate), str(o.private_key),
                                                       server_certificate=server_cert, mode=mode), self.spec.timeout_s * 3)
        self.client = client
        await asyncio.wait_for(client.connect(), self.spec.timeout_s * 3)
        return client

    async def _subscribe(self, client: Client, nodes: dict[str, Any]) -> tuple[Any, set[str]]:
        interval_ms = self.opts.publishing_interval_ms or 1000.0 * min(p.poll_interval_s for p in self.spec.points)
        try:
            sub = await client.create_subscription(interval_ms, None, queue_maxsize=QUEUE_MAX)
        except (ua.UaStatusCodeError, ua.UaError) as exc:
            log.info("device %s: no subscription (%s); polling", self.spec.name, exc)
            return None, set()
        ids = list(nodes)
        ok: set[str] = set()
        bad: list[tuple[PointSpec, str]] = []
        self.by_handle = [self.by_node[nid] for nid in ids]
        for i in range(0, len(ids), MAX_ITEMS_PER_CALL):
            chunk = ids[i: i + MAX_ITEMS_PER_CALL]
            try:
                handles = await sub.create_monitored_items([self._item_request(nodes[n], i + j) for j, n in enumerate(chunk)])
            except (ua.UaStatusCodeError, ua.UaError) as exc:
                log.info("device %s: monitored items refused (%s); polling them", self.spec.name, exc)
                continue
            for nid, handle in zip(chunk, handles, strict=True):
                if isinstance(handle, ua.StatusCode):
                    if handle.value in (ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid,
                                        ua.StatusCodes.BadAttributeIdInvalid):
                        bad += [(p, handle.name) for p in self.by_node[nid]]
                        ok.add(nid)  # nothing to poll: the node is not there
                    continue
                ok.add(nid)
        self.sink.bad(self.spec.name, bad, time.time())
        return sub, ok

    def _item_request(self, node: Any, handle: int) -> ua.MonitoredItemCreateRequest:
        """A monitored item whose client handle is the index of its points in ``by_handle``:
        sampled as fast as the server samples, with a queue so that every change between two
        publishes is delivered, not just the latest."""
        params = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=0, QueueSize=self.opts.queue_size, DiscardOldest=True)
        return ua.MonitoredItemCreateRequest(ItemToMonitor=ua.ReadValueId(NodeId=node.nodeid, AttributeId=ua.AttributeIds.Value),
                                             MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params)

    def _on_changes(self, changes: list[opcua_publish.Change]) -> None:
        """The changes of one DataChangeNotification, decoded in bulk (see opcua_publish)."""
        source_ts = self.opts.timestamps == "source"
        by_handle = self.by_handle
        n_handles = len(by_handle)
        pending_ts = self._pending_ts
        pending = self._pending
        epoch, per_s = opcua_publish.FILETIME_UNIX_EPOCH, opcua_publish.TICKS_PER_S
        for handle, vtype, value, status, source, server in changes:
            if handle >= n_handles:
                continue
            points = by_handle[handle]
            if status & 0xC0000000:  # not Good (Uncertain or Bad)
                name = ua.StatusCode(status).name
                self._pending_bad += [(p, name) for p in points]
                continue
            if vtype == opcua_publish.FLOAT_TYPE:
                value = float32_value(value)
            elif vtype == opcua_publish.LOCALIZED_TEXT_TYPE:
                value = value.Text
            stamp = (source or server) if source_ts else 0
            target = pending if not stamp else pending_ts.get((stamp - epoch) / per_s)
            if target is None:
                target = pending_ts[(stamp - epoch) / per_s] = []
            for p in points:
                target.append((p, value))
        self._schedule_flush()

    async def _consume(self, sub: Any) -> None:
        """Changes asyncua decoded itself (when the bulk decoder is not in use), one event each."""
        source_ts = self.opts.timestamps == "source"
        by_handle = self.by_handle
        async for event in sub:
            data = getattr(event, "data", None)
            if data is None:
                continue  # a status change: the keep-alive task watches the connection
            item = data.monitored_item
            if not 0 <= item.ClientHandle < len(by_handle):
                continue
            points = by_handle[item.ClientHandle]
            dv = item.Value
            problem = status_problem(dv)
            if problem is not None:
                self._pending_bad += [(p, problem) for p in points]
            else:
                value = to_number(dv)
                stamp = (dv.SourceTimestamp or dv.ServerTimestamp) if source_ts else None
                if stamp is not None:
                    self._pending_ts.setdefault(stamp.timestamp(), []).extend((p, value) for p in points)
                else:
                    self._pending += [(p, value) for p in points]
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Runs once what this publish response brought has been handed over.
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        name = self.spec.name
        now = time.time()
        if self._pending_ts:
            groups, self._pending_ts = self._pending_ts, {}
            for ts, values in sorted(groups.items()):
                if abs(ts - now) > MAX_CLOCK_SKEW_S:
                    if not self._skew_logged:
                        self._skew_logged = True
                        log.warning("device %s: its clock is %+.0f s off this gateway's; using the time values arrive",
                                    name, ts - now)
                    self._pending += values
                    continue
                self.sink.values(name, ts, values)
        if self._pending:
            pending, self._pending = self._pending, []
            self.sink.values(name, now, pending)
        if self._pending_bad:
            bad, self._pending_bad = self._pending_bad, []
            self.sink.bad(name, bad, now)
        self.health.device_ok(name)

    async def _poll(self, client: Client, nodes: dict[str, Any], points: list[PointSpec]) -> None:
        groups: dict[float, list[str]] = {}
        for p in points:
            ids = groups.setdefault(p.poll_interval_s, [])
            if p.address.node_id not in ids:  # type: ignore[union-attr]
                ids.append(p.address.node_id)  # type: ignore[union-attr]
        due = {interval: time.monotonic() for interval in groups}
        while True:
            interval = min(due, key=due.__getitem__)
            delay = due[interval] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            ts = time.time()
            raw: list[tuple[PointSpec, Any]] = []
            bad: list[tuple[PointSpec, str]] = []
            ids = groups[interval]
            for i in range(0, len(ids), READ_CHUNK):
                chunk = ids[i: i + READ_CHUNK]
                values = await asyncio.wait_for(client.read_attributes([nodes[n] for n in chunk]), self.spec.timeout_s)
                for nid, dv in zip(chunk, values, strict=True):
                    problem = status_problem(dv)
                    if problem is not None:
                        bad += [(p, problem) for p in self.by_node[nid]]
                    else:
                        value = to_number(dv)
                        raw += [(p, value) for p in self.by_node[nid]]
            if raw or not bad:
                self.sink.values(self.spec.name, ts, raw)
            self.sink.bad(self.spec.name, bad, ts)
            self.health.device_ok(self.spec.name)
            due[interval] = next_slot(due[interval], interval, time.monotonic())

    async def _keepalive(self, client: Client, subscription: Any) -> None:
        node = client.get_node(SERVER_CURRENT_TIME)
        period = max(KEEPALIVE_S, self.spec.timeout_s)
        while True:
            await asyncio.sleep(period)
            try:
                await asyncio.wait_for(node.read_value(), self.spec.timeout_s)
            except TimeoutError:
                raise DeviceDown(f"no answer within {self.spec.timeout_s:g} s") from None
            except (ConnectionError, OSError, ua.UaError) as exc:
                raise DeviceDown(f"connection lost: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), 2.0)
            except Exception:  # noqa: BLE001 - the server may already be gone; drop the socket
                try:
                    client.disconnect_socket()
                except Exception:  # noqa: BLE001
                    log.debug("device %s: socket already closed", self.spec.name)
