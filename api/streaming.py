"""A streamed body that stays streamed under ASGI (daphne): Django would otherwise consume a
synchronous iterator into a list first, which defeats constant memory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

log = logging.getLogger(__name__)


def guarded(chunks: Iterator[bytes], what: str, trailer: bytes | None) -> Iterator[bytes]:
    """A download that fails once its 200 and first bytes are sent cannot change its status:
    the failure is logged with the download's name and, where the format allows (CSV), a last
    line says the file is incomplete. Raising instead left daphne's connection open forever
    (it cannot answer 500 after a response started)."""
    try:
        yield from chunks
    except Exception as exc:
        log.exception("download %s stopped part-way: %s: %s", what, type(exc).__name__, exc)
        if trailer is not None:
            yield trailer


def streaming_body(chunks: Iterator[bytes], asynchronous: bool):
    return _aiter(chunks) if asynchronous else chunks


async def _aiter(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    # One thread for the whole iteration (thread_sensitive): the database cursor lives there.
    step = sync_to_async(next, thread_sensitive=True)
    try:
        while (chunk := await step(chunks, None)) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()


def streamed_file(request, content_type: str, chunks: Iterator[bytes], filename: str) -> StreamingHttpResponse:
    """A download streamed chunk by chunk (``request``: DRF's or Django's)."""
    raw = getattr(request, "_request", request)
    trailer = b"\n# export stopped part-way by a server error: this file is incomplete\n" if content_type.startswith("text/csv") else None
    body = guarded(chunks, f"{raw.path} ({filename})", trailer)
    response = StreamingHttpResponse(streaming_body(body, asynchronous=isinstance(raw, ASGIRequest)), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def spreadsheet_safe(row) -> list:
    """Text starting with = + - @ would be a formula in a spreadsheet: quoted as text."""
    return ["'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row]
