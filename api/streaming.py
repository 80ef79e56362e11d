"""A streamed body that stays streamed under ASGI (daphne): Django would otherwise consume a
synchronous iterator into a list first, which defeats constant memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async


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
