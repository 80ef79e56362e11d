from __future__ import annotations

from django.urls import path

from twins.scenarios import views

app_name = "scenarios"
urlpatterns = [
    path("", views.scenario_list, name="list"),
    path("new/", views.scenario_new, name="new"),
    path("<id:scenario_id>/rerun/", views.scenario_rerun, name="rerun"),
    path("runs/<id:run_id>/", views.run_detail, name="run"),
    path("runs/<id:run_id>/status/", views.run_status, name="status"),
    path("runs/<id:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<id:run_id>/csv/", views.run_csv, name="csv"),
]
