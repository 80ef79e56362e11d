from django.contrib import admin

from web.models import ProcessHeartbeat


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("kind", "name", "host", "pid", "started_at", "beat_at")
    list_filter = ("kind", "host")
    readonly_fields = ("kind", "name", "host", "pid", "started_at", "beat_at", "detail")

    def has_add_permission(self, request) -> bool:
        return False
