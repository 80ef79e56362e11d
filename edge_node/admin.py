from __future__ import annotations

from django.contrib import admin

from edge_node.models import EdgeNode


@admin.register(EdgeNode)
class EdgeNodeAdmin(admin.ModelAdmin):
    list_display = ("node_id", "site", "online", "last_seen", "revoked_at")
    list_filter = ("site", "online")
    search_fields = ("node_id", "name", "tags")
