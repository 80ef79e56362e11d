"""The run page's socket with the in-memory channel layer: who may watch, the snapshot on
connect, a flood of progress coalesced to a few frames, the final state at once."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from tests.scenarios.factories import make_scenario, make_site_with_twins
from twins.scenarios import const
from twins.scenarios.consumers import ScenarioRunConsumer
from twins.scenarios.progress import run_group
from twins.scenarios.services import start_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def queued_run(planner):
    site, assets = make_site_with_twins(2, members=[planner])
    return start_run(make_scenario(site, assets, planner, replications=500).id, planner, dispatch=False)


def communicator(user, run_id: int) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(ScenarioRunConsumer.as_asgi(), f"/{const.WS_PATH_PREFIX}{run_id}/")
    comm.scope["user"] = user
    comm.scope["url_route"] = {"kwargs": {"run_id": run_id}}
    return comm


async def close_code(comm) -> int:
    assert (await comm.connect())[0]
    message = await comm.receive_output(timeout=2)
    await comm.wait()
    assert message["type"] == "websocket.close"
    return message["code"]


def test_it_closes_sockets_of_strangers_managers_and_other_sites_planners(queued_run, manager, django_user_model):
    from django.contrib.auth.models import Group

    other_planner = django_user_model.objects.create_user("planner2", password="pw-planner2")
    other_planner.groups.add(Group.objects.get(name="planner"))
    assert async_to_sync(close_code)(communicator(AnonymousUser(), queued_run.id)) == const.CLOSE_NOT_LOGGED_IN
    assert async_to_sync(close_code)(communicator(manager, queued_run.id)) == const.CLOSE_NO_ROLE
    assert async_to_sync(close_code)(communicator(other_planner, queued_run.id)) == const.CLOSE_NOT_FOUND


def test_it_sends_the_snapshot_then_coalesced_progress_then_the_final_state(queued_run, planner):
    total = queued_run.total

    async def watch():
        comm = communicator(planner, queued_run.id)
        assert (await comm.connect())[0]
        first = await comm.receive_json_from(timeout=2)
        layer = get_channel_layer()
        began = time.monotonic()
        for done in range(1, 91):  # within the in-memory layer's capacity of 100
            await layer.group_send(run_group(queued_run.id), {"type": "scenario.progress", "run": queued_run.id, "state": "running", "done": done, "total": total, "error": ""})
        await layer.group_send(run_group(queued_run.id), {"type": "scenario.progress", "run": queued_run.id, "state": "running", "done": 5, "total": total, "error": ""})
        frames = []
        while True:
            frame = await comm.receive_json_from(timeout=2)
            frames.append(frame)
            if frame["done"] == 90:
                break
        await layer.group_send(run_group(queued_run.id), {"type": "scenario.progress", "run": queued_run.id, "state": "done", "done": total, "total": total, "error": ""})
        final = await comm.receive_json_from(timeout=2)
        elapsed = time.monotonic() - began
        # A chunk's report that arrives after the end is stale: the page must not go back.
        await layer.group_send(run_group(queued_run.id), {"type": "scenario.progress", "run": queued_run.id, "state": "running", "done": 7, "total": total, "error": ""})
        assert await comm.receive_nothing(timeout=3 * const.FLUSH_INTERVAL_S)
        await comm.disconnect()
        return first, frames, final, elapsed

    first, frames, final, elapsed = async_to_sync(watch)()
    assert first == {"type": "scenario.progress", "run": queued_run.id, "state": "queued", "done": 0, "total": total, "error": ""}
    assert len(frames) <= 1 + elapsed / const.FLUSH_INTERVAL_S + 1
    assert [f["done"] for f in frames] == sorted(f["done"] for f in frames)  # never backwards
    assert final["state"] == "done" and final["done"] == total
