"""The ingest worker's metrics: its running totals (``IngestWorker.stats``) read at scrape time,
batch latency and confirmation lag from the worker's own timings, its MQTT connection state."""

from __future__ import annotations

from prometheus_client import REGISTRY, Histogram

from web import heartbeats, metrics

BATCH_SECONDS = Histogram("aiot_ingest_batch_seconds", "Time to parse, store and acknowledge one batch",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CONFIRM_LAG = Histogram("aiot_ingest_confirm_lag_seconds", "From a batch's oldest message received to its confirmation sent",
                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

HELP = {
    "messages": "MQTT messages handled", "rows": "Readings stored", "duplicates": "Messages already stored (redelivered)",
    "rejected": "Messages dead-lettered (bad input)", "batches": "Batches committed", "db_retries": "Database retries after an error",
    "alert_failures": "Batches whose alert evaluation failed", "unprocessable": "Messages that could not be processed",
    "store_failed": "Messages whose store failed for good", "batch_splits": "Batches split to isolate a bad message",
    "confirmations": "Confirmation messages sent to nodes", "post_commit_failures": "Failures after the commit (confirm, live)",
}


def register_worker(worker, name: str) -> None:
    """The worker's totals and MQTT connection state on this process's /metrics."""
    REGISTRY.register(metrics.StatsCollector("aiot_ingest", lambda: {f"{k}_total": v for k, v in worker.stats.items()}, {f"{k}_total": h for k, h in HELP.items()}))
    metrics.watch_mqtt(f"ingest-{name}", worker.connected.is_set)


def start_ingest_ops(worker, name: str, metrics_port: int | None):
    """Register the worker's collectors, serve --metrics-port, start the heartbeat."""
    register_worker(worker, name)
    return metrics.start_process_ops(heartbeats.INGEST, name, metrics_port, detail=lambda: dict(worker.stats))
