from __future__ import annotations

from django.urls import path

from edge_node import views

app_name = "edge_node"

urlpatterns = [
    path("api/enroll", views.enroll_api, name="enroll-api"),
    path("fleet-security/tokens/", views.tokens, name="tokens"),
    path("fleet-security/nodes/", views.manage_nodes, name="nodes"),
    path("fleet-security/nodes/<str:node_id>/revoke/", views.revoke, name="revoke"),
    path("fleet-security/keys/rotate/", views.rotate_keys, name="rotate-keys"),
    path("fleet-security/audit/", views.audit_log, name="audit"),
]
