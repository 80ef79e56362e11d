"""Settings for the daphne subprocess of the browser tests: the project's settings plus a
channel-layer prefix of the test run's own, so parallel runs on one Redis never cross."""

from __future__ import annotations

import os

from web.settings import *
from web.settings import CHANNEL_LAYERS, REDIS_URL

if REDIS_URL:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = os.environ.get("AIOT_TEST_CHANNEL_PREFIX", "asgi")
