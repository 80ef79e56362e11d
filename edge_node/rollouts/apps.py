from __future__ import annotations

from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "edge_node.rollouts"
    label = "rollouts"
    verbose_name = "Model registry and rollouts"
    default_auto_field = "django.db.models.BigAutoField"
