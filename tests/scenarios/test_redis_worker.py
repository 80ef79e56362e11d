"""End to end on the real Redis broker: a real Celery worker (prefork, two processes) runs a
scenario's two chords (the simulation, then the check of its recommendations), progress reaches the run's socket through the Redis channel layer, and the
stored result is the engine's. Cancelling stops the chunk tasks mid-way."""

from __future__ import annotations

import os
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from tests.helpers import celery_worker_process, database_url_for_subprocess, wait_until
from tests.scenarios.factories import make_scenario, make_site_with_twins
from twins.scenarios import const
from twins.scenarios.consumers import ScenarioRunConsumer
from twins.scenarios.models import ScenarioChunk, ScenarioRun
from twins.scenarios.services import cancel_run, dispatch_run, start_run
from twins.sim import run, scenario_from_dict
from web.celery import app
from web.env import channel_layers_from_url

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
QUEUE = f"scenarios-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker(redis_url, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        database_url = database_url_for_subprocess()
    with celery_worker_process(QUEUE, redis_url, database_url) as process:
        yield process


@pytest.fixture
def redis_stack(settings, redis_url, worker):
    assert str(app.conf.broker_url).startswith(("redis", "rediss", "unix")), "the test process must publish to Redis"
    settings.SCENARIO_QUEUE = QUEUE
    # The worker process reads CHANNEL_LAYER_PREFIX from the environment: the same prefix here.
    settings.CHANNEL_LAYERS = channel_layers_from_url(redis_url, settings.CHANNEL_LAYER_KIND, os.environ.get("CHANNEL_LAYER_PREFIX", "asgi"))
    return worker


def communicator(user, run_id: int) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(ScenarioRunConsumer.as_asgi(), f"/{const.WS_PATH_PREFIX}{run_id}/")
    comm.scope["user"] = user
    comm.scope["url_route"] = {"kwargs": {"run_id": run_id}}
    return comm


def test_it_runs_a_scenario_on_two_worker_processes_with_progress_over_the_socket(redis_stack, planner):
    site, assets = make_site_with_twins(8, members=[planner])
    scenario = make_scenario(site, assets, planner, replications=1200, seed=99)
    started = start_run(scenario.id, planner, chunks=4, dispatch=False)

    async def watch():
        comm = communicator(planner, started.id)
        assert (await comm.connect())[0]
        frames = [await comm.receive_json_from(timeout=5)]
        await database_sync_to_async(dispatch_run)(started.id)
        while frames[-1]["state"] in ("queued", "running"):
            frames.append(await comm.receive_json_from(timeout=60))
        await comm.disconnect()
        return frames

    frames = async_to_sync(watch)()
    assert frames[0]["state"] == "queued" and frames[-1]["state"] == "done", (frames, redis_stack.poll())
    done = [f["done"] for f in frames]
    assert done == sorted(done) and done[-1] == started.total
    assert any(0 < d < started.total for d in done), "progress frames between start and end"
    # the recommendation check ran as a second chord on the workers, its progress on the socket
    progress = [(f["done"], f["checked"]) for f in frames]
    assert progress == sorted(progress) and progress[-1] == (started.total, started.check_total) == (2400, 200)
    checks = ScenarioChunk.objects.filter(run=started, phase="check")
    assert checks.count() == 8 and all(c.finished_at is not None and c.done == c.stop - c.start for c in checks)
    stored = ScenarioRun.objects.get(id=started.id)
    assert stored.started_at is not None and stored.error == ""
    # The figures are the engine's, whatever the split over worker processes.
    assert stored.results["scenario"] == run(scenario_from_dict(stored.specs["scenario"]))


def test_it_cancels_a_running_scenario_on_the_workers(redis_stack, planner):
    site, assets = make_site_with_twins(30, members=[planner])
    scenario = make_scenario(site, assets, planner, replications=10000, seed=5)
    started = start_run(scenario.id, planner, chunks=2, dispatch=False)
    merged = dispatch_run(started.id)
    wait_until(lambda: ScenarioChunk.objects.filter(run=started, done__gt=0).exists(), timeout=30, what="the first progress")
    cancel_run(started.id, planner)
    # The chord's callback runs once every chunk task has returned: they all stopped early.
    assert merged.get(timeout=30) == {"run": started.id, "status": "cancelled"}
    final = ScenarioRun.objects.get(id=started.id)
    assert final.state == "cancelled" and final.results is None
    chunks = list(ScenarioChunk.objects.filter(run=started))
    assert all(c.data is None and c.done < c.stop - c.start for c in chunks if c.variant == "scenario")
