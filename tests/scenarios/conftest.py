from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(request, settings):
    # The personas are created with passwords; hashing them properly costs seconds per test.
    # Browser tests log in through a server process with the default hashers: keep those.
    if request.node.get_closest_marker("browser") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _role_groups(request):
    # Transactional tests empty every table afterwards, the role groups of the data migration
    # too (serialized_rollback would restore them, but clashes with other suites' flushes).
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" not in request.fixturenames and not (marker and marker.kwargs.get("transaction")):
        return
    request.getfixturevalue("transactional_db")
    from django.contrib.auth.models import Group

    from web.roles import ROLES

    for role in ROLES:
        Group.objects.get_or_create(name=role)
