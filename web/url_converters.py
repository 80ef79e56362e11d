"""The ``<id:...>`` path converter every URL with a database id uses: ASCII digits, at most 18
of them. Django's ``int`` takes any length, so /assets/9223372036854775808/ reached the
database and failed there (a 500); now it is a plain 404."""

from __future__ import annotations

from django.urls import register_converter
from django.urls.converters import IntConverter

from api.params import ID_PATTERN


class IdConverter(IntConverter):
    regex = ID_PATTERN


def register() -> None:
    register_converter(IdConverter, "id")
