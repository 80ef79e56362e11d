"""The REST API's views: thin, over the same service functions and visibility as the UI."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from api.params import ReadingsParams, SeriesParams, parse, parse_id
from api.streaming import spreadsheet_safe, streamed_file
from api.telemetry import decode_cursor, queryset_csv, readings_page
from edge_node.models import AuditEvent, EdgeNode
from edge_node.rollouts.actions import RolloutError, UnknownNodesError, approve_rollout, propose_rollout
from edge_node.rollouts.models import ModelArtifact, Rollout
from ingest.timeseries.queries import bucketed_metrics, latest_values
from twins.alerting import AlertError, acknowledge_alert
from twins.models import Alert, Asset, Metric, RulModel, Site, TwinSnapshot, TwinState
from twins.scenarios.models import ScenarioRun
from web.roles import ADMIN, FACILITY_MANAGER, PLANNER, visible_sites

PLANNING = (PLANNER, ADMIN)


class Pages(CursorPagination):
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = "-id"

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:  # DRF's answer to a cursor it did not write: a 400 naming the field
            raise ValidationError({"cursor": ["Not a cursor of this API: pass next as it came."]}) from None


def _strict_query(request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed - {"cursor", "limit", "format"})
    if unknown:
        raise ValidationError({k: ["Unknown parameter."] for k in unknown})
    limit = request.query_params.get("limit")
    if limit is not None and not 1 <= (parse_id(limit) or 0) <= Pages.max_page_size:
        raise ValidationError({"limit": [f"A whole number from 1 to {Pages.max_page_size}."]})


def _int_param(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    number = parse_id(value)
    if number is None:
        raise ValidationError({name: ["A whole number (an id)."]})
    return number


class StrictDetail(generics.RetrieveAPIView):
    """One object: a query parameter is refused by name like on the lists (none are known)."""

    def retrieve(self, request, *args, **kwargs):
        _strict_query(request, set())
        return super().retrieve(request, *args, **kwargs)


class FilteredList(generics.ListAPIView):
    pagination_class = Pages
    filters: tuple[str, ...] = ()

    def list(self, request, *args, **kwargs):
        _strict_query(request, set(self.filters))
        return super().list(request, *args, **kwargs)


# --- sites, assets, latest values, telemetry ---------------------------------------------


class SiteList(FilteredList):
    serializer_class = s.SiteSerializer

    def get_queryset(self):
        return visible_sites(self.request.user).order_by("id")


def visible_assets(user):
    return Asset.objects.filter(site__in=visible_sites(user)).select_related("site", "asset_type", "node").prefetch_related("asset_type__metrics")


@extend_schema(parameters=[OpenApiParameter("site", int, description="Only this site's assets.")])
class AssetList(FilteredList):
    serializer_class = s.AssetSerializer
    filters = ("site",)

    def get_queryset(self):
        qs = visible_assets(self.request.user).order_by("id")
        site = _int_param(self.request, "site")
        return qs.filter(site_id=site) if site is not None else qs


class AssetDetail(StrictDetail):
    serializer_class = s.AssetSerializer

    def get_queryset(self):
        return visible_assets(self.request.user)


class LatestValues(APIView):
    @extend_schema(responses=inline_serializer("LatestValues", {"asset": serializers.IntegerField(), "values": serializers.DictField()}))
    def get(self, request, pk: int):
        _strict_query(request, set())
        asset = get_object_or_404(visible_assets(request.user), id=pk)
        values = latest_values([asset.id]).get(asset.id, {})
        return Response({"asset": asset.id, "values": {k: {"value": v, "ts": ts.isoformat()} for k, (v, ts) in values.items()}})


def _visible_metrics(user, asset_id: int) -> dict[str, int]:
    """{metric key: id} of a visible asset, in one query (the series endpoint is the hot path);
    404 when the asset is not there for this user."""
    metrics = dict(Metric.objects.filter(asset_type__assets__id=asset_id, asset_type__assets__site__in=visible_sites(user))
                   .values_list("key", "id"))
    if not metrics:
        raise Http404("No asset with this id among the sites you may see.")
    return metrics


def _pick_metrics(metrics: dict[str, int], keys: list[str] | None) -> dict[int, str]:
    if keys:
        unknown = [k for k in keys if k not in metrics]
        if unknown:
            raise ValidationError({"metric": [f"This asset has no metric {', '.join(unknown)}; it has {', '.join(metrics)}."]})
        return {metrics[k]: k for k in keys}
    return {i: k for k, i in metrics.items()}


class Series(APIView):
    """min/avg/max/count per time bucket of an asset's metrics."""

    @extend_schema(parameters=[SeriesParams], responses=inline_serializer("Series", {
        "asset": serializers.IntegerField(), "bucket": serializers.IntegerField(), "start": serializers.DateTimeField(), "end": serializers.DateTimeField(),
        "series": serializers.DictField(child=serializers.ListField(child=serializers.ListField()))}))
    def get(self, request, pk: int):
        known = _visible_metrics(request.user, pk)
        p = parse(SeriesParams, request)
        metrics = _pick_metrics(known, p.get("metric"))
        data = bucketed_metrics(pk, list(metrics), p["start"], p["end"], timedelta(seconds=p["bucket"]))
        series = {metrics[m]: [[b.start.timestamp(), b.min, b.avg, b.max, b.count] for b in buckets] for m, buckets in data.items()}
        return Response({"asset": pk, "bucket": p["bucket"], "start": p["start"], "end": p["end"], "columns": ["t", "min", "avg", "max", "count"], "series": series})


