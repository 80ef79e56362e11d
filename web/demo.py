"""The demo data set: asset types from the simulator's catalogue, two sites, three edge
nodes, thirty assets, and one user per role. Idempotent: running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db import transaction

from edge_node.agent.asset_types import ASSET_TYPES
from edge_node.models import EdgeNode
from twins.models import Asset, AssetType, Metric, Site
from web.roles import ADMIN, FACILITY_MANAGER, PLANNER

DEMO_USERS = (
    ("manager", "manager-demo", FACILITY_MANAGER),
    ("planner", "planner-demo", PLANNER),
    ("admin", "admin-demo", ADMIN),
    # A second admin: a rollout proposed by one admin must be approved by another.
    ("admin2", "admin2-demo", ADMIN),
)

# site key, site name, [(node id, [(asset type, count, name prefix)])]
DEMO_LAYOUT = (
    ("north-plant", "North Plant", [
        ("north-gw-1", [("induction_motor", 6, "Conveyor motor"), ("centrifugal_pump", 3, "Coolant pump")]),
        ("north-gw-2", [("induction_motor", 6, "Press motor"), ("centrifugal_pump", 3, "Feed pump")]),
    ]),
    ("south-campus", "South Campus", [
        ("south-gw-1", [("hvac_unit", 9, "Air handler"), ("centrifugal_pump", 3, "Chilled-water pump")]),
    ]),
)


# Demo thresholds where a practitioner would put them, so that normal running raises few alerts
# and each injected fault (edge_node/fleet_plan.py) or worn-out asset raises one:
# vibration after ISO 10816-3 (motors: group 2, rigid mounting, 2.8 / 4.5 mm/s) and ISO 10816-7
# (pumps, category I: 4.0 / 6.6 mm/s), winding and bearing temperatures above what the hottest
# duty of a worn machine reaches, CO2 above the ~1,000 ppm a fully occupied office reaches with
# full fresh air, a supply temperature the coil cannot hold. tests/web/test_demo_alerts.py checks
# an hour of the demo fleet against them.
DEMO_RULES = (
    # asset type, metric, warning above, critical above, hysteresis, min duration s
    ("induction_motor", "vib_rms", 2.8, 4.5, 0.2, 30.0),
    ("induction_motor", "temperature_c", 102.0, 112.0, 2.0, 10.0),
    ("centrifugal_pump", "vib_rms", 4.0, 6.6, 0.5, 30.0),
    ("centrifugal_pump", "temperature_c", 75.0, 90.0, 2.0, 10.0),
    ("hvac_unit", "co2_ppm", 1100.0, 1500.0, 50.0, 60.0),
    ("hvac_unit", "supply_temp_c", 17.0, 20.0, 0.5, 60.0),
)
# Rules of an older demo (thresholds inside the fleet's normal range): replaced when seen.
OUTDATED_DEMO_RULES = {("hvac_unit", "co2_ppm", 735.0), ("induction_motor", "temperature_c", 57.0), ("induction_motor", "temperature_c", 95.0),
                       ("centrifugal_pump", "vib_rms", 4.5)}


def seed_demo_rules() -> int:
    """Create the demo alert rules (idempotent)."""
    from twins.models import AlertRule

    made = 0
    for type_key, metric_key, warn, crit, hyst, duration in DEMO_RULES:
        metric = Metric.objects.filter(asset_type__key=type_key, key=metric_key).first()
        if metric is None:
            continue
        values = {"warning_above": warn, "critical_above": crit, "hysteresis": hyst, "min_duration_s": duration}
        rule, created = AlertRule.objects.get_or_create(metric=metric, defaults=values)
        if not created and (type_key, metric_key, rule.warning_above) in OUTDATED_DEMO_RULES:
            AlertRule.objects.filter(pk=rule.pk).update(**values)
        made += created
    return made


@dataclass
class DemoSummary:
    sites: int
    nodes: int
    assets: int
    users: list[tuple[str, str, str]]


def sync_asset_types() -> dict[str, AssetType]:
    """Create or update the asset types and metrics of the simulator's catalogue."""
    types = {}
    for key, spec in ASSET_TYPES.items():
        asset_type, _ = AssetType.objects.update_or_create(key=key, defaults={"name": spec["label"]})
        for m in spec["metrics"]:
            Metric.objects.update_or_create(
                asset_type=asset_type, key=m.name,
                defaults={"label": m.label, "unit": m.unit, "min_value": m.min_value, "max_value": m.max_value},
            )
        types[key] = asset_type
    return types


@transaction.atomic
class DemoRefused(RuntimeError):
    """The demo's users have known passwords: never on a production database."""


def load_demo() -> DemoSummary:
    from django.conf import settings

    if settings.PRODUCTION:
        raise DemoRefused("AIOT_PRODUCTION=1 refuses the demo data: its users have published passwords (admin1/admin1...). "
                          "Create real users with: python manage.py createsuperuser")
    types = sync_asset_types()
    users = []
    for username, password, role in DEMO_USERS:
        user, created = User.objects.get_or_create(username=username, defaults={"is_staff": role == ADMIN, "is_superuser": role == ADMIN})
        if created:
            user.set_password(password)
            user.save()
        user.groups.add(Group.objects.get(name=role))
        users.append((username, password, role))
    n_nodes = n_assets = 0
    for site_key, site_name, nodes in DEMO_LAYOUT:
        site, _ = Site.objects.get_or_create(key=site_key, defaults={"name": site_name})
        site.members.add(*User.objects.filter(username__in=[u for u, _, _ in DEMO_USERS]))
        for node_id, groups in nodes:
            node, _ = EdgeNode.objects.get_or_create(node_id=node_id, defaults={"site": site, "name": f"Gateway {node_id}"})
            n_nodes += 1
            for type_key, count, prefix in groups:
                for i in range(1, count + 1):
                    key = f"{node_id.replace('-gw-', '-')}-{type_key.split('_')[-1]}-{i:02d}"
                    Asset.objects.get_or_create(
                        key=key,
                        defaults={"name": f"{prefix} {i}", "site": site, "asset_type": types[type_key], "node": node},
                    )
                    n_assets += 1
    seed_demo_rules()
    return DemoSummary(sites=len(DEMO_LAYOUT), nodes=n_nodes, assets=n_assets, users=users)
