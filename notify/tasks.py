"""Celery tasks of notifications: thin, by name, ids in; the logic is in dispatch/sources."""

from __future__ import annotations

from celery import shared_task

from notify import dispatch, sources


@shared_task(name="notify.alert_events", ignore_result=True)
def alert_events_task(changes: list[list]) -> int:
    return sources.alert_events(changes)


@shared_task(name="notify.flush", ignore_result=True)
def flush_task(subscription_id: int) -> int | None:
    return dispatch.flush(subscription_id)


@shared_task(name="notify.deliver", ignore_result=True)
def deliver_task(delivery_id: int) -> str | None:
    return dispatch.deliver(delivery_id)


@shared_task(name="notify.sweep", ignore_result=True, expires=55)
def sweep_task() -> dict[str, int]:
    return sources.sweep()
