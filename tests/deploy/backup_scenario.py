"""A small but complete platform state, built and checked in ``manage.py shell`` processes by
tests/deploy/test_backup_restore.py (each against its own database and AIOT_VAR_DIR).

``build``: an enrolled gateway, a signed anomaly model in the registry, an active FD001 RUL
model and a turbofan whose twin has been refreshed. ``check``: after a restore elsewhere, the
gateway still authenticates, the models still verify (against the key the gateway pinned
at enrollment) and the twin resumes from new telemetry."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

T0 = 1_790_000_000.0
UNIT = 75  # an FD001 engine not in the small training slice
FIRST_ROWS, MORE_ROWS = 60, 90


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _engine_rows(rows: int):
    from edge_node.agent.sources.cmapss import engines_of
    from twins.rul.const import FD001_TRAIN

    return engines_of(FD001_TRAIN)[UNIT][:rows]


def build(work: str) -> None:
    from edge_node.models import EdgeNode
    from edge_node.rollouts.registry import register_anomaly_model
    from edge_node.services import create_enrollment_token, enroll_node
    from tests.rollouts.models_for_tests import write_anomaly_model
    from tests.twins.conftest import write_engine
    from twins.models import Asset, Site, TwinState
    from twins.rul import load_cmapss, train_rul
    from twins.rul.const import FD001_TRAIN
    from twins.rul_registry import cmapss_serving, store_trained
    from twins.twin_const import CMAPSS_SIGNAL_METRICS
    from twins.twin_refresh import refresh_twins
    from web.demo import sync_asset_types

    types = sync_asset_types()
    site = Site.objects.create(key="bk-site", name="Backup site")
    _, token = create_enrollment_token(site, node_id="bk-gw-1")
    enrolled = enroll_node(token)
    anomaly = register_anomaly_model(write_anomaly_model(Path(work) / "trained", "motor-anomaly", "1"))
    data = load_cmapss(FD001_TRAIN).select_units(list(range(1, 21)))
    rul = store_trained(train_rul(data, signals=list(CMAPSS_SIGNAL_METRICS), n_estimators=10, seed=0), "turbofan", cmapss_serving(1.5),
                        trained_on="FD001 engines 1-20 (backup test)")
    node = EdgeNode.objects.get(node_id="bk-gw-1")
    asset = Asset.objects.create(key="bk-engine-75", name="Engine 75", site=site, asset_type=types["turbofan"], node=node)
    metrics = {m.key: m.id for m in types["turbofan"].metrics.all()}
    write_engine(asset, metrics, _engine_rows(FIRST_ROWS), T0)
    refresh_twins(now=_at(T0 + FIRST_ROWS), broadcast=False)
    twin = TwinState.objects.get(asset=asset)
    from edge_node.key_rotation import rotate_signing_keys

    rotated = rotate_signing_keys(actor="backup scenario")  # a key that lives only in the database (encrypted)
    print(json.dumps({
        "active_key": rotated.key_id,
        "node_id": node.node_id, "secret": enrolled.secret, "mqtt_password": enrolled.mqtt_password,
        "public_key_pem": enrolled.model_public_key_pem, "anomaly": anomaly.label, "rul_version": rul.version, "asset": asset.key,
        "twin": {"computed_at": twin.computed_at.isoformat(), "rul_median": twin.rul_median, "model_version": twin.model_version},
    }))


def check(built_json: str) -> None:
    from edge_node.agent import artifact
    from edge_node.credentials import verify_mosquitto_hash
    from edge_node.models import EdgeNode
    from edge_node.rollouts.models import ModelArtifact
    from edge_node.rollouts.registry import verify_stored
    from edge_node.services import authenticate_node
    from tests.twins.conftest import write_engine
    from twins.models import Asset, TwinState
    from twins.twin_refresh import refresh_twins
    from web.var_paths import var_path

    built = json.loads(built_json)
    node = EdgeNode.objects.get(node_id=built["node_id"])
    found: dict[str, object] = {
        "node_authenticates": authenticate_node(built["node_id"], built["secret"]) is not None,
        "wrong_secret_refused": authenticate_node(built["node_id"], built["secret"] + "x") is None,
        "mqtt_password_verifies": verify_mosquitto_hash(built["mqtt_password"], node.mqtt_password_hash),
    }
    from edge_node import signing_keys

    signing_keys._decrypt.cache_clear()
    found["rotated_key_signs"] = (signing_keys.active_key_id() == built["active_key"]
                                  and signing_keys.verify(b"after restore", signing_keys.sign(b"after restore")))
    models = list(ModelArtifact.objects.all())
    found["models_verify"] = bool(models) and all(verify_stored(m) for m in models)
    for m in models:  # what the gateway does before it installs a model: the key it pinned at enrollment
        artifact.verify_artifact(var_path(m.file_path).read_bytes(), m.manifest(), m.signature, built["public_key_pem"])
    found["models_verify_with_the_gateways_pinned_key"] = True
    found["artifact_under_new_folder"] = str(var_path(models[0].file_path))
    asset = Asset.objects.get(key=built["asset"])
    before = TwinState.objects.get(asset=asset)
    found["twin_kept"] = before.computed_at.isoformat() == built["twin"]["computed_at"] and before.model_version == built["twin"]["model_version"]
    metrics = {m.key: m.id for m in asset.asset_type.metrics.all()}
    rows = _engine_rows(MORE_ROWS)[FIRST_ROWS:]
    write_engine(asset, metrics, rows, T0 + FIRST_ROWS)
    refresh_twins(now=_at(T0 + MORE_ROWS), broadcast=False)
    after = TwinState.objects.get(asset=asset)
    found["twin_resumed"] = after.computed_at > before.computed_at and after.model_version == built["rul_version"]
    found["rul_before_after"] = [before.rul_median, after.rul_median]
    found["latest_before_after"] = [{k: v.get("value") for k, v in before.latest.items()}, {k: v.get("value") for k, v in after.latest.items()}]
    print(json.dumps(found))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through manage.py shell (see tests/deploy/test_backup_restore.py)")
