"""What an operator sees: readiness that names what is down, a real ingest worker's metrics
and heartbeat after real traffic (its --metrics-port, `manage.py status`, the nodes page), the
web process's /metrics guarded by a token, one JSON object a log line with LOG_FORMAT=json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from edge_node.agent import contract
from tests.factories import make_fleet
from tests.helpers import ROOT, Publisher, database_url_for_subprocess, free_port, wait_until


def _sample(text: str, metric: str, **labels: str) -> float | None:
    """The value of one sample in the Prometheus text format."""
    want = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""  # labels come sorted
    for line in text.splitlines():
        if line.startswith(f"{metric}{want} "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.django_db
def test_readyz_checks_the_real_services_and_names_what_is_down(client, mqtt_url, redis_url, settings):
    settings.MQTT_URL = mqtt_url
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok", "broker": "ok"}
    settings.MQTT_URL = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json()["checks"]["broker"].startswith("failed: ConnectionRefusedError")
    assert down.json()["checks"]["database"] == "ok"
    assert client.get("/healthz").json() == {"ok": True}  # alive all the same


@pytest.mark.mqtt
def test_an_ingest_worker_reports_metrics_and_heartbeat_after_real_traffic(transactional_db, client, admin_user, unique, tmp_path):
    # A broker of its own (Mosquitto, the shipped settings): the counters must see this test's
    # messages only, not what earlier tests' nodes still publish on the shared one.
    from tests.services import PrivateMosquitto

    broker = PrivateMosquitto(tmp_path / "broker")
    broker.start()
    mqtt_url = broker.url
    fleet = make_fleet(2)
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url_for_subprocess(), MQTT_URL=mqtt_url, HEARTBEAT_INTERVAL_S="1")
    env.pop("REDIS_URL", None)
    worker = subprocess.Popen([sys.executable, "manage.py", "ingest", "--client-id", f"ops-{unique}", "--name", f"ops-{unique}", "--protocol", "5",
                               "--no-live", "--metrics-port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> str:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.read().decode()
            except OSError:  # not listening yet
                assert worker.poll() is None, worker.stdout.read()
                return ""

        wait_until(lambda: _sample(scrape(), "aiot_mqtt_connected", client=f"ingest-ops-{unique}") == 1.0, timeout=60, what="worker connected")
        node = fleet.node.node_id
        readings = [{"asset": fleet.assets[0].key, "ts": time.time() - 5 + i * 0.01, "values": {"temperature_c": 20.0 + i}} for i in range(10)]
        with Publisher(mqtt_url) as pub:
            for seq in (1, 2, 3):
                pub.publish(contract.topic(node, "telemetry"), contract.encode({"seq": seq, "readings": readings[(seq - 1) * 3:seq * 3]}))
            pub.publish(contract.topic(node, "telemetry"), b"\xff not a message")
        wait_until(lambda: _sample(scrape(), "aiot_ingest_messages_total") == 4.0, timeout=20, what="4 messages counted")
        text = scrape()
        assert _sample(text, "aiot_ingest_rows_total") == 9.0  # 3 messages x 3 readings x 1 metric
        assert _sample(text, "aiot_ingest_rejected_total") == 1.0
        assert _sample(text, "aiot_ingest_batch_seconds_count") >= 1
        assert _sample(text, "aiot_ingest_confirm_lag_seconds_count") >= 1
        # The heartbeat: `manage.py status` and the admin's nodes page show the worker up.
        status = subprocess.run([sys.executable, "manage.py", "status", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        report = json.loads(status.stdout)
        mine = [p for p in report["processes"] if p["name"] == f"ops-{unique}"]
        assert mine and mine[0]["kind"] == "ingest" and mine[0]["up"] is True and mine[0]["pid"] == worker.pid
        client.force_login(admin_user)
        page = client.get("/nodes/").content.decode()
        assert f"ops-{unique}" in page and "Platform processes" in page
        # The web process's /metrics: the fleet gauges, and the heartbeat as aiot_process_up.
        metrics = client.get("/metrics").content.decode()
        assert _sample(metrics, "aiot_process_up", kind="ingest", name=f"ops-{unique}", host=mine[0]["host"]) == 1.0
        assert _sample(metrics, "aiot_dead_letters_last_hour", reason=_dead_letter_reason()) == 1.0
        assert _sample(metrics, "aiot_edge_nodes", state="revoked") == 0.0
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        broker.stop()
    # Stopped: after 3 missed beats the status says so and exits 1.
    from web.models import ProcessHeartbeat

    ProcessHeartbeat.objects.filter(name=f"ops-{unique}").update(beat_at=ProcessHeartbeat.objects.get(name=f"ops-{unique}").beat_at - _seconds(10))
    down = subprocess.run([sys.executable, "manage.py", "status"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "DOWN" in down.stdout


def _dead_letter_reason() -> str:
    from ingest.models import DeadLetter

    return DeadLetter.objects.values_list("reason", flat=True).first()


def _seconds(n: float):
    from datetime import timedelta

    return timedelta(seconds=n)


@pytest.mark.django_db
def test_metrics_need_the_token_from_another_host(client, settings):
    client.get("/login/")
    local = client.get("/metrics")
    assert local.status_code == 200 and _sample(local.content.decode(), "aiot_http_requests_total", status="2xx", view="login") >= 1
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1").status_code == 401
    settings.METRICS_TOKEN = "s3cret-token-for-scrapes"
    assert client.get("/metrics").status_code == 401  # with a token configured, even the host needs it
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1", HTTP_AUTHORIZATION="Bearer s3cret-token-for-scrapes").status_code == 200


def test_log_format_json_writes_one_object_a_line_with_process_and_context():
    code = "import logging; logging.getLogger('ingest').warning('node %s sent junk', 'gw-1', extra={'node': 'gw-1'})"
    env = dict(os.environ, LOG_FORMAT="json")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.strip().splitlines()]
    record = next(r for r in lines if r["msg"] == "node gw-1 sent junk")
    assert record["level"] == "WARNING" and record["logger"] == "ingest" and record["node"] == "gw-1"
    assert record["process"] == "shell" and isinstance(record["pid"], int)


@pytest.mark.django_db
def test_each_response_carries_a_request_id_that_the_log_lines_carry(client, caplog):
    resp = client.get("/nope-not-a-page/", HTTP_X_REQUEST_ID="req-abc123")
    assert resp["X-Request-ID"] == "req-abc123"
    assert len(client.get("/login/")["X-Request-ID"]) == 16
    assert any(getattr(r, "request_id", "") == "req-abc123" for r in caplog.records if "nope-not-a-page" in r.getMessage())


def test_the_grafana_dashboard_uses_only_metrics_the_platform_exports():
    import re

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "aiot-dashboard.json").read_text())
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"aiot_[a-z_]+", t["expr"])}
    source = "".join((ROOT / f).read_text() for f in ("web/metrics.py", "ingest/metrics.py"))
    ingest_stats = {f"aiot_ingest_{k}_total" for k in re.findall(r'"([a-z_]+)": "', (ROOT / "ingest/metrics.py").read_text())}
    for name in used:
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert base in ingest_stats or f'"{base}"' in source or f'"{base.removesuffix("_total")}"' in source, f"{name} is not exported"
    assert len(used) >= 15
