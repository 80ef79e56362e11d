"""Prometheus metrics (prometheus_client): every process exposes its own.

The web process serves ``GET /metrics`` (a Bearer token, METRICS_TOKEN, unless asked from the
host itself); the ingest worker, the rollout listener and Celery workers serve theirs on
``--metrics-port`` bound to 127.0.0.1 (scrape through the host's agent or a tunnel). Where a
process forks (Celery prefork) set PROMETHEUS_MULTIPROC_DIR to an empty folder per worker
host: the children then write their samples there and the exposition merges them.

Counters that live in an object (the ingest worker's stats) are read at scrape time by a
collector, so the hot path stays as it is. Fleet-wide state (rollouts, nodes, twin ages, dead
letters, process heartbeats) comes from the database when the web process is scraped.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

# -- web ---------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter("aiot_http_requests_total", "HTTP requests answered, by view and status class", ["view", "status"])
HTTP_SECONDS = Histogram("aiot_http_request_seconds", "HTTP request duration by view", ["view"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
THROTTLED = Counter("aiot_throttled_requests_total", "Requests refused (429) by a lockout, by scope", ["scope"])
LOCKOUTS = Counter("aiot_lockouts_total", "Lockouts started (audited), by scope", ["scope"])
LIVE_SOCKETS = Gauge("aiot_live_sockets", "Open live WebSocket connections", multiprocess_mode="livesum")
LIVE_FRAMES = Counter("aiot_live_frames_total", "Live update frames sent to browsers")
# -- Celery and twins --------------------------------------------------------------------------
TASK_SECONDS = Histogram("aiot_celery_task_seconds", "Celery task run time", ["task"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300))
TASK_FAILURES = Counter("aiot_celery_task_failures_total", "Celery tasks that raised", ["task"])
TWIN_REFRESH_SECONDS = Histogram("aiot_twin_refresh_seconds", "Duration of one refresh of every twin", buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60))
# -- MQTT --------------------------------------------------------------------------------------
MQTT_CONNECTED = Gauge("aiot_mqtt_connected", "1 while this process's MQTT client is connected", ["client"], multiprocess_mode="max")


def record_request(view: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(view=view, status=f"{status // 100}xx").inc()
    HTTP_SECONDS.labels(view=view).observe(seconds)


class RequestMetricsMiddleware:
    """Counts and times each request under its URL name (never the raw path: bounded labels)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match else "") or "unresolved"
        record_request(view, response.status_code, time.perf_counter() - started)
        return response


# -- collectors read at scrape time ------------------------------------------------------------
class StatsCollector:
    """Exposes a dict of running totals (e.g. the ingest worker's ``stats``) as counters."""

    def __init__(self, prefix: str, stats: Callable[[], dict[str, int]], help_text: dict[str, str]) -> None:
        self.prefix, self.stats, self.help_text = prefix, stats, help_text

    def collect(self):
        for name, value in sorted(self.stats().items()):
            yield CounterMetricFamily(f"{self.prefix}_{name}", self.help_text.get(name, name.replace("_", " ")), value=value)


class FleetCollector:
    """Fleet-wide gauges from the database: rollouts and their nodes by state, edge nodes,
    the oldest twin, dead letters of the last hour by reason, process heartbeats."""

    def collect(self):
        from datetime import timedelta

        from django.db.models import Count, Min
        from django.utils import timezone

        from edge_node.models import EdgeNode
        from edge_node.rollouts.models import Rollout, RolloutNode
        from ingest.models import DeadLetter
        from twins.models import TwinState
        from web.heartbeats import heartbeat_rows

        now = timezone.now()
        rollouts = GaugeMetricFamily("aiot_rollouts", "Rollouts by state", labels=["state"])
        for row in Rollout.objects.values("state").annotate(n=Count("id")):
            rollouts.add_metric([row["state"]], row["n"])
        yield rollouts
        rnodes = GaugeMetricFamily("aiot_rollout_nodes", "Nodes of running rollouts by state", labels=["state"])
        for row in RolloutNode.objects.filter(rollout__state__in=("approved", "canary", "promoting")).values("state").annotate(n=Count("id")):
            rnodes.add_metric([row["state"]], row["n"])
        yield rnodes
        nodes = GaugeMetricFamily("aiot_edge_nodes", "Edge nodes by state", labels=["state"])
        live = EdgeNode.objects.filter(revoked_at__isnull=True)
        nodes.add_metric(["online"], live.filter(online=True).count())
        nodes.add_metric(["offline"], live.filter(online=False).count())
        nodes.add_metric(["revoked"], EdgeNode.objects.filter(revoked_at__isnull=False).count())
        yield nodes
        oldest = TwinState.objects.aggregate(at=Min("computed_at"))["at"]
        yield GaugeMetricFamily("aiot_twin_oldest_age_seconds", "Age of the oldest twin state", value=(now - oldest).total_seconds() if oldest else 0.0)
        dead = GaugeMetricFamily("aiot_dead_letters_last_hour", "Dead letters received in the last hour, by reason", labels=["reason"])
        for row in DeadLetter.objects.filter(received_at__gte=now - timedelta(hours=1)).values("reason").annotate(n=Count("id")):
            dead.add_metric([row["reason"]], row["n"])
        yield dead
        up = GaugeMetricFamily("aiot_process_up", "1 when the process's heartbeat is fresh", labels=["kind", "name", "host"])
        age = GaugeMetricFamily("aiot_process_heartbeat_age_seconds", "Seconds since the process's last heartbeat", labels=["kind", "name", "host"])
        for hb in heartbeat_rows(now):
            up.add_metric([hb.kind, hb.name, hb.host], 1.0 if hb.alive else 0.0)
            age.add_metric([hb.kind, hb.name, hb.host], hb.age_s)
        yield up
        yield age


_fleet_registered = False


def register_fleet_collector() -> None:
    global _fleet_registered
    if not _fleet_registered:
        REGISTRY.register(FleetCollector())
        _fleet_registered = True


def exposition() -> bytes:
    """This process's metrics in the text format (merged over forked children in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def serve_metrics_port(port: int | None, *, addr: str = "127.0.0.1") -> None:
    """Serve /metrics of a worker process on ``addr:port`` (nothing when port is None/0)."""
    if not port:
        return
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)
    log.info("metrics on http://%s:%d/metrics", addr, port)


def watch_mqtt(client_name: str, connected: Callable[[], bool]) -> None:
    """aiot_mqtt_connected{client=...} reads ``connected()`` at scrape time."""
    MQTT_CONNECTED.labels(client=client_name).set_function(lambda: 1.0 if connected() else 0.0)


def start_process_ops(kind: str, name: str, metrics_port: int | None = None, detail: Callable[[], dict] | None = None):
    """What every long-running process does at start: its metrics port and its heartbeat."""
    from web.heartbeats import Heartbeat

    serve_metrics_port(metrics_port)
    return Heartbeat(kind, name, detail=detail).start()


# -- the web view's guard ------------------------------------------------------------------------
def _loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def may_scrape(remote_addr: str, authorization: str, token: str) -> bool:
    """A Bearer METRICS_TOKEN, or (no token configured) a request from the host itself."""
    scheme, _, given = authorization.partition(" ")
    if token:
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    return _loopback(remote_addr)


__all__ = ["CONTENT_TYPE_LATEST", "exposition", "may_scrape", "register_fleet_collector", "serve_metrics_port"]
