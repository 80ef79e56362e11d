"""Sites, asset types with their metrics, assets and alerts."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
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


class AlertRule(models.Model):
    """Thresholds for one metric of one asset type (the metric belongs to exactly one type).

    A reading beyond a threshold for ``min_duration_s`` opens an alert (or escalates the open
    one); it clears once the value is back inside the threshold by ``hysteresis`` for
    ``min_duration_s``. So a signal that wobbles around a threshold raises one alert.
    """

    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="alert_rules")
    warning_above = models.FloatField(null=True, blank=True)
    critical_above = models.FloatField(null=True, blank=True)
    warning_below = models.FloatField(null=True, blank=True)
    critical_below = models.FloatField(null=True, blank=True)
    hysteresis = models.FloatField(default=0.0, help_text="In the metric's unit: how far back inside a threshold a value must be to count as normal.")
    min_duration_s = models.FloatField(default=10.0, help_text="Seconds a condition must hold before an alert opens, escalates or clears.")
    escalate_after_s = models.FloatField(null=True, blank=True, help_text="A warning that persists this many seconds becomes critical (empty: never).")
    deescalate_after_s = models.FloatField(null=True, blank=True, help_text="A critical alert back at warning for this many seconds is lowered to warning (empty: it stays critical until it clears).")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["metric__asset_type__name", "metric__key"]
        constraints = [
            # Each with the sentence a user reads when a form runs into it (never the constraint's name).
            models.UniqueConstraint(fields=["metric"], name="alert_rule_one_per_metric", violation_error_message="This metric has a rule already: edit that one."),
            models.CheckConstraint(
                condition=models.Q(hysteresis__gte=0), name="alert_rule_hysteresis_not_negative",
                violation_error_message="The hysteresis cannot be negative: it is a distance back inside the threshold.",
            ),
            models.CheckConstraint(
                condition=models.Q(min_duration_s__gte=0), name="alert_rule_duration_not_negative",
                violation_error_message="The minimum duration cannot be negative.",
            ),
            models.CheckConstraint(
                condition=models.Q(warning_above__isnull=True) | models.Q(critical_above__isnull=True) | models.Q(warning_above__lte=models.F("critical_above")),
                name="alert_rule_warning_above_not_past_critical",
                violation_error_message="The warning threshold must not be above the critical one.",
            ),
            models.CheckConstraint(
                condition=models.Q(warning_below__isnull=True) | models.Q(critical_below__isnull=True) | models.Q(warning_below__gte=models.F("critical_below")),
                name="alert_rule_warning_below_not_past_critical",
                violation_error_message="The warning threshold must not be below the critical one.",
            ),
        ]

    def __str__(self) -> str:
        return f"rule for {self.metric}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        thresholds = (self.warning_above, self.critical_above, self.warning_below, self.critical_below)
        if all(t is None for t in thresholds):
            raise ValidationError("Set at least one threshold.")
        if self.warning_above is not None and self.critical_above is not None and self.warning_above > self.critical_above:
            raise ValidationError({"warning_above": "The warning threshold must not be above the critical one."})
        if self.warning_below is not None and self.critical_below is not None and self.warning_below < self.critical_below:
            raise ValidationError({"warning_below": "The warning threshold must not be below the critical one."})
        lows = [t for t in (self.warning_below, self.critical_below) if t is not None]
        highs = [t for t in (self.warning_above, self.critical_above) if t is not None]
        if lows and highs and max(lows) + (self.hysteresis or 0) >= min(highs) - (self.hysteresis or 0):
            raise ValidationError("The 'below' thresholds must lie under the 'above' ones, with room for the hysteresis.")

    @property
    def asset_type(self) -> AssetType:
        return self.metric.asset_type


class CombinedRule(models.Model):
    """Conditions on several metrics of one asset type combined with AND or OR (e.g. winding
    temperature high OR vibration RMS high), each on the value or its rate of change; the alert
    opens at ``severity`` once the combination held for ``min_duration_s``."""

    class Combine(models.TextChoices):
        AND = "and", "all conditions (AND)"
        OR = "or", "any condition (OR)"

    asset_type = models.ForeignKey(AssetType, on_delete=models.CASCADE, related_name="combined_rules")
    name = models.CharField(max_length=200)
    combine = models.CharField(max_length=3, choices=Combine.choices, default=Combine.OR)
    severity = models.CharField(max_length=16, choices=[("warning", "warning"), ("critical", "critical")], default="warning")
    min_duration_s = models.FloatField(default=10.0, validators=[MinValueValidator(0.0)])
    escalate_after_s = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0)], help_text="Warning rules: critical after this many seconds.")
    deescalate_after_s = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0)])
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset_type__name", "name"]

    def __str__(self) -> str:
        return self.name


class RuleCondition(models.Model):
    class Measure(models.TextChoices):
        VALUE = "value", "value"
        RATE = "rate", "rate of change per minute"

    rule = models.ForeignKey(CombinedRule, on_delete=models.CASCADE, related_name="conditions")
    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="+")
    measure = models.CharField(max_length=8, choices=Measure.choices, default=Measure.VALUE)
    op = models.CharField(max_length=8, choices=[("above", "above"), ("below", "below")], default="above")
    threshold = models.FloatField()
    hysteresis = models.FloatField(default=0.0, validators=[MinValueValidator(0.0)])

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.rule_id and self.metric_id and self.metric.asset_type_id != self.rule.asset_type_id:
            raise ValidationError({"metric": "The metric must belong to the rule's asset type."})

    def __str__(self) -> str:
        return f"{self.metric.key} {self.measure} {self.op} {self.threshold:g}"


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
    rule = models.ForeignKey(AlertRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts")
    combined_rule = models.ForeignKey(CombinedRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts")
    kind = models.CharField(max_length=32, blank=True, help_text="'threshold' for rule alerts; the edge event's kind for edge alerts.")
    occurrences = models.PositiveIntegerField(default=1, help_text="Edge events folded into this alert.")
    escalated_at = models.DateTimeField(null=True, blank=True)
    reopened_at = models.DateTimeField(null=True, blank=True, help_text="When it last came back after clearing (within ALERT_REOPEN_WINDOW_S).")
    reopen_count = models.PositiveIntegerField(default=0, help_text="How often it cleared and came back within the window.")

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["state", "-opened_at"]), models.Index(fields=["asset", "state"])]
        constraints = [
            # One active alert per condition, even with several ingest workers racing.
            models.UniqueConstraint(
                fields=["asset", "metric"], condition=models.Q(source="rule") & ~models.Q(state="cleared"), name="alert_one_active_per_rule_metric",
            ),
            models.UniqueConstraint(
                fields=["asset", "kind"], condition=models.Q(source="edge") & ~models.Q(state="cleared"), name="alert_one_active_per_edge_kind",
            ),
            models.UniqueConstraint(
                fields=["asset", "combined_rule"], condition=models.Q(combined_rule__isnull=False) & ~models.Q(state="cleared"),
                name="alert_one_active_per_combined_rule",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.severity}: {self.title}"


class RulModel(models.Model):
    """A trained remaining-useful-life model (an ONNX artifact directory with meta.json)."""

    version = models.CharField(max_length=64, unique=True)
    asset_type_key = models.CharField(max_length=64, db_index=True, help_text="The asset type it serves (e.g. 'turbofan', 'induction_motor').")
    artifact_path = models.CharField(max_length=500, help_text="Directory holding model.onnx and meta.json.")
    rul_unit = models.CharField(max_length=16, default="cycles", help_text="'cycles' or 'hours'.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Validation on held-out units: rmse, phm_score, coverage80, engines.")
    meta = models.JSONField(default=dict, blank=True)
    trained_on = models.CharField(max_length=300, blank=True)
    is_active = models.BooleanField(default=False, help_text="The version twins of this asset type use.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.asset_type_key} {self.version}"


class TwinState(models.Model):
    """The digital twin's current view of one asset."""

    asset = models.OneToOneField(Asset, on_delete=models.CASCADE, primary_key=True, related_name="twin")
    computed_at = models.DateTimeField()
    model_version = models.CharField(max_length=64, blank=True)
    health = models.FloatField(help_text="Health index, 1 = as new, 0 = failed.")
    rul_median = models.FloatField(null=True, blank=True)
    rul_low = models.FloatField(null=True, blank=True, help_text="Lower bound of the 80% interval.")
    rul_high = models.FloatField(null=True, blank=True, help_text="Upper bound of the 80% interval.")
    rul_unit = models.CharField(max_length=16, default="hours", help_text="'cycles' or 'hours' (operating).")
    rul_days_median = models.FloatField(null=True, blank=True, help_text="RUL in calendar days at the current operating profile.")
    rul_days_low = models.FloatField(null=True, blank=True)
    rul_days_high = models.FloatField(null=True, blank=True)
    degradation_rate = models.FloatField(null=True, blank=True, help_text="Health lost per operating hour.")
    latest = models.JSONField(default=dict, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Validation figures and assumptions behind the estimate.")

    def __str__(self) -> str:
        return f"twin of {self.asset}"


class TwinSnapshot(models.Model):
    """History of a twin's health and RUL, for the chart on the asset page."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="twin_history")
    computed_at = models.DateTimeField()
    health = models.FloatField()
    rul_median = models.FloatField(null=True)
    rul_low = models.FloatField(null=True)
    rul_high = models.FloatField(null=True)

    class Meta:
        ordering = ["computed_at"]
        indexes = [models.Index(fields=["asset", "computed_at"])]


class RuleStateFields(models.Model):
    """The fields of a rule's ConditionState (twins/rules.py), stored so every ingest worker
    continues the same state: the level in force and since when (reading time), the pending
    rise or fall with its start, the open alert."""

    level = models.SmallIntegerField(default=0)
    peak = models.SmallIntegerField(default=0)
    alert = models.ForeignKey(Alert, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    up_since = models.FloatField(null=True)
    up_level = models.SmallIntegerField(default=0)
    down_since = models.FloatField(null=True)
    down_level = models.SmallIntegerField(default=0)
    last_ts = models.FloatField(null=True)
    level_since = models.FloatField(null=True)
    lowered = models.BooleanField(default=False)

    class Meta:
        abstract = True


class AlertCondition(RuleStateFields):
    """The rule state of one (asset, metric): the one copy every ingest worker reads and writes.

    It lives in the database, locked and updated in the same transaction as the alert rows it
    drives (twins/alert_state.py), so hysteresis and minimum duration see the whole signal no
    matter which worker of a shared subscription received which reading, and a restarted
    worker continues where the stream was, not where it was."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="+")
    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["asset", "metric"], name="alert_condition_unique")]


class CombinedCondition(RuleStateFields):
    """The state of one (asset, combined rule), kept like AlertCondition: the combination's
    ConditionState plus ``signals``, what the conditions remember between readings (each
    metric's last reading and rate of change, each condition's truth for its hysteresis)."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(CombinedRule, on_delete=models.CASCADE, related_name="+")
    signals = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["asset", "rule"], name="combined_condition_unique")]


class AlertCursor(models.Model):
    """The last telemetry ``seq`` of a node whose readings went through the alert rules.

    Readings are evaluated in the order the node sent them (seq order), whichever worker
    stored them: a worker that stored seq 12 while seq 11 is still with another worker leaves
    12 for whoever completes the run. A gap that is neither filled nor dead-lettered within
    ALERT_SEQ_GAP_WAIT_S is skipped (the node lost it, or the worker holding it is gone)."""

    node_key = models.CharField(max_length=64, unique=True)
    seq = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)
