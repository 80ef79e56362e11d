from django.contrib.auth.decorators import login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api import export_views, token_views, views

v1 = "api/v1/"
urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The docs are a page for people: the login page first, like every other page.
    path("api/docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
    path("api/tokens/", token_views.tokens, name="api-tokens"),
    path("api/tokens/<id:token_id>/revoke/", token_views.revoke, name="api-token-revoke"),
    path(v1 + "sites/", views.SiteList.as_view(), name="api-sites"),
    path(v1 + "assets/", views.AssetList.as_view(), name="api-assets"),
    path(v1 + "assets/<id:pk>/", views.AssetDetail.as_view(), name="api-asset"),
    path(v1 + "assets/<id:pk>/latest/", views.LatestValues.as_view(), name="api-asset-latest"),
    path(v1 + "assets/<id:pk>/series/", views.Series.as_view(), name="api-asset-series"),
    path(v1 + "assets/<id:pk>/readings/", views.Readings.as_view(), name="api-asset-readings"),
    path(v1 + "assets/<id:pk>/twin/", views.TwinDetail.as_view(), name="api-asset-twin"),
    path(v1 + "assets/<id:pk>/twin/history/", views.TwinHistory.as_view(), name="api-asset-twin-history"),
    path(v1 + "alerts/", views.AlertList.as_view(), name="api-alerts"),
    path(v1 + "alerts/<id:pk>/acknowledge/", views.AlertAcknowledge.as_view(), name="api-alert-ack"),
    path(v1 + "rul-models/", views.RulModelList.as_view(), name="api-rul-models"),
    path(v1 + "scenario-runs/", views.ScenarioRunList.as_view(), name="api-scenario-runs"),
    path(v1 + "scenario-runs/<id:pk>/", views.ScenarioRunDetail.as_view(), name="api-scenario-run"),
    path(v1 + "scenario-runs/<id:pk>/csv/", views.ScenarioRunCsv.as_view(), name="api-scenario-run-csv"),
    path(v1 + "nodes/", views.NodeList.as_view(), name="api-nodes"),
    path(v1 + "rollouts/", views.RolloutList.as_view(), name="api-rollouts"),
    path(v1 + "rollouts/<id:pk>/approve/", views.RolloutApprove.as_view(), name="api-rollout-approve"),
    path(v1 + "audit/", views.AuditList.as_view(), name="api-audit"),
    path(v1 + "exports/telemetry.csv", export_views.TelemetryExport.as_view(), name="api-export-telemetry"),
    path(v1 + "exports/telemetry.parquet", export_views.TelemetryParquetExport.as_view(), name="api-export-telemetry-parquet"),
    path(v1 + "exports/alerts.csv", export_views.AlertExport.as_view(), name="api-export-alerts"),
    path(v1 + "exports/audit.csv", export_views.AuditExport.as_view(), name="api-export-audit"),
]
