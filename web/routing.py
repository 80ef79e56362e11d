"""WebSocket routes."""

from __future__ import annotations

from django.urls import path

from web.consumers import LiveConsumer
from web.live_messages import LIVE_PATH

websocket_urlpatterns: list = [
    path(LIVE_PATH, LiveConsumer.as_asgi()),
]
