from __future__ import annotations

import re

import pytest

from edge_node.models import AuditEvent
from edge_node.rollouts import const
from edge_node.rollouts.actions import RolloutError, approve_rollout, propose_rollout
from edge_node.rollouts.models import Rollout
from edge_node.rollouts.registry import register_anomaly_model, register_model
from tests.factories import make_node, make_site
from tests.rollouts.models_for_tests import mlp_onnx

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(registry_settings, model_dirs):
    site = make_site()
    nodes = [make_node(site) for _ in range(3)]
    nodes[0].tags = "line-a, north"
    nodes[0].save()
    return site, nodes, register_anomaly_model(model_dirs["v2"])


def test_it_lets_an_admin_propose_and_another_admin_approve(target, admin_user, second_admin, django_capture_on_commit_callbacks):
    site, nodes, model = target
    rollout = propose_rollout(admin_user, model, site=site, canary_share=0.34)
    assert rollout.state == const.PROPOSED and rollout.proposer == admin_user
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approve_rollout(second_admin, rollout)
    rollout.refresh_from_db()
    assert rollout.state == const.APPROVED and rollout.approver == second_admin
    assert sorted(rollout.nodes.values_list("node__node_id", flat=True)) == sorted(n.node_id for n in nodes)
    assert len(callbacks) == 1  # the driver is woken only after the commit
    actions = list(AuditEvent.objects.filter(target=f"rollout {rollout.pk}").values_list("action", "actor"))
    assert (const.AUDIT_ROLLOUT_PROPOSED, "admin1") in actions and (const.AUDIT_ROLLOUT_APPROVED, "admin2") in actions


def test_it_refuses_the_proposer_approving_their_own_rollout(target, admin_user):
    site, _, model = target
    rollout = propose_rollout(admin_user, model, site=site)
    with pytest.raises(RolloutError, match="proposer cannot approve"):
        approve_rollout(admin_user, rollout)
    rollout.refresh_from_db()
    assert rollout.state == const.PROPOSED and rollout.approver is None and not rollout.nodes.exists()
    assert AuditEvent.objects.filter(action=const.AUDIT_ROLLOUT_REFUSED, actor="admin1", ok=False).exists()


@pytest.mark.parametrize("persona", ["planner", "manager"])
def test_it_refuses_planners_and_facility_managers(target, persona, request, admin_user):
    user = request.getfixturevalue(persona)
    site, _, model = target
    with pytest.raises(RolloutError, match="only an admin may propose"):
        propose_rollout(user, model, site=site)
    rollout = propose_rollout(admin_user, model, site=site)
    with pytest.raises(RolloutError, match="only an admin may approve"):
        approve_rollout(user, rollout)
    assert Rollout.objects.get(pk=rollout.pk).state == const.PROPOSED


def test_it_targets_a_tag_within_a_site_and_listed_nodes(target, admin_user, second_admin, django_capture_on_commit_callbacks):
    site, nodes, model = target
    rollout = propose_rollout(admin_user, model, site=site, tag="north", node_ids=[nodes[2].node_id])
    with django_capture_on_commit_callbacks(execute=False):
        approve_rollout(second_admin, rollout)
    assert sorted(rollout.nodes.values_list("node__node_id", flat=True)) == sorted([nodes[0].node_id, nodes[2].node_id])


def test_it_refuses_a_rollout_of_a_rul_model_or_without_targets(target, admin_user):
    site, _, model = target
    rul = register_model(mlp_onnx(width=8), name="rul", version="1", kind="rul")
    with pytest.raises(RolloutError, match="anomaly models only"):
        propose_rollout(admin_user, rul, site=site)
    with pytest.raises(RolloutError, match="needs a target"):
        propose_rollout(admin_user, model)


def test_it_shows_the_pages_to_an_admin_only(target, client, admin_user, planner):
    site, _, model = target
    rollout = propose_rollout(admin_user, model, site=site)
    client.force_login(planner)
    assert client.get(f"/rollouts/{rollout.pk}/").status_code == 403
    assert client.post(f"/rollouts/{rollout.pk}/approve/").status_code == 403
    client.force_login(admin_user)
    page = client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert model.label in page and "Another admin must approve" in page
    assert client.get("/model-registry/").status_code == 200
    detail = client.get(f"/model-registry/{model.pk}/").content.decode()
    assert "verifies" in detail and "None" not in detail.split("Inputs:")[1].split("</p>")[0]
    assert re.search(r"<code>\S+ tensor\(float\) \[N, \d+\]</code>", detail)  # a dynamic batch dimension reads N
    state = client.get(f"/rollouts/{rollout.pk}/state.json").json()
    assert (state["id"], state["state"], state["reason"], state["nodes"]) == (rollout.pk, "proposed", "", [])
    # The proposer may cancel but not approve: the page offers exactly that, and says why.
    assert [a["name"] for a in state["actions"]] == ["cancel"] and state["note"] == "Another admin must approve this rollout."


def test_the_page_says_what_an_action_did_and_shows_node_figures_as_people_read_them(target, client, admin_user, second_admin,
                                                                                    django_capture_on_commit_callbacks):
    site, nodes, model = target
    rollout = propose_rollout(admin_user, model, site=site)
    client.force_login(second_admin)
    with django_capture_on_commit_callbacks(execute=False):
        page = client.post(f"/rollouts/{rollout.pk}/approve/", follow=True).content.decode()
    assert f"Rollout {rollout.pk} approved." in page
    rn = rollout.nodes.get(node=nodes[0])
    rn.report = {"latency_p99_ms": 1.348412, "agreement": 2 / 3}
    rn.save(update_fields=["report"])
    state = client.get(f"/rollouts/{rollout.pk}/state.json").json()
    [mine] = [n for n in state["nodes"] if n["node"] == nodes[0].node_id]
    assert (mine["p99_ms"], mine["agreement"]) == (1.35, 0.667)
    assert {n["p99_ms"] for n in state["nodes"] if n["node"] != nodes[0].node_id} == {None}
