"""What the API returns (read-only model views) and accepts (strict input serializers)."""

from __future__ import annotations

from rest_framework import serializers

from api.params import MAX_ID, FiniteFloatField, StrictSerializer
from edge_node.models import AuditEvent, EdgeNode
from edge_node.rollouts import const as rollout_const
from edge_node.rollouts.models import Rollout
from twins.models import Alert, Asset, Metric, RulModel, Site, TwinSnapshot, TwinState
from twins.scenarios.models import Scenario, ScenarioRun
from twins.sim import const as sim_const


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "key", "name", "location", "timezone"]


class MetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = Metric
        fields = ["id", "key", "label", "unit", "min_value", "max_value"]


class AssetSerializer(serializers.ModelSerializer):
    site = serializers.IntegerField(source="site_id")
    asset_type = serializers.CharField(source="asset_type.key")
    node = serializers.CharField(source="node.node_id", allow_null=True, default=None)
    metrics = MetricSerializer(source="asset_type.metrics", many=True)

    class Meta:
        model = Asset
        fields = ["id", "key", "name", "site", "asset_type", "node", "hours_per_day", "last_seen", "metrics"]


class AlertSerializer(serializers.ModelSerializer):
    asset_name = serializers.CharField(source="asset.name", default="")
    metric = serializers.CharField(source="metric.key", default="")
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default="")

    class Meta:
        model = Alert
        fields = ["id", "site", "asset", "asset_name", "metric", "source", "kind", "severity", "state", "title", "message", "value",
                  "occurrences", "reopen_count", "opened_at", "escalated_at", "cleared_at", "acknowledged_by", "acknowledged_at", "ack_comment"]


class AcknowledgeInput(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class TwinSerializer(serializers.ModelSerializer):
    class Meta:
        model = TwinState
        fields = ["asset", "computed_at", "model_version", "health", "rul_median", "rul_low", "rul_high", "rul_unit",
                  "rul_days_median", "rul_days_low", "rul_days_high", "degradation_rate", "latest"]


class TwinSnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = TwinSnapshot
        fields = ["computed_at", "health", "rul_median", "rul_low", "rul_high"]


class RulModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = RulModel
        fields = ["id", "version", "asset_type_key", "rul_unit", "metrics", "trained_on", "is_active", "created_at"]


class NodeSerializer(serializers.ModelSerializer):
    site = serializers.IntegerField(source="site_id")

    class Meta:
        model = EdgeNode
        fields = ["id", "node_id", "name", "site", "tags", "online", "last_seen", "status", "status_at", "revoked_at", "enrolled_at"]


class RolloutSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.label")
    proposer = serializers.CharField(source="proposer.username")
    approver = serializers.CharField(source="approver.username", default="")

    class Meta:
        model = Rollout
        fields = ["id", "model", "target_site", "target_tag", "target_nodes", "canary_share", "max_p99_latency_ms", "min_agreement",
                  "max_load_failures", "state", "reason", "proposer", "approver", "created_at", "approved_at", "finished_at"]


class ProposeRolloutInput(StrictSerializer):
    model = serializers.IntegerField(help_text="Model artifact id.", min_value=1, max_value=MAX_ID)
    site = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    tag = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    nodes = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=1000)
    canary_share = serializers.FloatField(required=False, default=0.1, min_value=0.0001, max_value=1.0)
    max_p99_latency_ms = serializers.FloatField(required=False, default=50.0, min_value=0.0, max_value=rollout_const.MAX_P99_GATE_MS)
    min_agreement = serializers.FloatField(required=False, default=0.9, min_value=0.0, max_value=1.0)
    max_load_failures = serializers.IntegerField(required=False, default=0, min_value=0, max_value=rollout_const.MAX_LOAD_FAILURES_GATE)

    def validate_nodes(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("A node is listed twice.")
        return value


class AuditSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor", "action", "target", "ok", "detail", "remote_addr"]


class ScenarioRunSerializer(serializers.ModelSerializer):
    scenario = serializers.IntegerField(source="scenario_id")
    name = serializers.CharField(source="scenario.name")

    class Meta:
        model = ScenarioRun
        fields = ["id", "scenario", "name", "state", "created_at", "started_at", "finished_at", "total", "error"]


class ScenarioRunDetailSerializer(ScenarioRunSerializer):
    class Meta(ScenarioRunSerializer.Meta):
        fields = [*ScenarioRunSerializer.Meta.fields, "results", "comparison"]


class PolicyInput(StrictSerializer):
    """The maintenance policy of a what-if (the planner's form's fields; the engine checks bounds)."""

    name = serializers.ChoiceField(choices=[sim_const.POLICY_RUN_TO_FAILURE, sim_const.POLICY_TIME_BASED,
                                            sim_const.POLICY_CONDITION_BASED, sim_const.POLICY_RUL_BASED])
    interval_hours = FiniteFloatField(required=False, allow_null=True, help_text="time-based: the replacement age (operating hours)")
    health_threshold = FiniteFloatField(required=False, allow_null=True, help_text="condition-based: replace below this health (0-1)")
    lead_time_hours = FiniteFloatField(required=False, allow_null=True, help_text="RUL-based: replace when predicted RUL falls below this")
    inspection_interval_hours = FiniteFloatField(required=False, allow_null=True)
    detection_probability = FiniteFloatField(required=False, allow_null=True)
    off_shift = serializers.BooleanField(required=False)


class ScenarioParamsInput(StrictSerializer):
    """A what-if's changes and settings; each omitted one keeps the form's default."""

    load_factor = FiniteFloatField(required=False)
    speed_factor = FiniteFloatField(required=False)
    hours_per_day = FiniteFloatField(required=False, allow_null=True, help_text="null: the assets' current profile")
    days_per_week = serializers.IntegerField(required=False, min_value=1, max_value=7)
    ambient_delta_c = FiniteFloatField(required=False)
    crew_size = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    spare_stock = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1_000_000, help_text="null: unlimited")
    spare_lead_time_days = FiniteFloatField(required=False)
    horizon_days = serializers.IntegerField(required=False, min_value=1, max_value=sim_const.MAX_HORIZON_DAYS)
    replications = serializers.IntegerField(required=False, min_value=1, max_value=sim_const.MAX_REPLICATIONS)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**32 - 1)
    pm_cost = FiniteFloatField(required=False)
    cm_cost = FiniteFloatField(required=False)
    downtime_cost_per_hour = FiniteFloatField(required=False)
    policy = PolicyInput(required=False)


class ScenarioInput(StrictSerializer):
    name = serializers.CharField(max_length=200)
    site = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    assets = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), min_length=1, max_length=500)
    params = ScenarioParamsInput(required=False)
    compare_baseline = serializers.BooleanField(required=False, default=True)


class ScenarioSerializer(serializers.ModelSerializer):
    class Meta:
        model = Scenario
        fields = ["id", "name", "site", "params", "compare_baseline", "created_at"]
