"""Logging filters of the platform (wired in settings.LOGGING)."""

from __future__ import annotations

import logging


class RefusalsOneLine(logging.Filter):
    """A refused request (403, 404, 400, ...) is the client's problem, not the server's: keep
    Django's one line ("Forbidden (Permission denied): /rules/") and drop the traceback it
    attaches. Server errors (5xx) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500 and record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True
