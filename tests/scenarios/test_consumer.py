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
    total, check_total = queued_run.total, queued_run.check_total
    assert check_total == 200  # the recommendation check: 100 replications of each variant

    def frame(done: int, checked: int = 0, state: str = "running") -> dict:
        return {"type": "scenario.progress", "run": queued_run.id, "state": state, "done": done, "total": total,
                "checked": checked, "check_total": check_total, "error": ""}

    async def watch():
        comm = communicator(planner, queued_run.id)
        assert (await comm.connect())[0]
        first = await comm.receive_json_from(timeout=2)
        layer = get_channel_layer()
        began = time.monotonic()
        # within the in-memory layer's capacity of 100: the simulation, then the check
        for step in range(1, 61):
            await layer.group_send(run_group(queued_run.id), frame(step * total // 60))
        for step in range(1, 31):
            await layer.group_send(run_group(queued_run.id), frame(total, step * check_total // 30))
        # a chunk's report that arrives late (sums are read in each worker) is stale
        await layer.group_send(run_group(queued_run.id), frame(total, 5))
        await layer.group_send(run_group(queued_run.id), frame(5))
        frames = []
        while True:
            received = await comm.receive_json_from(timeout=2)
            frames.append(received)
            if received["checked"] == check_total:
                break
        await layer.group_send(run_group(queued_run.id), frame(total, check_total, "done"))
        final = await comm.receive_json_from(timeout=2)
        elapsed = time.monotonic() - began
        # A chunk's report that arrives after the end is stale: the page must not go back.
        await layer.group_send(run_group(queued_run.id), frame(7))
        assert await comm.receive_nothing(timeout=3 * const.FLUSH_INTERVAL_S)
        await comm.disconnect()
        return first, frames, final, elapsed

    first, frames, final, elapsed = async_to_sync(watch)()
    assert first == frame(0, 0, "queued")
    assert len(frames) <= 1 + elapsed / const.FLUSH_INTERVAL_S + 1
    # never backwards, the two phases together
    assert [(f["done"], f["checked"]) for f in frames] == sorted((f["done"], f["checked"]) for f in frames)
    assert final == frame(total, check_total, "done")
