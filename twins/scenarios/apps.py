from __future__ import annotations

from django.apps import AppConfig


class ScenariosConfig(AppConfig):
    name = "twins.scenarios"
    label = "scenarios"
    verbose_name = "What-if scenarios"
    default_auto_field = "django.db.models.BigAutoField"
