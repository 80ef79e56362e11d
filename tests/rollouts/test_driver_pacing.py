"""The driver at fleet scale, against the real database: acks applied a batch at a time, gate
failures judged when they arrive (a step counts them in SQL), and the in-flight window that
grows with every node that switches up to a share of the fleet."""

from __future__ import annotations

import pytest

from edge_node.models import EdgeNode
from edge_node.rollouts import const, driver
from edge_node.rollouts.actions import approve_rollout, propose_rollout
from edge_node.rollouts.models import Rollout, RolloutNode
from edge_node.rollouts.registry import register_anomaly_model
from tests.factories import make_node, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(registry_settings, model_dirs):
    site = make_site()
    nodes = [make_node(site) for _ in range(40)]
    EdgeNode.objects.filter(pk__in=[n.pk for n in nodes]).update(online=True)
    return site, nodes, register_anomaly_model(model_dirs["v2"])


def _approved(fleet, admin_user, second_admin, capture, **kw) -> Rollout:
    site, _nodes, model = fleet
    rollout = propose_rollout(admin_user, model, site=site, max_p99_latency_ms=50.0, min_agreement=0.8, **kw)
    with capture(execute=False):  # no Celery here: the test steps the driver itself
        approve_rollout(second_admin, rollout)
    return rollout


def _final(cid: str, *, p99: float = 1.0, agreement: float = 1.0) -> dict:
    return {"id": cid, "ok": True, "detail": "switched", "report": {
        "stage": "switched", "final": True, "latency_p99_ms": p99, "agreement": agreement, "version": "2"}}


def _progress(cid: str, stage: str) -> dict:
    return {"id": cid, "ok": True, "detail": stage, "report": {"stage": stage, "final": False}}


def _sent(rollout: Rollout) -> dict[str, str]:
    """node id -> command id of every node holding a command right now."""
    return dict(RolloutNode.objects.filter(rollout=rollout, state__in=const.IN_FLIGHT_STATES)
                .values_list("node__node_id", "command_id"))


def test_the_window_grows_with_every_switched_node_up_to_a_share_of_the_fleet(fleet, admin_user, second_admin,
                                                                            django_capture_on_commit_callbacks, settings):
    settings.ROLLOUT_MAX_CONCURRENT = 2
    settings.ROLLOUT_MAX_CONCURRENT_SHARE = 0.25  # 10 of the 40 nodes at most
    assert [driver.in_flight_limit(40, s) for s in (0, 1, 5, 8, 40)] == [2, 3, 7, 10, 10]
    assert driver.in_flight_limit(4, 4) == 2  # a small fleet keeps the fixed first wave
    published: list[str] = []
    rollout = _approved(fleet, admin_user, second_admin, django_capture_on_commit_callbacks, canary_share=0.05)
    assert driver.step_rollout(rollout.pk, lambda node_id, cmd: published.append(node_id)) == const.CANARY
    assert len(published) == 2  # the canary (2 nodes) fills the first wave
    seen_window = []
    for _ in range(12):
        sent = _sent(rollout)
        seen_window.append(len(sent))
        driver.record_acks([(n, _final(cid)) for n, cid in sent.items()])
        driver.step_rollout(rollout.pk, lambda node_id, cmd: published.append(node_id))
        if Rollout.objects.get(pk=rollout.pk).state == const.DONE:
            break
    assert Rollout.objects.get(pk=rollout.pk).state == const.DONE
    # 2 (canary), then 2 + 2 switched = 4, then 2 + 6 = 8, then the ceiling of 10 (25 % of 40).
    assert seen_window[:4] == [2, 4, 8, 10] and max(seen_window) == 10
    assert len(published) == 40 == len(set(published))