class Readings(APIView):
    """Raw readings of one metric, oldest first, a page at a time (cursor)."""

    @extend_schema(parameters=[ReadingsParams], responses=inline_serializer("Readings", {
        "readings": serializers.ListField(child=serializers.ListField()), "next_cursor": serializers.CharField(allow_null=True)}))
    def get(self, request, pk: int):
        known = _visible_metrics(request.user, pk)
        p = parse(ReadingsParams, request)
        metric_id = next(iter(_pick_metrics(known, [p["metric"]])))
        try:
            after = decode_cursor(p["cursor"]) if p.get("cursor") else None
        except ValueError:
            raise ValidationError({"cursor": ["Not a cursor of this API: pass next_cursor as it came."]}) from None
        rows, cursor = readings_page(pk, metric_id, p["start"], p["end"], after, p["limit"])
        return Response({"asset": pk, "metric": p["metric"], "readings": rows, "next_cursor": cursor})


# --- alerts ------------------------------------------------------------------------------


@extend_schema(parameters=[OpenApiParameter(n, str if n in ("severity", "state") else int) for n in ("site", "asset", "severity", "state")])
class AlertList(FilteredList):
    serializer_class = s.AlertSerializer
    filters = ("site", "asset", "severity", "state")

    def get_queryset(self):
        qs = Alert.objects.filter(site__in=visible_sites(self.request.user)).select_related("asset", "metric", "acknowledged_by")
        for name in ("site", "asset"):
            value = _int_param(self.request, name)
            if value is not None:
                qs = qs.filter(**{f"{name}_id": value})
        for name, choices in (("severity", Alert.Severity.values), ("state", Alert.State.values)):
            value = self.request.query_params.get(name)
            if value:
                if value not in choices:
                    raise ValidationError({name: [f"One of {', '.join(choices)}."]})
                qs = qs.filter(**{name: value})
        return qs


