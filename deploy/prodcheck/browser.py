"""The facility manager's view in a real headless Chromium, over HTTPS with the site's
certificate pinned (its public key), and live updates over a secure WebSocket."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

CHROMIUM = "/usr/bin/chromium"


def spki_pin(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def check_fleet_live(base_url: str, server_cert: Path, username: str, password: str, site_name: str, asset_names: list[str],
                     chromium: str = CHROMIUM, timeout_s: float = 30.0) -> dict[str, object]:
    """Log in, open the fleet page and an asset page; return what a user sees. Raises on a
    page that does not load, a tile without data, or values that never move."""
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            f"--ignore-certificate-errors-spki-list={spki_pin(server_cert)}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_page()
            page.goto(f"{base_url}/login/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit], input[type=submit]")
            page.wait_for_url(f"{base_url}/")
            section = page.locator("section.site", has_text=site_name)
            section.wait_for(timeout=timeout_s * 1000)
            for name in asset_names:
                tile = section.locator("a.tile", has_text=name)
                tile.locator(".last-seen", has_text="seen").wait_for(timeout=timeout_s * 1000)
            online = section.locator(".site-nodes .node.online").count()
            css_ok = page.evaluate("getComputedStyle(document.querySelector('.tiles')).display") in ("grid", "flex")
            # The asset page: its latest values must change while we watch (live over wss://).
            section.locator("a.tile", has_text=asset_names[0]).click()
            page.wait_for_selector("#latest-values tbody td.value")
            first = page.inner_text("#latest-values tbody")
            page.wait_for_function("(first) => document.querySelector('#latest-values tbody').innerText !== first", arg=first,
                                   timeout=timeout_s * 1000)
            plotly = page.evaluate("typeof window.Plotly")
            return {"nodes_online_on_page": online, "tiles_seen": len(asset_names), "latest_values_moved": True,
                    "stylesheet_applied": css_ok, "plotly_loaded": plotly == "object"}
        finally:
            browser.close()
