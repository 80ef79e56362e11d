"""Celery tasks of rollouts: thin wrappers over driver.step_rollout (ids in, idempotent)."""

from __future__ import annotations

import logging

from celery import shared_task

from edge_node.services import platform_broker_url

from . import driver
from .mqtt_client import PlatformMqtt

log = logging.getLogger(__name__)


@shared_task(name="rollouts.step_rollout", bind=True, max_retries=5, acks_late=True)
def step_rollout_task(self, rollout_id: int) -> str | None:
    """One driver step with a short-lived platform connection (the listener does the rest)."""
    try:
        with PlatformMqtt(platform_broker_url()) as client:
            return driver.step_rollout(rollout_id, client.publish)
    except OSError as exc:
        log.warning("rollout %s: step failed (%s); retrying", rollout_id, exc)
        raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from None


@shared_task(name="rollouts.step_active")
def step_active_task() -> int:
    from edge_node.key_rotation import step_keyrings

    with PlatformMqtt(platform_broker_url()) as client:
        stepped = driver.step_active(client.publish)
        step_keyrings(client.publish)
        return stepped
