"""The REST API's exports: telemetry (CSV and Parquet, streamed), alerts and audit (CSV)."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from api.params import MAX_ID, RangeParams, parse
from api.streaming import spreadsheet_safe, streamed_file
from api.telemetry import csv_chunks, queryset_csv
from api.telemetry_parquet import CONTENT_TYPE, parquet_chunks
from api.views import visible_assets
from edge_node.models import AuditEvent
from twins.models import Alert
from web.roles import ADMIN, visible_sites


class ExportParams(RangeParams):
    asset = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    site = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    def validate(self, data):
        if data.get("asset") is not None and data.get("site") is not None:
            raise ValidationError({"site": ["Give an asset or a site, not both."]})
        return super().validate(data)


def _export_assets(request, p: dict) -> list[int]:
    """The visible assets an export asked for (an asset, or a site's); 400 naming the field otherwise."""
    assets = visible_assets(request.user)
    if p.get("asset") is not None:
        ids = list(assets.filter(id=p["asset"]).values_list("id", flat=True))
    elif p.get("site") is not None:
        ids = list(assets.filter(site_id=p["site"]).values_list("id", flat=True))
    else:
        raise ValidationError({"asset": ["Give an asset or a site."]})
    if not ids:
        raise ValidationError({"asset" if p.get("asset") is not None else "site": ["Not found among what you may see."]})
    return ids


def _export_name(p: dict, suffix: str) -> str:
    return f"telemetry-{p['start']:%Y%m%dT%H%M}-{p['end']:%Y%m%dT%H%M}.{suffix}"


class TelemetryExport(APIView):
    """CSV of an asset's or a site's telemetry in a time range, streamed (constant memory)."""

    @extend_schema(parameters=[ExportParams], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        p = parse(ExportParams, request)
        ids = _export_assets(request, p)
        return streamed_file(request, "text/csv; charset=utf-8", csv_chunks(ids, p["start"], p["end"]), _export_name(p, "csv"))


class TelemetryParquetExport(APIView):
    """Parquet of an asset's or a site's telemetry in a time range: columns time (timestamp, µs,
    UTC), asset, metric (keys) and value (float64), ordered by time; streamed a row group of
    65,536 readings at a time (bounded memory)."""

    @extend_schema(parameters=[ExportParams], responses={(200, CONTENT_TYPE): OpenApiTypes.BINARY})
    def get(self, request):
        p = parse(ExportParams, request)
        ids = _export_assets(request, p)
        return streamed_file(request, CONTENT_TYPE, parquet_chunks(ids, p["start"], p["end"]), _export_name(p, "parquet"))


class AlertExport(APIView):
    @extend_schema(parameters=[RangeParams], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        p = parse(RangeParams, request)
        qs = Alert.objects.filter(site__in=visible_sites(request.user), opened_at__gte=p["start"], opened_at__lt=p["end"]).order_by("opened_at")
        rows = qs.values_list("id", "site__key", "asset__key", "metric__key", "severity", "state", "title", "value", "opened_at", "cleared_at",
                              "acknowledged_by__username", "acknowledged_at", "ack_comment").iterator(chunk_size=2000)
        header = ["id", "site", "asset", "metric", "severity", "state", "title", "value", "opened_at", "cleared_at", "acknowledged_by", "acknowledged_at", "ack_comment"]
        return streamed_file(request, "text/csv; charset=utf-8", queryset_csv(header, (spreadsheet_safe(r) for r in rows)), "alerts.csv")


class AuditExport(APIView):
    read_roles = (ADMIN,)

    @extend_schema(parameters=[RangeParams], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        p = parse(RangeParams, request)
        rows = ((*r[:6], json.dumps(r[6], sort_keys=True), r[7]) for r in AuditEvent.objects.filter(at__gte=p["start"], at__lt=p["end"]).order_by("at").values_list(
            "id", "at", "actor", "action", "target", "ok", "detail", "remote_addr").iterator(chunk_size=2000))  # detail as JSON, not Python's repr
        return streamed_file(request, "text/csv; charset=utf-8", queryset_csv(["id", "at", "actor", "action", "target", "ok", "detail", "remote_addr"], (spreadsheet_safe(r) for r in rows)), "audit.csv")
