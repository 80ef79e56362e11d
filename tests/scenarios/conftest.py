from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(request, settings):
    # The personas are created with passwords; hashing them properly costs seconds per test.
    # Browser tests log in through a server process with the default hashers: keep those.
    if request.node.get_closest_marker("browser") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
