from django.apps import AppConfig


class EdgeNodeConfig(AppConfig):
    name = "edge_node"
    verbose_name = "Edge nodes"
