"""The rollout step task on a real Celery worker process over the real Redis broker: the task
that approval dispatches (after commit, on the default queue) runs on the worker and publishes
signed deploy commands to the canary nodes through the real MQTT broker."""

from __future__ import annotations

import uuid

import pytest

from edge_node.credentials import hash_secret
from edge_node.models import EdgeNode
from edge_node.rollouts import const
from edge_node.rollouts.actions import approve_rollout, propose_rollout
from edge_node.rollouts.models import Rollout, RolloutNode
from edge_node.rollouts.registry import register_anomaly_model
from tests.agent.conftest import Subscriber
from tests.factories import make_site
from tests.helpers import celery_worker_process, database_url_for_subprocess, wait_until
from web.celery import app

pytestmark = [pytest.mark.redis, pytest.mark.mqtt, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
NAME = f"rollouts-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rollout_worker(redis_url, mqtt_url, registry_settings):
    with celery_worker_process(None, redis_url, database_url_for_subprocess(), pool="solo", name=NAME, drop_env=("MODEL_SIGNING_KEY_FILE",),
                               extra_env={"MQTT_URL": mqtt_url, "AIOT_VAR_DIR": str(registry_settings.VAR_DIR)}) as process:
        yield process


def test_it_steps_a_rollout_on_a_celery_worker_over_redis(rollout_worker, registry_settings, model_dirs, mqtt_url, unique, admin_user, second_admin):
    assert str(app.conf.broker_url).startswith(("redis", "rediss", "unix")), "the test process must publish to Redis"
    registry_settings.MQTT_URL = mqtt_url
    registry_settings.ROLLOUT_MAX_CONCURRENT = 5
    site = make_site()
    nodes = [EdgeNode.objects.create(node_id=f"celery-{unique}-{i}", site=site, secret_hash=hash_secret("x"), online=True) for i in range(4)]
    subs = [Subscriber(mqtt_url, n.node_id) for n in nodes]
    try:
        wait_until(lambda: all(s.subscribed.is_set() for s in subs), 10, what="subscribers")
        model = register_anomaly_model(model_dirs["v2"])
        rollout = propose_rollout(admin_user, model, site=site, canary_share=0.5)
        approve_rollout(second_admin, rollout)  # dispatches rollouts.step_rollout after its commit
        wait_until(lambda: Rollout.objects.get(pk=rollout.pk).state == const.CANARY, 30, what="the worker to start the canary")
        canary = set(RolloutNode.objects.filter(rollout=rollout, canary=True).values_list("node__node_id", flat=True))
        assert len(canary) == 2
        for node, sub in zip(nodes, subs, strict=True):
            if node.node_id in canary:
                [cmd] = wait_until(lambda sub=sub: sub.of("cmd"), 15, what=f"the deploy to {node.node_id}")
                assert cmd["type"] == "deploy" and cmd["args"]["url"].endswith(f"/api/models/{model.pk}/download")
            else:
                assert sub.of("cmd") == []
    finally:
        for s in subs:
            s.close()
