from __future__ import annotations

from django.contrib import admin

from twins.scenarios.models import Scenario, ScenarioChunk, ScenarioRun


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ("name", "site", "created_by", "created_at")
    list_filter = ("site",)
    search_fields = ("name",)
    filter_horizontal = ("assets",)


@admin.register(ScenarioRun)
class ScenarioRunAdmin(admin.ModelAdmin):
    list_display = ("id", "scenario", "state", "total", "check_total", "created_at", "started_at", "finished_at")
    list_filter = ("state",)
    readonly_fields = ("specs", "calibration", "results", "comparison", "check_plans")


@admin.register(ScenarioChunk)
class ScenarioChunkAdmin(admin.ModelAdmin):
    list_display = ("run", "phase", "variant", "index", "start", "stop", "done", "seconds", "finished_at")
    exclude = ("data",)  # up to megabytes of encoded arrays
