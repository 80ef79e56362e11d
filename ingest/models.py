"""Ingest bookkeeping: dead letters, per-node stream counters, dedupe keys, latest values.

The telemetry table itself is not a Django-managed table: its shape differs per database
(TimescaleDB hypertable, PostgreSQL range partitions, plain SQLite table), so
ingest/timeseries.py creates and queries it. ``Telemetry`` below only maps it for the ORM.
"""

from __future__ import annotations

from django.db import models


class Telemetry(models.Model):
    """Read-mostly ORM view of the telemetry table (PostgreSQL). Writes go through COPY."""

    time = models.DateTimeField(primary_key=True)  # not unique: lets the ORM insert without RETURNING
    asset_id = models.IntegerField()
    metric_id = models.IntegerField()
    value = models.FloatField()

    class Meta:
        managed = False
        db_table = "ingest_telemetry"


class LatestValue(models.Model):
    asset = models.ForeignKey("twins.Asset", on_delete=models.CASCADE, related_name="latest_values")
    metric = models.ForeignKey("twins.Metric", on_delete=models.CASCADE, related_name="+")
    value = models.FloatField()
    ts = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["asset", "metric"], name="latest_value_unique")]


class ReceivedMessage(models.Model):
    """(node, channel, seq) of every stored message: redelivered duplicates hit the unique key.

    ``digest`` (64 bits of BLAKE2b over the raw payload) tells a redelivery (same bytes:
    dropped as a duplicate) from a reused seq (different bytes: dead-lettered as seq_reused)."""

    node_key = models.CharField(max_length=64)
    channel = models.CharField(max_length=1)  # "t" telemetry, "e" events
    seq = models.BigIntegerField()
    received_at = models.DateTimeField()
    digest = models.BigIntegerField(null=True, blank=True)
    # The readings of a telemetry message that alert rules watch, as [[epoch, asset, metric,
    # value], ...]: stored in the batch's transaction so the alert rules evaluate them in seq
    # order whichever worker stored the message (twins/alert_state.py). Null: none to watch.
    alert_rows = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node_key", "channel", "seq"], name="received_message_unique")]
        indexes = [models.Index(fields=["received_at"])]


class NodeStream(models.Model):
    """Per-node telemetry counters; missing = (max_seq - first_seq + 1) - messages."""

    node_key = models.CharField(max_length=64, unique=True)
    first_seq = models.BigIntegerField(null=True)
    max_seq = models.BigIntegerField(null=True)
    messages = models.BigIntegerField(default=0)
    readings = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    last_at = models.DateTimeField(null=True)

    @property
    def missing(self) -> int:
        if self.first_seq is None or self.max_seq is None:
            return 0
        return max(0, self.max_seq - self.first_seq + 1 - self.messages)

    def __str__(self) -> str:
        return self.node_key


class DeadLetter(models.Model):
    received_at = models.DateTimeField(db_index=True)
    node_key = models.CharField(max_length=64, blank=True, db_index=True)
    topic = models.CharField(max_length=256)
    reason = models.CharField(max_length=64, db_index=True)
    detail = models.TextField(blank=True)
    seq = models.BigIntegerField(null=True, blank=True)
    payload = models.BinaryField(blank=True, help_text="The raw payload, cut to INGEST_DEAD_LETTER_RAW_BYTES.")
    payload_size = models.IntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reason} from {self.node_key or '?'}"


class DeadLetterCount(models.Model):
    node_key = models.CharField(max_length=64)
    reason = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)
    last_at = models.DateTimeField()

    class Meta:
        ordering = ["node_key", "reason"]
        constraints = [models.UniqueConstraint(fields=["node_key", "reason"], name="dead_letter_count_unique")]


class EdgeEvent(models.Model):
    """An event (anomaly, fault) an edge node raised itself, as received."""

    node_key = models.CharField(max_length=64, db_index=True)
    asset = models.ForeignKey("twins.Asset", on_delete=models.CASCADE, null=True, related_name="edge_events")
    ts = models.DateTimeField()
    received_at = models.DateTimeField()
    kind = models.CharField(max_length=32)
    severity = models.CharField(max_length=16, default="warning")
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["asset", "-ts"])]
