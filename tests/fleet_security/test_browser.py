"""An admin in a real (headless) Chromium: creates a token, sees the command once, the gateway
enrolls, the admin revokes the node after confirming, and finds both in the audit log."""

from __future__ import annotations

import re

import pytest

from edge_node.models import EdgeNode
from edge_node.services import enroll_node
from tests.factories import make_site

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_lets_an_admin_enroll_and_revoke_a_node_in_the_browser(chromium, live_server, admin_user):
    make_site(name="Harbour <Plant>")
    page = chromium.new_page()
    try:
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", admin_user.username)
        page.fill("input[name=password]", "pw-" + admin_user.username)
        page.click("button[type=submit]")
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
