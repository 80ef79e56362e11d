"""Strict request input: unknown fields refused by name, times and ranges bounded."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import ValidationError


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare (a typo must not be silently ignored)."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields) - getattr(self, "ignored_fields", set()))
            if unknown:
                raise ValidationError({k: ["Unknown field."] for k in unknown})
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - {n for n, f in self.fields.items() if not f.read_only})
            if unknown:
                raise ValidationError({k: ["Unknown or read-only field."] for k in unknown})
        return super().to_internal_value(data)


# Ids in query strings and paths: ASCII digits only (str.isdigit also takes '²' and '١'), and
# no more than a 64-bit integer column holds.
ID_PATTERN = r"[0-9]{1,18}"
MAX_ID = 10**18 - 1
_ID = re.compile(ID_PATTERN)
_EPOCH = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?")
# Times the platform can hold and compute with (a range's default start is end - 24 h).
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
NOT_A_TIME = "Not a time: use ISO 8601 (2026-01-31T12:00:00Z) or epoch seconds."


def parse_id(value: str) -> int | None:
    """A query string's id, or None when it is not one (the caller names the field)."""
    return int(value) if isinstance(value, str) and _ID.fullmatch(value) else None


class FiniteFloatField(serializers.FloatField):
    """A float that is a number: NaN and infinities (also as the strings "NaN", "inf") refused."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class TimeField(serializers.Field):
    """ISO 8601 (a zone required, or UTC assumed) or epoch seconds, from 1970 to 2199."""

    def to_internal_value(self, value):
        text = str(value).strip()
        if not text.isascii() or not text.isprintable():
            raise ValidationError(NOT_A_TIME)
        try:
            if _EPOCH.fullmatch(text):
                dt = datetime.fromtimestamp(float(text), UTC)
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
            in_range = EARLIEST <= dt < LATEST
        except (ValueError, OverflowError, OSError):
            raise ValidationError(NOT_A_TIME) from None
        if not in_range:
            raise ValidationError(f"Out of range: times from {EARLIEST:%Y-%m-%d} to {LATEST.year - 1}.")
        return dt

    def to_representation(self, value):
        return value.isoformat()


class RangeParams(StrictSerializer):
    ignored_fields = {"format"}
    start = TimeField(required=False, help_text="Default: end - 24 h.")
    end = TimeField(required=False, help_text="Default: now.")

    def validate(self, data):
        end = data.get("end") or datetime.now(UTC)
        start = data.get("start") or end - timedelta(hours=24)
        if start >= end:
            raise ValidationError({"start": ["start must be before end."]})
        if end - start > timedelta(days=settings.API_MAX_RANGE_DAYS):
            raise ValidationError({"start": [f"The range is at most {settings.API_MAX_RANGE_DAYS} days."]})
        data["start"], data["end"] = start, end
        return data


class SeriesParams(RangeParams):
    metric = serializers.ListField(child=serializers.CharField(max_length=64), required=False, help_text="Metric keys (repeat); default: all.")
    bucket = serializers.IntegerField(required=False, min_value=1, max_value=86400 * 31, help_text="Bucket in seconds; default: range / 300.")

    def validate(self, data):
        data = super().validate(data)
        span = (data["end"] - data["start"]).total_seconds()
        bucket = data.get("bucket") or max(1, int(span // 300))
        if span / bucket > 10000:
            raise ValidationError({"bucket": ["At most 10,000 buckets: choose a larger bucket."]})
        data["bucket"] = bucket
        return data


class ReadingsParams(RangeParams):
    metric = serializers.CharField(max_length=64)
    cursor = serializers.CharField(required=False, max_length=64, help_text="The next_cursor of the previous page.")
    limit = serializers.IntegerField(required=False, min_value=1, default=500)

    def validate_limit(self, value):
        if value > settings.API_MAX_PAGE_SIZE:
            raise ValidationError(f"At most {settings.API_MAX_PAGE_SIZE} per page.")
        return value


def parse(serializer_class, request) -> dict:
    data = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        field = serializer_class().fields.get(key)
        data[key] = values if isinstance(field, serializers.ListField) else values[-1]
    s = serializer_class(data=data)
    s.is_valid(raise_exception=True)
    return s.validated_data
