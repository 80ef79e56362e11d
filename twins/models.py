"""Sites, asset types with their metrics, assets and alerts."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

key_validator = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", "Letters, digits, '_', '.', '-' (max 64), starting with a letter or digit.")


class Site(models.Model):
    key = models.CharField(max_length=64, unique=True, validators=[key_validator])
    name = models.CharField(max_length=200)
    location = models.CharField(max_length=200, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="sites", help_text="Users who see this site (admins see every site).")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AssetType(models.Model):
    key = models.CharField(max_length=64, unique=True, validators=[key_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Metric(models.Model):
    """A measured quantity of an asset type, with the range a valid reading must fall in."""

    asset_type = models.ForeignKey(AssetType, on_delete=models.CASCADE, related_name="metrics")
    key = models.CharField(max_length=64, validators=[key_validator])
    label = models.CharField(max_length=200, blank=True)
    unit = models.CharField(max_length=32, blank=True)
    min_value = models.FloatField()
    max_value = models.FloatField()

    class Meta:
        ordering = ["asset_type", "id"]
        constraints = [
            models.UniqueConstraint(fields=["asset_type", "key"], name="metric_unique_key_per_type"),
            models.CheckConstraint(condition=models.Q(min_value__lt=models.F("max_value")), name="metric_min_below_max"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_type.key}.{self.key} [{self.unit}]"


class Asset(models.Model):
    key = models.CharField(max_length=64, unique=True, validators=[key_validator], help_text="The id edge nodes use in MQTT readings.")
    name = models.CharField(max_length=200)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="assets")
    asset_type = models.ForeignKey(AssetType, on_delete=models.PROTECT, related_name="assets")
    node = models.ForeignKey("edge_node.EdgeNode", on_delete=models.SET_NULL, null=True, blank=True, related_name="assets", help_text="The edge node that serves this asset.")
    hours_per_day = models.FloatField(default=24.0, help_text="Current operating profile: running hours per day.")
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["site", "name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    class State(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        CLEARED = "cleared"

    class Source(models.TextChoices):
        RULE = "rule"
        EDGE = "edge"
        SYSTEM = "system"

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="alerts")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts")
    metric = models.ForeignKey(Metric, on_delete=models.SET_NULL, null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.RULE)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True)
    value = models.FloatField(null=True, blank=True)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    cleared_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    ack_comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["state", "-opened_at"]), models.Index(fields=["asset", "state"])]

    def __str__(self) -> str:
        return f"{self.severity}: {self.title}"
