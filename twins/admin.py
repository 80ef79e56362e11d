from __future__ import annotations

from django.contrib import admin

from twins.models import Alert, Asset, AssetType, Metric, Site


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
