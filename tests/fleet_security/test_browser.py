"""An admin in a real (headless) Chromium: creates a token, sees the command once, the gateway
enrolls, the admin revokes the node after confirming, and finds both in the audit log."""

from __future__ import annotations

import re

import pytest

from edge_node.models import EdgeNode
from edge_node.services import enroll_node
from tests.browser.conftest import log_in
from tests.factories import make_site

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_lets_an_admin_enroll_and_revoke_a_node_in_the_browser(chromium, live_server, admin_user):
    make_site(name="Harbour <Plant>")
    page = chromium.new_page()
    try:
        log_in(page, admin_user, live_server.url)
        page.click("text=Fleet security")
        page.select_option("select[name=site]", label="Harbour <Plant>")
        page.fill("input[name=node_id]", "gw-browser-1")
        page.click("text=Create token")

        command = page.inner_text("#enroll-command")
        token = re.search(r"--token (\S+)", command).group(1)
        assert command.startswith(f"python -m edge_node.agent enroll --url {live_server.url} --token ")
        assert "shown only once" in page.inner_text("#new-token")
        page.click("#copy-command")  # the clipboard may be unavailable headless: the button says so
        page.wait_for_function("document.getElementById('copy-command').textContent !== 'Copy command'")

        enroll_node(token, remote_addr="192.0.2.10")  # the gateway, as the CLI test does for real
        page.goto(f"{live_server.url}/fleet-security/tokens/")
        assert token not in page.content()
        assert "by gw-browser-1" in page.inner_text("#tokens-table")

        page.click("text=Nodes & revocation")
        page.wait_for_url("**/fleet-security/nodes/")  # loaded: the confirm script is attached
        row = page.locator("tr[data-node='gw-browser-1']")
        assert "active" in row.inner_text()
        dialogs = []
        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        row.locator("button", has_text="Revoke").click()
        assert dialogs == ["Revoke node gw-browser-1? It will be disconnected and cannot reconnect."]
        assert EdgeNode.objects.get(node_id="gw-browser-1").revoked_at is None  # dismissed: nothing happened

        page.once("dialog", lambda d: d.accept())
        row.locator("button", has_text="Revoke").click()
        page.wait_for_selector("text=Node gw-browser-1 revoked")
        assert "revoked" in page.locator("tr[data-node='gw-browser-1']").inner_text()
        assert EdgeNode.objects.get(node_id="gw-browser-1").revoked_at is not None

        page.click("text=Audit log")
        page.fill("input[name=node]", "gw-browser-1")
        page.click("text=Filter")
        audit = page.inner_text("#audit-table")
        assert "node.revoke" in audit and "node.enroll" in audit and "192.0.2.10" in audit
    finally:
        page.close()


def test_an_admin_rotates_the_signing_key_in_the_browser_after_confirming(chromium, live_server, admin_user):
    from edge_node import const, signing_keys
    from edge_node.models import AuditEvent, SigningKey

    first = signing_keys.active_key_id()
    page = chromium.new_page()
    try:
        log_in(page, admin_user, live_server.url)
        page.goto(f"{live_server.url}/fleet-security/nodes/")
        assert "active" in page.locator(f"tr[data-key='{first}']").inner_text()
        page.fill("#rotate-keys-form input[name=reason]", "key on a lost laptop")
        page.check("#rotate-keys-form input[name=revoke_previous]")
        dialogs = []
        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.click("text=Rotate signing key")
        assert dialogs == [f"Rotate the model-signing key and REVOKE the current key {first}? Every node will refuse models it signed."]
        assert SigningKey.objects.count() == 1  # dismissed: nothing happened

        page.once("dialog", lambda d: d.accept())
        page.click("text=Rotate signing key")
        page.wait_for_selector("text=is active; nodes receive it")
        new = SigningKey.objects.get(state=const.KEY_ACTIVE).key_id
        assert "revoked" in page.locator(f"tr[data-key='{first}']").inner_text()
        assert "active" in page.locator(f"tr[data-key='{new}']").inner_text()
        assert AuditEvent.objects.get(action=const.AUDIT_KEYS_ROTATED).detail["reason"] == "key on a lost laptop"
    finally:
        page.close()
