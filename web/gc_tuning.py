"""Keep the garbage collector's full passes off the request path.

A Django process holds a few hundred thousand long-lived objects after start-up (modules,
settings, URL patterns, model metadata, DRF and Channels machinery). CPython's oldest-generation
collection walks all of them: on this 2-core machine 60-160 ms, several times a minute under
API load, and every request caught behind one waits that long (the series endpoint's p99 went
from 23 ms to 80 ms). ``gc.freeze()`` moves what start-up made into a permanent generation that
collections skip; cycles created afterwards are still collected as usual. The long-running
processes call this once they are ready: daphne (web/asgi.py), the ingest worker and Celery
workers.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Import every view module now (not at the first request), collect, and freeze what is
    left; returns the number of objects frozen."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - loads the URLconf and the views it names
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("froze %d start-up objects out of the collector's full passes", frozen)
    return frozen
