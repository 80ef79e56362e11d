"""Celery tasks of the twins: the periodic twin refresh and demo model training.

Tasks take ids (or nothing), are idempotent and call plain functions tests call directly."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="twins.refresh_twins", ignore_result=True)
def refresh_twins_task(asset_ids: list[int] | None = None) -> dict:
    """Recompute twin state (health, RUL, rate) from telemetry; celery beat runs it every
    TWIN_REFRESH_INTERVAL_S. Idempotent: a second run at the same moment writes the same state."""
    from twins.twin_refresh import refresh_twins

    result = refresh_twins(asset_ids)
    log.info("twins refreshed: %d (no data: %d), %d snapshots, %.3f s", result.refreshed, result.without_data, result.snapshots, result.seconds)
    return {
        "refreshed": result.refreshed, "without_data": result.without_data, "failed": result.failed,
        "snapshots": result.snapshots, "seconds": round(result.seconds, 4),
    }


@shared_task(name="twins.train_simulated_model", ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def train_simulated_model_task(asset_type: str) -> str | None:
    """Train and activate a model for a demo asset type unless one is active already."""
    from twins.rul_training import missing_demo_types, train_simulated_model

    if asset_type not in missing_demo_types():
        return None
    return train_simulated_model(asset_type).version
