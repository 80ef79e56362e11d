"""Two web processes, as behind a proxy on two hosts: two daphne processes on the real Redis
channel layer. A socket on each gets the live reading the ingest worker stored from MQTT, and
the progress and completion of a what-if run that was started through the API of one of them
and computed by a real Celery worker (a third process)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request

import pytest
from django.test import Client

from api.tokens import create_token
from edge_node.agent import contract
from tests.browser.conftest import CHANNEL_PREFIX, SCENARIO_QUEUE
from tests.factories import make_fleet
from tests.helpers import Publisher, celery_worker_process, database_url_for_subprocess
from tests.scenarios.factories import PARAMS, make_twin
from twins.scenarios.models import ScenarioRun
from web.celery import app

pytestmark = [pytest.mark.browser, pytest.mark.mqtt, pytest.mark.redis, pytest.mark.slow]

IDLE_QUEUE = f"{SCENARIO_QUEUE}-idle"


@pytest.fixture
def scenario_worker(transactional_db, redis_url):
    """A Celery worker that consumes nothing yet: the test has it take the scenario queue once
    both sockets watch the run, so every frame after the first comes over the channel layer."""
    assert str(app.conf.broker_url).startswith(("redis", "rediss", "unix")), "the test process must talk to Redis"
    with celery_worker_process(IDLE_QUEUE, redis_url, database_url_for_subprocess(), extra_env={"CHANNEL_LAYER_PREFIX": CHANNEL_PREFIX}) as process:
        yield f"{IDLE_QUEUE}@{socket.gethostname()}", process


def take_scenario_queue(worker_name: str, timeout: float = 60.0) -> None:
    """Once the worker answers remote control (it has started), it consumes SCENARIO_QUEUE."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.add_consumer(SCENARIO_QUEUE, destination=[worker_name], reply=True, timeout=1.0)
        if replies:
            return
    raise AssertionError(f"the Celery worker {worker_name} did not answer within {timeout} s")


def post_json(url: str, body: dict, token: str) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        return json.loads(response.read())


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


def test_both_web_processes_deliver_live_readings_and_scenario_progress(
    web_server, second_web_server, live_ingest, scenario_worker, planner, mqtt_url,
):
    from websockets.asyncio.client import connect

    fleet = make_fleet(2, members=[planner])
    for asset in fleet.assets:
        make_twin(asset)
    asset = fleet.assets[0]
    client = Client()
    client.force_login(planner)
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    token = create_token(planner, "two web processes")[1]
    webs = {"A": web_server, "B": second_web_server}
    worker_name, worker = scenario_worker

    async def open_socket(base: str, path: str):
        return await connect(ws_url(base, path), origin=base, additional_headers=cookie, open_timeout=30, max_queue=None)

    async def next_frame(ws, timeout: float = 30.0) -> dict:
        try:
            return json.loads(await asyncio.wait_for(ws.recv(), timeout))
        except TimeoutError:
            raise AssertionError(f"no frame within {timeout} s on {ws.request.path} of {ws.remote_address}") from None

    async def live_reading(ws, value: float) -> dict:
        """The first asset update of ``asset`` carrying ``value``."""
        while True:
            frame = await next_frame(ws)
            for m in frame.get("messages", [frame]):
                for update in m.get("updates", [m]):
                    if update.get("type") == "asset.update" and update.get("asset") == asset.id and value in update.get("values", {}).get("temperature_c", []):
                        return update

    async def run_frames(ws) -> list[dict]:
        frames = [await next_frame(ws)]
        while frames[-1]["state"] in ("queued", "running"):
            frames.append(await next_frame(ws, 60))
        return frames

    async def scenario() -> tuple[dict, dict, int]:
        # Live readings: a socket on each process watches the site; one reading goes over MQTT.
        live = {name: await open_socket(base, "/ws/live/") for name, base in webs.items()}
        for ws in live.values():
            await ws.send(json.dumps({"action": "subscribe", "site": fleet.site.id}))
            assert (await next_frame(ws))["type"] == "subscribed"
        with Publisher(mqtt_url) as pub:
            batch = {"seq": 1, "readings": [{"asset": asset.key, "ts": time.time(), "values": {"temperature_c": 42.75, "vib_rms": 1.5}}]}
            pub.publish(contract.topic(fleet.node.node_id, "telemetry"), contract.encode(batch), wait=True)
        updates = dict(zip(live, await asyncio.gather(*(live_reading(ws, 42.75) for ws in live.values())), strict=True))
        for ws in live.values():
            await ws.close()
        # A what-if run started through B's API; a socket on each process watches it.
        body = {"name": "More load", "site": fleet.site.id, "assets": [a.id for a in fleet.assets], "params": {**PARAMS, "replications": 100}}
        started = await asyncio.to_thread(post_json, f"{webs['B']}/api/v1/scenario-runs/", body, token)
        watching = {name: await open_socket(base, f"/ws/scenarios/runs/{started['id']}/") for name, base in webs.items()}
        first = {name: await next_frame(ws) for name, ws in watching.items()}
        await asyncio.to_thread(take_scenario_queue, worker_name)
        frames = dict(zip(watching, await asyncio.gather(*(run_frames(ws) for ws in watching.values())), strict=True))
        for ws in watching.values():
            await ws.close()
        return updates, {name: [first[name], *frames[name]] for name in webs}, started["id"]

    updates, frames, run_id = asyncio.run(scenario())
    assert all(u["site"] == fleet.site.id for u in updates.values())
    run = ScenarioRun.objects.get(id=run_id)
    assert run.state == "done" and run.error == "", worker.poll()
    for name, got in frames.items():
        states = [f["state"] for f in got]
        # the stored state when the socket joined, then the workers' messages through Redis
        assert states[0] == "queued" and "running" in states and states[-1] == "done", (name, got)
        assert got[-1]["done"] == got[-1]["total"] == run.total, (name, got)
        assert [f["done"] for f in got] == sorted(f["done"] for f in got), (name, got)