def test_a_batch_applies_progress_and_final_acks_and_ignores_what_does_not_belong(fleet, admin_user, second_admin,
                                                                                 django_capture_on_commit_callbacks, settings):
    settings.ROLLOUT_MAX_CONCURRENT = 4
    rollout = _approved(fleet, admin_user, second_admin, django_capture_on_commit_callbacks, canary_share=0.1)
    driver.step_rollout(rollout.pk, lambda node_id, cmd: None)
    (a, cid_a), (b, cid_b), (c, cid_c), (d, cid_d) = sorted(_sent(rollout).items())
    changed = driver.record_acks([
        (a, _progress(cid_a, "downloading")), (a, _progress(cid_a, "shadow")),
        (b, _progress(cid_b, "verifying")), (b, _final(cid_b)), (b, _progress(cid_b, "shadow")),  # late progress
        (c, _final(cid_d)),  # node c replying with node d's command id
        (d, {"id": "not-a-rollout-command", "ok": True}),
    ])
    states = dict(RolloutNode.objects.filter(rollout=rollout).values_list("node__node_id", "state"))
    assert states[a] == const.N_SHADOW  # its progress, in order
    assert states[b] == const.N_SWITCHED  # the late progress report did not undo the final one
    assert states[c] == const.N_SENT and states[d] == const.N_SENT  # the spoofed and unrelated acks changed nothing
    assert {rn.node.node_id for rn in changed} == {a, b}
    b_row = RolloutNode.objects.get(rollout=rollout, node__node_id=b)
    assert b_row.report["version"] == "2" and b_row.gate_failed is False


def test_a_switched_node_over_the_ceiling_counts_as_a_gate_failure_and_rolls_the_canary_back(
        fleet, admin_user, second_admin, django_capture_on_commit_callbacks, settings):
    settings.ROLLOUT_MAX_CONCURRENT = 4
    settings.ROLLOUT_GATE_MAX_FAILED_SHARE = 0.1
    rollout = _approved(fleet, admin_user, second_admin, django_capture_on_commit_callbacks, canary_share=0.1)
    driver.step_rollout(rollout.pk, lambda node_id, cmd: None)
    sent = sorted(_sent(rollout).items())
    # One node says it switched, but its p99 is over the rollout's 50 ms: the platform re-checks.
    driver.record_acks([(sent[0][0], _final(sent[0][1], p99=80.0)), (sent[1][0], _final(sent[1][1], agreement=0.95))])
    flagged = dict(RolloutNode.objects.filter(rollout=rollout, node__node_id__in=[sent[0][0], sent[1][0]])
                   .values_list("node__node_id", "gate_failed"))
    assert flagged == {sent[0][0]: True, sent[1][0]: False}
    rollbacks: list[str] = []
    assert driver.step_rollout(rollout.pk, lambda node_id, cmd: rollbacks.append(cmd["type"])) == const.ROLLED_BACK
    reason = Rollout.objects.get(pk=rollout.pk).reason
    assert "health gate failed on 1 of 2 judged nodes" in reason and "p99 80.00 ms > 50 ms" in reason
    assert rollbacks == ["rollback", "rollback"]  # both switched nodes are told to go back
    assert set(RolloutNode.objects.filter(rollout=rollout, canary=False).values_list("state", flat=True)) == {const.N_NOT_SENT}


def test_a_node_another_driver_claimed_meanwhile_is_not_sent_twice(fleet, admin_user, second_admin,
                                                                  django_capture_on_commit_callbacks):
    from django.utils import timezone

    rollout = _approved(fleet, admin_user, second_admin, django_capture_on_commit_callbacks, canary_share=0.1)
    Rollout.objects.filter(pk=rollout.pk).update(state=const.PROMOTING)
    rollout.refresh_from_db()
    waiting = list(RolloutNode.objects.filter(rollout=rollout).select_related("node").order_by("node__node_id")[:3])
    # The Celery task's step got to the second node first.
    RolloutNode.objects.filter(pk=waiting[1].pk).update(state=const.N_SENT, command_id="other-driver", attempts=1)
    claimed = driver._claim(rollout, waiting, timezone.now())
    assert [rn.pk for rn, _ in claimed] == [waiting[0].pk, waiting[2].pk]
    assert RolloutNode.objects.get(pk=waiting[1].pk).command_id == "other-driver"
    rows = RolloutNode.objects.filter(pk__in=[waiting[0].pk, waiting[2].pk])
    assert {(rn.state, rn.attempts, rn.command_id.endswith("-d1")) for rn in rows} == {(const.N_SENT, 1, True)}
