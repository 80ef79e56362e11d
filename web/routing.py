"""WebSocket routes."""

from __future__ import annotations

from django.urls import path

from twins.scenarios.consumers import ScenarioRunConsumer
from web.consumers import LiveConsumer
from web.live_messages import LIVE_PATH

websocket_urlpatterns: list = [
    path(LIVE_PATH, LiveConsumer.as_asgi()),
    path("ws/scenarios/runs/<id:run_id>/", ScenarioRunConsumer.as_asgi()),
]
