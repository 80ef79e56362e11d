from __future__ import annotations

from django.urls import path

from . import node_api, views

app_name = "rollouts"

urlpatterns = [
    path("api/models/<id:model_id>/download", node_api.download_artifact, name="download"),
    path("model-registry/", views.model_list, name="models"),
    path("model-registry/<id:model_id>/", views.model_detail, name="model"),
    path("rollouts/", views.rollout_list, name="rollouts"),
    path("rollouts/<id:rollout_id>/", views.rollout_detail, name="rollout"),
    path("rollouts/<id:rollout_id>/state.json", views.rollout_state, name="rollout-state"),
    path("rollouts/<id:rollout_id>/<str:action>/", views.rollout_action, name="rollout-action"),
]
