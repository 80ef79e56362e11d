"""The twin in a real headless Chromium against daphne + Redis: a facility manager sees health,
RUL (with units and calendar days), the model's validation figures and the history chart on the
asset page, and the panel follows a refresh live over the WebSocket."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from edge_node.agent.sources.cmapss import engines_of
from tests.browser.conftest import (  # noqa: F401 (fixtures)
    CHANNEL_PREFIX,
    _role_groups,
    log_in,
    page,
    web_server,
)
from tests.factories import make_asset, make_site
from tests.helpers import wait_until
from tests.twins.conftest import write_engine
from twins.models import TwinState
from twins.twin_live import twin_figures
from twins.twin_presenters import health_text
from twins.twin_refresh import refresh_twins
from web.env import channel_layers_from_url

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]
T0 = 1_790_000_000.0


def in_thread(fn) -> None:
    """Run ``fn`` on its own thread, as the Celery worker would: Playwright's sync API keeps an
    event loop in this one, where the channel layer's async_to_sync cannot run."""
    from django.db import connection

    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 (handed to the test thread below)
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]


@pytest.fixture
def redis_layer(settings, redis_url):
    """This process sends on the Redis channel layer the daphne subprocess listens to."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = channel_layers_from_url(redis_url, settings.CHANNEL_LAYER_KIND, CHANNEL_PREFIX)
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def test_it_shows_health_and_rul_on_the_asset_page_and_updates_them_live(page, redis_layer, manager, asset_types, turbofan_model, fd001_path):  # noqa: F811
    site = make_site(members=[manager])
    asset = make_asset(site, asset_types["turbofan"], None, name="Engine 90")
    metrics = {m.key: m.id for m in asset_types["turbofan"].metrics.all()}
    rows = engines_of(fd001_path)[90]
    write_engine(asset, metrics, rows, T0)
    refresh_twins(now=datetime.fromtimestamp(T0 + 59.5, UTC), broadcast=False)
    first = TwinState.objects.get(asset=asset)

    log_in(page, manager)
    page.goto(f"/assets/{asset.id}/")
    expect(page.locator("#twin-health")).to_have_text(health_text(first.health, twin_figures(first)))
    # 60 cycles into a long life the engine shows no wear yet: its RUL is at the model's cap of
    # 125 cycles, said as a lower bound; otherwise the estimate with its interval.
    if first.rul_median >= 0.97 * turbofan_model.meta["cap"]:
        expect(page.locator("#twin-rul")).to_contain_text(re.compile(r"more than 125 cycles \(no wear visible yet.*\), over \d+\.\d days"))
    else:
        expect(page.locator("#twin-rul")).to_contain_text(re.compile(r"\d+ cycles \(80%: \d+.*\), about \d+\.\d days"))
    m = turbofan_model.metrics
    expect(page.locator("#twin-rmse")).to_have_text(f'{m["rmse"]:.1f} ± {m["rmse_sd"]:.1f}')
    expect(page.locator("#twin-coverage")).to_have_text(f'{m["coverage80"]:.2f} ± {m["coverage80_sd"]:.2f}')
    expect(page.locator("#twin-assumptions li").first).to_be_visible()
    expect(page.locator("#twin-chart .main-svg").first).to_be_attached()
    expect(page.locator("#twin-chart")).to_have_attribute("data-points", "1")
    expect(page.locator("#live-badge")).to_have_text("live")

    # Near the end of the engine's life: the next refresh reaches the open page over the socket.
    late_at = datetime.fromtimestamp(T0 + len(rows) - 5 + 0.5, UTC)
    late_health: list[str] = []

    def pushed() -> bool:
        in_thread(lambda: refresh_twins(now=late_at))  # commits, then sends twin.update to asset.<id> and site.<id>
        late = TwinState.objects.get(asset=asset)
        late_health[:] = [health_text(late.health, twin_figures(late))]
        try:
            expect(page.locator("#twin-health")).to_have_text(late_health[0], timeout=1000)
        except AssertionError:
            return False  # the page's socket was not subscribed yet: refresh again
        return True

    wait_until(pushed, 20, 0.1, what="the twin update to reach the page")
    assert late_health[0] != health_text(first.health, twin_figures(first))
    expect(page.locator("#twin-chart")).to_have_attribute("data-points", "2")
    expect(page.locator("#twin-rul")).to_contain_text("cycles")
