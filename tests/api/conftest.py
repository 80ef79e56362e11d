from __future__ import annotations

import pytest

from api.tokens import create_token
from tests.factories import make_fleet


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fleet(manager, planner):
    return make_fleet(2, members=[manager, planner])


@pytest.fixture
def token_of():
    """token_of(user) -> the Authorization header value of a fresh token."""

    def make(user) -> str:
        return "Token " + create_token(user, "test")[1]

    return make
