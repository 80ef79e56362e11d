from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from ingest.models import DeadLetter, DeadLetterCount, EdgeEvent, NodeStream


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("received_at", "node_key", "reason", "short_detail", "seq", "payload_size")
    list_filter = ("reason",)
    search_fields = ("node_key", "detail", "topic")
    readonly_fields = ("received_at", "node_key", "topic", "reason", "detail", "seq", "payload_size", "payload_preview")
    exclude = ("payload",)

    def short_detail(self, obj: DeadLetter) -> str:
        return obj.detail[:120]

    def payload_preview(self, obj: DeadLetter) -> str:
        raw = bytes(obj.payload or b"")
        text = raw.decode("utf-8", errors="replace") if raw[:1] in (b"{", b"[") else raw.hex(" ")
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(DeadLetterCount)
class DeadLetterCountAdmin(admin.ModelAdmin):
    list_display = ("node_key", "reason", "count", "last_at")
    list_filter = ("reason",)
    search_fields = ("node_key",)
    readonly_fields = ("node_key", "reason", "count", "last_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(NodeStream)
class NodeStreamAdmin(admin.ModelAdmin):
    list_display = ("node_key", "messages", "readings", "missing", "duplicates", "rejected", "last_at")
    search_fields = ("node_key",)
    readonly_fields = ("node_key", "first_seq", "max_seq", "messages", "readings", "duplicates", "rejected", "last_at")


@admin.register(EdgeEvent)
class EdgeEventAdmin(admin.ModelAdmin):
    list_display = ("ts", "node_key", "asset", "kind", "severity", "message")
    list_filter = ("kind", "severity")
    search_fields = ("node_key", "message")
