from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from web import alert_views, combined_rule_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("", views.fleet, name="fleet"),
    path("assets/<id:asset_id>/", views.asset_detail, name="asset"),
    path("assets/<id:asset_id>/delta", views.asset_delta, name="asset-delta"),
    path("nodes/", views.nodes, name="nodes"),
    path("alerts/", alert_views.alerts, name="alerts"),
    path("alerts/<id:alert_id>/ack/", alert_views.acknowledge, name="alert-ack"),
    path("rules/", alert_views.rules, name="rules"),
    path("rules/new/", alert_views.rule_edit, name="rule-new"),
    path("rules/<id:rule_id>/", alert_views.rule_edit, name="rule-edit"),
    path("rules/<id:rule_id>/delete/", alert_views.rule_delete, name="rule-delete"),
    path("rules/combined/new/", combined_rule_views.combined_rule_edit, name="combined-rule-new"),
    path("rules/combined/<id:rule_id>/", combined_rule_views.combined_rule_edit, name="combined-rule-edit"),
    path("rules/combined/<id:rule_id>/delete/", combined_rule_views.combined_rule_delete, name="combined-rule-delete"),
    path("scenarios/", include("twins.scenarios.urls")),
    path("", include("notify.urls")),
    path("", include("api.urls")),
    path("", include("edge_node.urls")),
    path("", include("edge_node.rollouts.urls")),
    path("", include("twins.urls")),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
]

handler403 = "web.views.forbidden"
handler404 = "web.views.not_found"
