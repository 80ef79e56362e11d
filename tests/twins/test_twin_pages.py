"""What a facility manager sees of a twin without a browser: the asset page's panel (figures,
model validation, assumptions), the fleet tile line, the Models page and the history JSON;
other sites' assets stay hidden."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from edge_node.agent.sources.cmapss import engines_of
from tests.factories import make_asset, make_site
from tests.twins.conftest import write_engine
from twins.twin_refresh import refresh_twins

T0 = 1_790_000_000.0


@pytest.fixture
def engine(manager, asset_types, turbofan_model, fd001_path):
    site = make_site(members=[manager])
    asset = make_asset(site, asset_types["turbofan"], None, name="Engine 77")
    asset.hours_per_day = 10.0
    asset.save(update_fields=["hours_per_day"])
    metrics = {m.key: m.id for m in asset_types["turbofan"].metrics.all()}
    write_engine(asset, metrics, engines_of(fd001_path)[77][:150], T0)
    # Two refreshes minutes apart (two snapshots): at cycle 90, then after all 150 cycles.
    for now in (T0 + 89.5, T0 + 149.5 + 180):
        refresh_twins(now=datetime.fromtimestamp(now, UTC), broadcast=False)
    return asset


def test_it_shows_health_rul_and_the_model_evidence_on_the_asset_page(client, manager, engine, turbofan_model):
    client.force_login(manager)
    html = client.get(f"/assets/{engine.id}/").content.decode()
    health = re.search(r'id="twin-health" data-state="computed">(\d+) %<', html)
    assert health and 0 <= int(health.group(1)) <= 100
    rul = re.search(r'id="twin-rul" data-state="computed">([^<]+)<', html).group(1)
    assert "cycles (80%:" in rul and "days" in rul
    m = turbofan_model.metrics
    # the protocol's figure with its spread (sd over the repeats), not a bare number
    assert f'<td id="twin-rmse">{m["rmse"]:.1f} ± {m["rmse_sd"]:.1f}</td>' in html
    assert f'<td id="twin-coverage">{m["coverage80"]:.2f} ± {m["coverage80_sd"]:.2f}</td>' in html
    assert f'<td id="twin-width">{m["interval_width_mean"]:.1f} ± {m["interval_width_mean_sd"]:.1f}</td>' in html
    assert f'<td id="twin-engines">{m["engines"]}</td>' in html
    assert "grouped by unit over all" in html
    assert "1.5 operating hours per cycle" in html and 'id="twin-hours-per-day">10</span> operating hours per day' in html
    data = json.loads(re.search(r'<script id="twin-data" type="application/json">(.+?)</script>', html).group(1))
    assert len(data["history"]) == 2 and data["figures"]["rul_unit"] == "cycles"


def test_it_shows_twin_figures_on_the_fleet_tile(client, manager, engine):
    client.force_login(manager)
    html = client.get("/").content.decode()
    line = re.search(rf'<span class="tile-twin" data-twin="{engine.id}">([^<]+)</span>', html).group(1)
    assert line.startswith("Health ") and "cycles ≈" in line and " d" in line


def test_it_lists_models_with_their_validation_figures(client, manager, turbofan_model):
    client.force_login(manager)
    html = client.get("/models/rul/").content.decode()
    row = re.search(rf'<tr data-version="{turbofan_model.version}" class="active">(.+?)</tr>', html, re.DOTALL).group(1)
    m = turbofan_model.metrics
    assert "turbofan" in row and f'{m["rmse"]:.1f} ± {m["rmse_sd"]:.1f}' in row
    assert f'{m["phm_score"]:.0f} ± {m["phm_score_sd"]:.0f}' in row and f'{m["coverage80"]:.2f} ± {m["coverage80_sd"]:.2f}' in row
    assert "test-like cuts per unit" in row


def test_it_serves_the_twin_history_to_those_who_see_the_asset_only(client, manager, outsider, admin_user, engine):
    client.force_login(manager)
    body = client.get(f"/assets/{engine.id}/twin.json").json()
    assert [p[0] for p in body["twin"]["history"]] == sorted(p[0] for p in body["twin"]["history"])
    other = make_asset(make_site(), engine.asset_type, None)
    assert client.get(f"/assets/{other.id}/twin.json").status_code == 404
    client.force_login(outsider)
    assert client.get(f"/assets/{engine.id}/twin.json").status_code == 403
