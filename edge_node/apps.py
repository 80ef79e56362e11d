from django.apps import AppConfig


class EdgeNodeConfig(AppConfig):
    name = "edge_node"
    verbose_name = "Edge nodes"

    def ready(self) -> None:
        from edge_node import checks  # noqa: F401 - registers the fleet-security deploy checks
