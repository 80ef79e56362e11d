"""The Celery task, called as a plain function: one step publishes signed deploy commands to the
canary only, over the real broker with the platform account."""

from __future__ import annotations

import pytest

from edge_node.agent import artifact
from edge_node.credentials import hash_secret
from edge_node.models import EdgeNode
from edge_node.rollouts import const
from edge_node.rollouts.actions import approve_rollout, propose_rollout
from edge_node.rollouts.models import Rollout, RolloutNode
from edge_node.rollouts.registry import register_anomaly_model
from edge_node.rollouts.tasks import step_rollout_task
from edge_node.signing_keys import public_key_pem
from tests.agent.conftest import Subscriber
from tests.factories import make_site
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db


def test_it_sends_signed_deploys_to_the_canary_only(registry_settings, model_dirs, mqtt_url, unique, admin_user, second_admin,
                                                   django_capture_on_commit_callbacks):
    registry_settings.MQTT_URL = mqtt_url
    registry_settings.ROLLOUT_MAX_CONCURRENT = 5
    site = make_site()
    nodes = [EdgeNode.objects.create(node_id=f"task-{unique}-{i}", site=site, secret_hash=hash_secret("x"), online=i != 0)
             for i in range(4)]
    subs = [Subscriber(mqtt_url, n.node_id) for n in nodes]
    try:
        wait_until(lambda: all(s.subscribed.is_set() for s in subs), 10, what="subscribers")
        model = register_anomaly_model(model_dirs["v2"])
        rollout = propose_rollout(admin_user, model, site=site, canary_share=0.5)
        with django_capture_on_commit_callbacks(execute=False):
            approve_rollout(second_admin, rollout)
        assert step_rollout_task.run(rollout.pk) == const.CANARY
        canary = list(RolloutNode.objects.filter(rollout=rollout, canary=True).values_list("node__node_id", flat=True))
        assert canary == [nodes[1].node_id, nodes[2].node_id]  # online nodes first
        for node, sub in zip(nodes, subs, strict=True):
            if node.node_id in canary:
                cmd = wait_until(lambda sub=sub: sub.of("cmd"), 10, what=f"deploy to {node.node_id}")[0]
                args = cmd["args"]
                assert cmd["type"] == "deploy" and args["url"].endswith(f"/api/models/{model.pk}/download")
                artifact.verify_artifact((model_dirs["v2"] / "model.onnx").read_bytes(), args["manifest"], args["signature"], public_key_pem())
        assert step_rollout_task.run(rollout.pk) == const.CANARY  # idempotent: nothing sent twice
        sent = dict(RolloutNode.objects.filter(rollout=rollout).values_list("node__node_id", "attempts"))
        assert sent == {nodes[0].node_id: 0, nodes[1].node_id: 1, nodes[2].node_id: 1, nodes[3].node_id: 0}
        assert Rollout.objects.get(pk=rollout.pk).state == const.CANARY
    finally:
        for s in subs:
            s.close()
