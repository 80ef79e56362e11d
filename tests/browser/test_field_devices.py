"""The nodes page in headless Chromium shows a gateway's field devices from its heartbeat, live:
a facility manager sees a Modbus meter ok with its one bad register, the meter go down when it
is unplugged and come back, without reloading the page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.factories import make_asset, make_asset_type, make_node, make_site
from tests.field.helpers import AgentProcess, DeviceProcess
from tests.field.layouts import modbus_metrics, modbus_point_map
from tests.helpers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.mqtt, pytest.mark.redis, pytest.mark.slow]


def test_a_manager_sees_a_gateways_devices_and_their_health_live(page, live_ingest, manager, mqtt_url, tmp_path):
    site = make_site(members=[manager])
    node = make_node(site)
    asset = make_asset(site, make_asset_type(metrics=modbus_metrics()), node)
    port = free_port()
    meter = DeviceProcess("tests.field.modbus_device", "--port", str(port), log_dir=tmp_path).start()
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\nid = "{node.node_id}"\nstate_dir = "{tmp_path / "state"}"\nheartbeat_interval_s = 1.0\n'
                      f'[broker]\nurl = "{mqtt_url}"\n[[devices]]\nname = "meter-7"\nprotocol = "modbus"\nhost = "127.0.0.1"\n'
                      f'port = {port}\npoll_interval_s = 0.5\ntimeout_s = 0.5\n' + modbus_point_map(asset.key))
    agent = AgentProcess(config)
    try:
        log_in(page, manager)
        page.goto("/nodes/")
        row = page.locator(f'#nodes-table tr[data-node="{node.node_id}"]')
        summary = row.locator(".node-devices summary")
        expect(summary).to_contain_text("1 device", timeout=20000)
        expect(row.locator(".dev-dot.dev-ok")).to_have_count(1, timeout=20000)
        summary.click()
        device = row.locator('.devices-table tr[data-device="meter-7"]')
        expect(device.locator(".dev-state")).to_have_text("ok")
        expect(device).to_contain_text(f"127.0.0.1:{port} unit 1")
        expect(device).to_contain_text("poll")
        expect(device).to_contain_text("14, 1 bad")
        expect(device.locator(".problems")).to_contain_text(f"{asset.key}.missing_reg: Modbus exception 2 (illegal data address)")
        meter.stop()
        expect(device.locator(".dev-state")).to_have_text("down", timeout=20000)
        expect(device.locator(".problems")).to_contain_text(re.compile(f"connection lost|cannot connect to 127.0.0.1:{port}"))
        meter.start()
        expect(device.locator(".dev-state")).to_have_text("ok", timeout=30000)
        assert row.locator(".node-devices").get_attribute("open") is not None  # a live update keeps it open
    finally:
        agent.stop()
        meter.stop()
