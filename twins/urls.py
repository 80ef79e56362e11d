from __future__ import annotations

from django.urls import path

from twins import views

urlpatterns = [
    path("models/rul/", views.models, name="twin-models"),
    path("assets/<id:asset_id>/twin.json", views.twin_history, name="twin-history"),
]
