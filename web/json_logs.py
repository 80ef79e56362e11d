"""Structured logs: LOG_FORMAT=json writes one JSON object a line with the time, level, logger,
message, process (kind and pid), node id (when the record concerns one) and request id.

The request id comes from the X-Request-ID header (a proxy's) or is made here; it is set on
the response too, so a user's report and the log line can be matched.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import uuid
from datetime import UTC, datetime

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("aiot_request_id", default="")
PROCESS_KIND = os.environ.get("AIOT_PROCESS_KIND", "") or (sys.argv[1] if len(sys.argv) > 1 and sys.argv[0].endswith("manage.py") else os.path.basename(sys.argv[0] or "python"))
SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def install_record_factory() -> None:
    """Every log record gets request_id and process_kind (whatever handler formats it)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "aiot_context", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        record.process_kind = PROCESS_KIND
        return record

    factory.aiot_context = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class ContextFilter(logging.Filter):
    """Adds request_id and process_kind to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.process_kind = PROCESS_KIND
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "process": getattr(record, "process_kind", PROCESS_KIND),
            "pid": record.process,
        }
        if getattr(record, "request_id", ""):
            out["request_id"] = record.request_id
        for key, value in vars(record).items():  # extra={"node": ...} and friends
            if key not in STANDARD and key not in ("request_id", "process_kind") and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=repr)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if SAFE_ID.match(given) else uuid.uuid4().hex[:16]
        # Not reset on the way out: Django logs a 4xx/5xx after the middleware chain returns, and
        # that line should carry the id too. Each ASGI request runs in its own context.
        REQUEST_ID.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