class AlertAcknowledge(APIView):
    write_roles = (FACILITY_MANAGER,)

    @extend_schema(request=s.AcknowledgeInput, responses=s.AlertSerializer)
    def post(self, request, pk: int):
        get_object_or_404(Alert, id=pk, site__in=visible_sites(request.user))
        body = s.AcknowledgeInput(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            alert = acknowledge_alert(pk, request.user, body.validated_data["comment"])
        except AlertError as exc:
            return Response({"error": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.AlertSerializer(alert).data)


# --- twins, RUL models, scenarios ---------------------------------------------------------


class TwinDetail(StrictDetail):
    serializer_class = s.TwinSerializer
    lookup_field = "asset_id"
    lookup_url_kwarg = "pk"

    def get_queryset(self):
        return TwinState.objects.filter(asset__site__in=visible_sites(self.request.user))


class TwinHistory(FilteredList):
    serializer_class = s.TwinSnapshotSerializer

    def get_queryset(self):
        asset = get_object_or_404(visible_assets(self.request.user), id=self.kwargs["pk"])
        return TwinSnapshot.objects.filter(asset=asset)


class RulModelList(FilteredList):
    serializer_class = s.RulModelSerializer
    queryset = RulModel.objects.all()


class ScenarioRunList(FilteredList):
    serializer_class = s.ScenarioRunSerializer
    read_roles = PLANNING
    write_roles = PLANNING

    def get_queryset(self):
        return ScenarioRun.objects.filter(scenario__site__in=visible_sites(self.request.user)).select_related("scenario")

    @extend_schema(request=s.ScenarioInput, responses={201: s.ScenarioRunSerializer})
    def post(self, request):
        from twins.scenarios.services import ScenarioServiceError, create_scenario, start_run
        from twins.sim import ScenarioError

        body = s.ScenarioInput(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        site = get_object_or_404(visible_sites(request.user), id=d["site"])
        assets = list(Asset.objects.filter(site=site, id__in=d["assets"]))
        if len(assets) != len(set(d["assets"])):
            raise ValidationError({"assets": ["Every asset must belong to the site (and be visible to you)."]})
        try:
            with transaction.atomic():  # a scenario whose run cannot start is not kept
                scenario = create_scenario(request.user, name=d["name"], site=site, assets=assets, params=d.get("params") or {}, compare_baseline=d["compare_baseline"])
                run = start_run(scenario.id, request.user)
        except (ScenarioServiceError, ScenarioError, ValueError, KeyError, TypeError) as exc:
            raise ValidationError({"params": [f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)]}) from None
        return Response(s.ScenarioRunSerializer(run).data, status=status.HTTP_201_CREATED)


class ScenarioRunDetail(StrictDetail):
    serializer_class = s.ScenarioRunDetailSerializer
    read_roles = PLANNING

    def get_queryset(self):
        return ScenarioRun.objects.filter(scenario__site__in=visible_sites(self.request.user)).select_related("scenario")


class ScenarioRunCsv(APIView):
    """A finished run's per-asset results as CSV (the same table as the run page's download)."""

    read_roles = PLANNING

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: int):
        from twins.scenarios.presenters import csv_rows

        _strict_query(request, set())
        run = get_object_or_404(ScenarioRun.objects.filter(scenario__site__in=visible_sites(request.user)).select_related("scenario"), id=pk)
        if run.state != ScenarioRun.State.DONE:
            return Response({"error": f"Run {run.id} is {run.state}: results come when it is done."}, status=status.HTTP_409_CONFLICT)
        rows = csv_rows(run)
        return streamed_file(request, "text/csv; charset=utf-8", queryset_csv(rows[0], (spreadsheet_safe(r) for r in rows[1:])), f"scenario-run-{run.id}.csv")


# --- nodes, rollouts, audit ---------------------------------------------------------------


class NodeList(FilteredList):
    serializer_class = s.NodeSerializer

    def get_queryset(self):
        return EdgeNode.objects.filter(site__in=visible_sites(self.request.user)).order_by("id")


class RolloutList(FilteredList):
    serializer_class = s.RolloutSerializer
    read_roles = (ADMIN,)
    write_roles = (ADMIN,)

    def get_queryset(self):
        return Rollout.objects.select_related("model", "proposer", "approver")

    @extend_schema(request=s.ProposeRolloutInput, responses={201: s.RolloutSerializer})
    def post(self, request):
        body = s.ProposeRolloutInput(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        model = ModelArtifact.objects.filter(id=d["model"]).first()
        if model is None:
            raise ValidationError({"model": ["No model artifact with this id."]})
        site = Site.objects.filter(id=d["site"]).first() if d.get("site") is not None else None
        if d.get("site") is not None and site is None:
            raise ValidationError({"site": ["No site with this id."]})
        try:
            rollout = propose_rollout(request.user, model, site=site, tag=d["tag"], node_ids=d.get("nodes"), canary_share=d["canary_share"],
                                      max_p99_latency_ms=d["max_p99_latency_ms"], min_agreement=d["min_agreement"], max_load_failures=d["max_load_failures"])
        except UnknownNodesError as exc:
            raise ValidationError({"nodes": [str(exc)]}) from None
        except RolloutError as exc:
            return Response({"error": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.RolloutSerializer(rollout).data, status=status.HTTP_201_CREATED)


class RolloutApprove(APIView):
    write_roles = (ADMIN,)

    @extend_schema(request=None, responses=s.RolloutSerializer)
    def post(self, request, pk: int):
        if not isinstance(request.data, dict):
            raise ValidationError({"body": ["Send no body, or an empty JSON object."]})
        if request.data:
            raise ValidationError({str(k): ["Unknown field."] for k in request.data})
        rollout = get_object_or_404(Rollout, id=pk)
        try:
            rollout = approve_rollout(request.user, rollout)
        except RolloutError as exc:
            return Response({"error": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.RolloutSerializer(rollout).data)


class AuditList(FilteredList):
    serializer_class = s.AuditSerializer
    read_roles = (ADMIN,)
    queryset = AuditEvent.objects.all()
