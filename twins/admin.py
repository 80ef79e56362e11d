from __future__ import annotations

from django.contrib import admin

from twins.models import Alert, AlertRule, Asset, AssetType, CombinedRule, Metric, RuleCondition, Site


class MetricInline(admin.TabularInline):
    model = Metric
    extra = 0


@admin.register(AssetType)
class AssetTypeAdmin(admin.ModelAdmin):
    list_display = ("key", "name")
    inlines = [MetricInline]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "location")
    filter_horizontal = ("members",)


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "site", "asset_type", "node", "last_seen")
    list_filter = ("site", "asset_type")
    search_fields = ("key", "name")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("opened_at", "severity", "state", "title", "asset", "site")
    list_filter = ("state", "severity", "source", "site")
    list_select_related = ("asset", "site")
    readonly_fields = ("acknowledged_by", "acknowledged_at", "escalated_at", "cleared_at")


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("metric", "warning_above", "critical_above", "warning_below", "critical_below", "hysteresis", "min_duration_s", "enabled")
    list_filter = ("enabled", "metric__asset_type")
    list_select_related = ("metric__asset_type",)


class RuleConditionInline(admin.TabularInline):
    model = RuleCondition
    extra = 2


@admin.register(CombinedRule)
class CombinedRuleAdmin(admin.ModelAdmin):
    """Combined rules (AND/OR, rate of change); admins edit them on /rules/ too."""

    list_display = ("name", "asset_type", "combine", "severity", "min_duration_s", "enabled")
    inlines = [RuleConditionInline]
